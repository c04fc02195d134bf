"""Binary digit pairs (e.g. 0 vs 1) from the embedded MNIST or scikit-learn digits, one group per class."""

from __future__ import annotations

import numpy as np
import torch

from overparam.data.base import GroupDataModule, TensorSplit, encode_labels
from overparam.data.sources import load_digit_images


class DigitPairs(GroupDataModule):
    """Two digits as a binary task: `digits[0]` is class 0, `digits[1]` class 1.

    Inputs are flattened; `unit_norm` rescales each to ‖x‖ = 1. `n_train` subsamples the training set
    (the theory experiments use a handful of images).
    """

    def __init__(
        self,
        source: str,
        digits: list[int],
        n_train: int,
        n_val: int,
        n_test: int,
        unit_norm: bool,
        batch_size: int | None,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        labels: str = "pm1",
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size, eval_batch_size, num_workers, labels, seed)
        if source not in ("mnist", "digits"):
            raise ValueError(f"source must be 'mnist' or 'digits', got {source!r}")
        if len(digits) != 2 or digits[0] == digits[1] or not all(0 <= d <= 9 for d in digits):
            raise ValueError(f"digits must be two different digits in 0..9, got {list(digits)!r}")
        if min(n_train, n_val, n_test) < 1:
            raise ValueError(f"n_train, n_val and n_test must be ≥ 1, got {n_train}, {n_val}, {n_test}")
        self.source, self.digits, self.unit_norm = source, tuple(digits), unit_norm
        self.sizes = (n_train, n_val, n_test)
        self.group_names = tuple(f"digit{d}" for d in self.digits)

    def build_splits(self):
        images, digit = load_digit_images(self.source)
        keep = np.flatnonzero(np.isin(digit, self.digits))
        if sum(self.sizes) > len(keep):
            raise ValueError(
                f"n_train + n_val + n_test = {sum(self.sizes)} but the {self.source} images hold only "
                f"{len(keep)} examples of digits {self.digits}"
            )
        keep = np.random.default_rng(self.seed).permutation(keep)
        x = torch.from_numpy(images[keep]).flatten(1)
        if self.unit_norm:
            x = x / x.norm(dim=1, keepdim=True)
        cls = torch.from_numpy((digit[keep] == self.digits[1]).astype(np.int64))
        bounds = np.cumsum((0,) + self.sizes)
        return tuple(
            TensorSplit(x[a:b], encode_labels(cls[a:b], self.labels), cls[a:b])
            for a, b in zip(bounds[:-1], bounds[1:])
        )
