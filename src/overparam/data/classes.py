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
    validation split (the transfer protocol's external sets). One group per class."""

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
        stored = np.load(self.path)
        missing = [key for key in ("x_train", "y_train", "x_test", "y_test") if key not in stored]
        if missing:
            raise ValueError(
                f"{self.path} lacks {', '.join(missing)} (expected x_train, y_train, x_test, y_test)"
            )
        self.n_classes = int(max(stored["y_train"].max(), stored["y_test"].max())) + 1
        self.group_names = tuple(f"class{k}" for k in range(self.n_classes))
        n = len(stored["y_train"])
        if not 0 < self.n_val < n:
            raise ValueError(f"n_val must be in (0, {n}) for {self.path}, got {self.n_val}")
        pieces = [
            (stored["x_train"][: n - self.n_val], stored["y_train"][: n - self.n_val]),
            (stored["x_train"][n - self.n_val :], stored["y_train"][n - self.n_val :]),
            (stored["x_test"], stored["y_test"]),
        ]
        return tuple(
            TensorSplit(
                torch.from_numpy(np.asarray(x, dtype=np.float32)),
                class_targets(np.asarray(y), self.targets, self.n_classes),
                torch.from_numpy(np.asarray(y, dtype=np.int64)),
            )
            for x, y in pieces
        )
