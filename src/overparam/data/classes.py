"""Many-class data for seed 004: digit images with one-hot targets, and precomputed feature files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from overparam.data.base import GroupDataModule, TensorSplit
from overparam.data.sources import load_digit_images

TARGETS = ("onehot", "index")


def check_targets(targets: str) -> None:
    if targets not in TARGETS:
        raise ValueError(f"targets must be one of {', '.join(TARGETS)}, got {targets!r}")


def class_targets(classes: np.ndarray, targets: str, n_classes: int) -> torch.Tensor:
    labels = torch.from_numpy(classes.astype(np.int64))
    if targets == "index":
        return labels
    return torch.nn.functional.one_hot(labels, n_classes).float()


class OneHotDigits(GroupDataModule):
    """All ten digits, flattened pixels in [0, 1] (no centering), as seed 004's MNIST experiment: one-hot
    targets treated as continuous (`targets=onehot`, for the squared loss) or class ids (`index`). The
    embedded MNIST has 5,000 images: `n_train`, `n_val` (the transfer protocol's external train and test
    halves) and `n_test` are drawn from them in the order of a permutation of `seed`. One group per class."""

    group_names = tuple(f"digit{k}" for k in range(10))
    n_classes = 10

    def __init__(
        self,
        source: str = "mnist",
        n_train: int = 2000,
        n_val: int = 2000,
        n_test: int = 1000,
        targets: str = "onehot",
        root: str | None = None,
        batch_size: int | None = None,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size, eval_batch_size, num_workers, "index", seed)
        check_targets(targets)
        if min(n_train, n_val, n_test) < 1:
            raise ValueError(f"n_train, n_val and n_test must be ≥ 1, got {n_train}, {n_val}, {n_test}")
        self.source, self.root, self.targets, self.sizes = source, root, targets, (n_train, n_val, n_test)

    @property
    def n_outputs(self) -> int:
        return 10

    def build_splits(self):
        images, digits = load_digit_images(self.source, self.root)
        if sum(self.sizes) > len(digits):
            raise ValueError(f"n_train + n_val + n_test must be ≤ {len(digits)} for source={self.source}")
        order = np.random.default_rng(self.seed).permutation(len(digits))
        splits, start = [], 0
        for size in self.sizes:
            rows = order[start : start + size]
            start += size
            x = torch.from_numpy(images[rows]).flatten(1)
            splits.append(
                TensorSplit(x, class_targets(digits[rows], self.targets, 10), torch.from_numpy(digits[rows]))
            )
        return tuple(splits)


class FeatureFile(GroupDataModule):
    """Precomputed features in one `.npz` (seed 004's CIFAR-10 setting: 512-d ResNet-18 features of the 50,000
    training and 10,000 test images): arrays `x_train`, `y_train`, `x_test`, `y_test` (class ids). Nothing is
    computed or downloaded here; see the README for making the file. The last `n_val` training rows are the
    validation split (the transfer protocol's external sets), unless the file holds `x_val`, `y_val`.

    Groups: one per class; or, when the file holds a spurious attribute per row (`a_train`, `a_test` and,
    with a validation split of its own, `a_val`; integer ids), one per (class, attribute) pair, named
    `class<y>_attr<a>` (an embedding study, or DFR-style features, with their spurious attribute)."""

    def __init__(
        self,
        path: str,
        n_val: int = 5000,
        targets: str = "index",
        batch_size: int | None = 64,
        eval_batch_size: int | None = 1000,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size, eval_batch_size, num_workers, "index", seed)
        check_targets(targets)
        self.path, self.n_val, self.targets = Path(path).expanduser(), n_val, targets
        self.n_classes = 0

    @property
    def n_outputs(self) -> int:
        return self.n_classes

    def build_splits(self):
        if not self.path.exists():
            raise FileNotFoundError(
                f"{self.path} is missing; it must be an .npz with x_train, y_train, x_test, y_test"
            )
        stored = dict(np.load(self.path))
        missing = [key for key in ("x_train", "y_train", "x_test", "y_test") if key not in stored]
        if missing:
            raise ValueError(
                f"{self.path} lacks {', '.join(missing)} (expected x_train, y_train, x_test, y_test)"
            )
        attributes = "a_train" in stored
        names = ("train", "val", "test") if "x_val" in stored else ("train", "test")
        needed = [f"a_{name}" for name in names]
        if attributes and any(key not in stored for key in needed):
            absent = ", ".join(key for key in needed if key not in stored)
            raise ValueError(f"{self.path} has a_train but lacks {absent}: every split needs its attribute")
        if "x_val" not in stored:
            n = len(stored["y_train"])
            if not 0 < self.n_val < n:
                raise ValueError(f"n_val must be in (0, {n}) for {self.path}, got {self.n_val}")
            for key in ("x", "y", "a"):
                if f"{key}_train" in stored:
                    whole = stored[f"{key}_train"]
                    stored[f"{key}_train"], stored[f"{key}_val"] = (
                        whole[: n - self.n_val],
                        whole[n - self.n_val :],
                    )
        labels = [np.asarray(stored[f"y_{name}"], dtype=np.int64) for name in ("train", "val", "test")]
        self.n_classes = int(max(y.max() for y in labels)) + 1
        if attributes:
            values = [np.asarray(stored[f"a_{name}"], dtype=np.int64) for name in ("train", "val", "test")]
            n_attributes = int(max(a.max() for a in values)) + 1
            groups = [y * n_attributes + a for y, a in zip(labels, values)]
            self.group_names = tuple(
                f"class{y}_attr{a}" for y in range(self.n_classes) for a in range(n_attributes)
            )
        else:
            groups = labels
            self.group_names = tuple(f"class{k}" for k in range(self.n_classes))
        return tuple(
            TensorSplit(
                torch.from_numpy(np.asarray(stored[f"x_{name}"], dtype=np.float32)),
                class_targets(y, self.targets, self.n_classes),
                torch.from_numpy(group),
            )
            for name, y, group in zip(("train", "val", "test"), labels, groups)
        )
