"""Binary digit pairs (e.g. 0 vs 1) from the embedded MNIST or scikit-learn digits, one group per class."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Sampler

from overparam.data.base import GroupDataModule, TensorSplit, encode_labels
from overparam.data.sources import load_digit_images

INPUT_NORMS = ("raw", "unit", "sqrt_d")
PICKS = ("first", "random")
SOURCES = ("mnist", "digits", "mnist_files", "cifar10_files")


class DigitPairs(GroupDataModule):
    """Two digits as a binary task: `digits[0]` is class 0 (group 0), `digits[1]` class 1 (group 1).

    Inputs are flattened pixels in [0, 1] (`input_norm=raw`), rescaled to ‖x‖ = 1 (`unit`) or to
    ‖x‖ = √d (`sqrt_d`, the NTK convention). The training set is `n_train` images drawn from both digits,
    or exactly `class_counts` of each (seed 000's six images are `class_counts=[5, 1]`, `pick=first`:
    the first five 0s and the first 1 of the file). Validation and test come from the remaining images.
    With `source=mnist_files` or `cifar10_files` the images are read from `root` (training and test files
    pooled); `digits` are then class ids (CIFAR-10: 0 airplane, 1 automobile).
    """

    def __init__(
        self,
        source: str,
        digits: list[int],
        n_train: int,
        n_val: int,
        n_test: int,
        input_norm: str,
        batch_size: int | None,
        class_counts: list[int] | None = None,
        pick: str = "random",
        root: str | None = None,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        labels: str = "pm1",
        seed: int = 0,
        split: float | None = None,
        shuffle: bool = True,
    ) -> None:
        super().__init__(batch_size, eval_batch_size, num_workers, labels, seed)
        if split is not None:
            if not isinstance(split, (int, float)) or not 0 < split <= 1:
                raise ValueError(
                    f"split must be a fraction in (0, 1] (batch = split · n_train) or null, got {split!r}"
                )
            if batch_size is not None:
                raise ValueError("set either batch_size or split (batch = split · n_train), not both")
        if source not in SOURCES:
            raise ValueError(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
        if len(digits) != 2 or digits[0] == digits[1] or not all(0 <= d <= 9 for d in digits):
            raise ValueError(f"digits must be two different digits in 0..9, got {list(digits)!r}")
        if min(n_train, n_val, n_test) < 1:
            raise ValueError(f"n_train, n_val and n_test must be ≥ 1, got {n_train}, {n_val}, {n_test}")
        if input_norm not in INPUT_NORMS:
            raise ValueError(f"input_norm must be one of {', '.join(INPUT_NORMS)}, got {input_norm!r}")
        if pick not in PICKS:
            raise ValueError(f"pick must be one of {', '.join(PICKS)}, got {pick!r}")
        if class_counts is not None and (len(class_counts) != 2 or min(class_counts) < 1):
            raise ValueError(f"class_counts must be two positive counts or null, got {class_counts!r}")
        self.source, self.digits, self.input_norm, self.pick = source, tuple(digits), input_norm, pick
        self.root = root
        self.class_counts = list(class_counts) if class_counts is not None else None
        self.sizes = (n_train, n_val, n_test)
        # Seed 003's batch splits: batches of round(split · n) partition the training set every epoch; without
        # shuffling it is the same partition (one permutation drawn from the data seed) every epoch.
        self.split, self.shuffle = split, shuffle
        if split is not None and split < 1:
            n = sum(class_counts) if class_counts is not None else n_train
            self.batch_size = max(1, round(split * n))
        self.group_names = tuple(f"digit{d}" for d in self.digits)

    def training_rows(self, digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        by_class = [np.flatnonzero(digit == d) for d in self.digits]
        if self.pick == "random":
            by_class = [rng.permutation(rows) for rows in by_class]
        if self.class_counts is not None:
            return np.concatenate([rows[:count] for rows, count in zip(by_class, self.class_counts)])
        pooled = (
            np.sort(np.concatenate(by_class))
            if self.pick == "first"
            else rng.permutation(np.concatenate(by_class))
        )
        return pooled[: self.sizes[0]]

    def minibatch_order(self, n: int):
        if self.split is not None and not self.shuffle:
            return FixedPermutation(n, self.seed)
        return super().minibatch_order(n)

    def build_splits(self):
        images, digit = load_digit_images(self.source, self.root)
        rng = np.random.default_rng(self.seed)
        train_rows = self.training_rows(digit, rng)
        rest = rng.permutation(np.setdiff1d(np.flatnonzero(np.isin(digit, self.digits)), train_rows))
        n_val, n_test = self.sizes[1:]
        if n_val + n_test > len(rest):
            raise ValueError(
                f"n_val + n_test = {n_val + n_test} but only {len(rest)} images of digits "
                f"{self.digits} remain after the training set in the {self.source} data"
            )
        splits = []
        for rows in (train_rows, rest[:n_val], rest[n_val : n_val + n_test]):
            x = torch.from_numpy(images[rows]).flatten(1)
            if self.input_norm != "raw":
                x = (
                    x
                    / x.norm(dim=1, keepdim=True)
                    * (x.shape[1] ** 0.5 if self.input_norm == "sqrt_d" else 1.0)
                )
            cls = torch.from_numpy((digit[rows] == self.digits[1]).astype(np.int64))
            splits.append(TensorSplit(x, encode_labels(cls, self.labels), cls))
        return tuple(splits)


class FixedPermutation(Sampler):
    """The same permutation of range(n) every epoch (seed 003's unshuffled batch split)."""

    def __init__(self, n: int, seed: int) -> None:
        self.order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()

    def __iter__(self):
        return iter(self.order)

    def __len__(self) -> int:
        return len(self.order)
