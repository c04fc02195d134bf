"""The batch contract and the shared datamodule: splits, group counts, samplers, full-batch mode."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import lightning as L
import torch
from torch import Tensor
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    Dataset,
    DistributedSampler,
    RandomSampler,
    Sampler,
    SequentialSampler,
    WeightedRandomSampler,
)

LABEL_ENCODINGS = ("index", "pm1", "01")


class Batch(NamedTuple):
    """One mini-batch: inputs, targets, group ids and positions in the split (for per-sample state)."""

    x: Tensor
    y: Tensor
    group: Tensor
    index: Tensor


def encode_labels(classes: Tensor, labels: str) -> Tensor:
    """Class ids {0, 1, ...} as the targets a loss expects: `index` (long), `pm1` (±1) or `01` (float)."""
    if labels == "index":
        return classes.long()
    if labels == "pm1":
        return classes.float() * 2 - 1
    return classes.float()


def class_ids(y: Tensor, threshold: float) -> Tensor:
    """Each target's class id: of one-hot rows their argmax, of ids themselves, of scalar targets whether
    they exceed `threshold`."""
    if y.dim() > 1:
        return y.argmax(-1)
    return (y > threshold).long() if y.is_floating_point() else y.long()


def check_every_split_has_every_group(
    group: Tensor, split: Tensor, group_names: tuple[str, ...], table: Path
) -> None:
    """Rows of a metadata `table` with split ids 0/1/2 (train/val/test): name a split without some group
    in one sentence."""
    for k, split_name in enumerate(("train", "val", "test")):
        counts = torch.bincount(group[split == k], minlength=len(group_names))
        if (counts == 0).any():
            empty = group_names[int(torch.nonzero(counts == 0)[0])]
            raise ValueError(
                f"{table}: the {split_name} split has no rows of group {empty}; every split needs every "
                "group (its worst-group accuracy is undefined otherwise)."
            )


def whole(split: Dataset) -> Batch:
    """Every example of a split as one `Batch` (the full-batch view the theory probes need)."""
    return split[list(range(len(split)))]


class TensorSplit(Dataset):
    """A split held in memory; indexed by a list of positions, it returns a whole `Batch` at once."""

    def __init__(self, x: Tensor, y: Tensor, group: Tensor) -> None:
        self.x, self.y, self.group = x, y, group.long()

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, index: list[int] | Tensor) -> Batch:
        if isinstance(index, list) and index == list(range(len(self.y))):  # the full batch: no copy
            return Batch(self.x, self.y, self.group, torch.arange(len(self.y), device=self.y.device))
        index = torch.as_tensor(index, dtype=torch.long)
        return Batch(self.x[index], self.y[index], self.group[index], index)

    def to(self, device: torch.device) -> TensorSplit:
        return TensorSplit(self.x.to(device), self.y.to(device), self.group.to(device))


class GroupDataModule(L.LightningDataModule):
    """Shared datamodule: subclasses build `train`, `val`, `test` splits with a `.group` tensor.

    `batch_size=None` is full-batch mode: the whole training set is one batch. What to evaluate after
    every epoch (`eval_splits`) and how to draw training samples (`sample_weights`) belong to the
    LightningModule it serves, and are read from there.
    """

    group_names: tuple[str, ...] = ()
    regression = False  # real-valued targets: accuracy means nothing, the report shows losses

    def __init__(
        self, batch_size: int | None, eval_batch_size: int | None, num_workers: int, labels: str, seed: int
    ) -> None:
        super().__init__()
        if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
            raise ValueError(
                f"batch_size must be a positive integer or null (full batch), got {batch_size!r}"
            )
        if labels not in LABEL_ENCODINGS:
            raise ValueError(f"labels must be one of {', '.join(LABEL_ENCODINGS)}, got {labels!r}")
        if not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError(f"num_workers must be an integer ≥ 0, got {num_workers!r}")
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.num_workers, self.labels, self.seed = num_workers, labels, seed
        self.drop_last = False
        self.train = self.val = self.test = self.train_eval = None
        self.device_splits: dict[int, Dataset] = {}  # in-memory splits copied to the accelerator, by id

    # Facts about the data that the model and reweighter need (read after setup).
    @property
    def n_groups(self) -> int:
        return len(self.group_names)

    @property
    def n_train(self) -> int:
        return len(self.train)

    @property
    def group_counts(self) -> Tensor:
        return torch.bincount(self.train.group, minlength=self.n_groups)

    @property
    def train_classes(self) -> Tensor:
        """Each training example's class (a scalar target's class: whether it exceeds `label_threshold`)."""
        return class_ids(self.train.y, self.label_threshold)

    @property
    def group_attributes(self) -> Tensor | None:
        """Each group's spurious attribute id, when the groups are (class, attribute) pairs in class-major
        order (group = class·A + attribute, as the datasets here build them: checked on the training
        set); None otherwise."""
        if self.n_groups % self.n_classes:
            return None
        per_class = self.n_groups // self.n_classes
        if not bool((self.train.group // per_class == self.train_classes).all()):
            return None
        return torch.arange(self.n_groups) % per_class

    @property
    def train_class_counts(self) -> Tensor:
        return torch.bincount(self.train_classes, minlength=self.n_classes)

    @property
    def n_outputs(self) -> int:
        return self.n_classes if self.labels == "index" else 1

    @property
    def label_threshold(self) -> float:
        """Scalar outputs above this are predicted as class 1 (0 for ±1 labels, ½ for 0/1 labels)."""
        return 0.0 if self.labels == "pm1" else 0.5

    n_classes: int = 2

    def setup(self, stage: str | None = None) -> None:
        if self.train is None:
            splits = self.build_splits()
            self.train, self.val, self.test = splits[:3]
            # The training set seen with evaluation transforms (the same tensors for in-memory data).
            self.train_eval = splits[3] if len(splits) > 3 else self.train

    def build_splits(self) -> tuple[Dataset, ...]:
        """train, val, test (and optionally train with evaluation transforms)."""
        raise NotImplementedError

    @property
    def in_shape(self) -> tuple[int, ...]:
        if hasattr(self.train, "out_shape"):  # stored images that a device transform resizes
            return tuple(self.train.out_shape)
        return tuple(self.train[[0]].x.shape[1:])

    def on_after_batch_transfer(self, batch: Batch, dataloader_idx: int) -> Batch:
        """Splits of stored images (`data.pipeline=cached`) are augmented here, on the device."""
        training = self.trainer is not None and self.trainer.training
        transform = getattr(self.train if training else self.val, "device_transform", None)
        return batch if transform is None else batch._replace(x=transform(batch.x))

    def on_accelerator(self, split: Dataset) -> Dataset:
        """An in-memory split, copied once to the trainer's accelerator (batches are indexed there)."""
        device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
        if device.type == "cpu":
            return split
        if id(split) not in self.device_splits:
            self.device_splits[id(split)] = split.to(device)
        return self.device_splits[id(split)]

    def served(self, attribute: str, default):
        """A setting of the LightningModule this datamodule serves (`default` outside a trainer)."""
        module = self.trainer.lightning_module if self.trainer is not None else None
        return default if module is None else getattr(module, attribute)

    def train_dataloader(self) -> DataLoader:
        n = len(self.train)
        sample_weights = self.served("sample_weights", lambda groups: None)(self.train.group)
        world = self.trainer.world_size if self.trainer is not None else 1
        if world > 1:  # DDP: each rank draws its shard; the sampler is reseeded every epoch (set_epoch)
            if sample_weights is not None:
                raise ValueError("weighting.mode=sampler is not supported with DDP; use weighting.mode=loss")
            rank = self.trainer.global_rank
            order = DistributedSampler(
                range(n), num_replicas=world, rank=rank, shuffle=self.batch_size is not None, seed=self.seed
            )
            size = self.batch_size or -(-n // world)
            return self._loader(self.train, order, size, self.drop_last)
        if sample_weights is not None:
            order = WeightedDraws(sample_weights, self.minibatch_order)
        elif self.batch_size is None:
            # Full batch: an in-memory training set goes to the device once, not at every chunk.
            order = SequentialSampler(range(n))
            if isinstance(self.train, TensorSplit):
                return self._loader(self.train, order, n, False, to_device=True)
        else:
            order = self.minibatch_order(n)
        return self._loader(self.train, order, self.batch_size or n, self.drop_last)

    def minibatch_order(self, n: int):
        """The order mini-batches are cut from: a fresh permutation every epoch (global RNG)."""
        return RandomSampler(range(n))

    def val_dataloader(self) -> list[DataLoader]:
        splits = {"val": self.val, "test": self.test, "train": self.train_eval}
        return [self._eval_loader(splits[name]) for name in self.served("eval_splits", ["val"])]

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader(self.test)

    def _eval_loader(self, split: Dataset) -> DataLoader:
        size = self.eval_batch_size or self.batch_size or len(split)
        return self._loader(split, SequentialSampler(range(len(split))), size, False)

    def _loader(
        self, split: Dataset, order, batch_size: int, drop_last: bool, to_device: bool = False
    ) -> DataLoader:
        batches = EpochBatchSampler(order, batch_size=min(batch_size, len(split)), drop_last=drop_last)
        # Stored images (data.pipeline=cached) always live where training runs; they are only indexed,
        # so worker processes would copy them and add nothing.
        stored = hasattr(split, "device_transform")
        placed = self.on_accelerator(split) if stored or to_device else split
        workers = 0 if stored else self.num_workers
        return DataLoader(
            placed,
            sampler=batches,
            batch_size=None,
            num_workers=workers,
            persistent_workers=workers > 0,
            pin_memory=torch.cuda.is_available() and placed is split,  # batches already on a GPU: no pinning
        )


class EpochBatchSampler(BatchSampler):
    """Batches of a split's indices, passed to the DataLoader as its sampler (each item is a whole batch).
    Forwards `set_epoch`, which Lightning calls on a loader's sampler, to a DistributedSampler inside."""

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)


class WeightedDraws(Sampler):
    """An epoch of training indices drawn by per-sample weights, read afresh at the start of every epoch
    (a reweighter may change them between epochs: JTT's second stage). Equal weights on a subset visit
    that subset once per epoch in the datamodule's mini-batch order (`order(m)`, over range(m)): a
    subsample, or all of the data exactly as a plain run orders it. Unequal weights draw n indices with
    replacement, proportionally to the weights. Both draw from the global RNG (seeded by the run's seed),
    whose state checkpoints carry."""

    def __init__(self, weights: Tensor, order: Callable[[int], Sampler]) -> None:
        self.weights, self.order = weights, order

    def support(self, weights: Tensor) -> Tensor | None:
        """The indices of an equally weighted subset, or None when the weights differ."""
        positive = weights > 0
        kept = weights[positive]
        return torch.nonzero(positive).flatten() if bool((kept == kept[0]).all()) else None

    def __iter__(self):
        weights = self.weights.detach().cpu()
        support = self.support(weights)
        if support is not None:
            yield from (int(support[i]) for i in self.order(len(support)))
        else:
            yield from WeightedRandomSampler(weights, num_samples=len(weights), replacement=True)

    def __len__(self) -> int:
        support = self.support(self.weights.detach().cpu())
        return len(self.weights) if support is None else len(support)
