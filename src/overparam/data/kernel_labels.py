"""Digit pairs with the label vectors of seed 002: true, random, worst-case, or a corrupted fraction p."""

from __future__ import annotations

import math

import torch

from overparam.data.base import TensorSplit
from overparam.data.digit_pairs import DigitPairs
from overparam.theory.arora import h_infinity, spectrum

TARGETS = ("clean", "random", "worst")


class KernelLabelPairs(DigitPairs):
    """A digit pair (unit-norm inputs, ±1 labels) whose labels follow seed 002's experiments.

    `targets=clean` keeps the true labels, `targets=random` draws i.i.d. ±1 labels, `targets=worst` uses
    √n·v_n, the eigenvector of H∞'s smallest eigenvalue on the training inputs (test labels stay true).
    `corruption=p` replaces a fraction p of train and test labels by fresh ±1 draws, coupled across p:
    each point's uniform u_i and fresh label are drawn once per seed, and the label is replaced wherever
    u_i < p, so the corrupted sets are nested.
    Groups stay the digit classes.
    """

    def __init__(self, targets: str, corruption: float, **pair_options) -> None:
        super().__init__(**pair_options)
        if targets not in TARGETS:
            raise ValueError(f"targets must be one of {', '.join(TARGETS)}, got {targets!r}")
        if not 0 <= corruption <= 1:
            raise ValueError(f"corruption must be a fraction in [0, 1], got {corruption!r}")
        if self.labels != "pm1" or self.input_norm != "unit":
            raise ValueError("seed 002 needs labels=pm1 and input_norm=unit")
        self.targets, self.corruption = targets, float(corruption)

    def build_splits(self):
        train, val, test = super().build_splits()
        gen = torch.Generator().manual_seed(self.seed + 1)
        relabelled = []
        for split in (train, val, test):
            u = torch.rand(len(split), generator=gen)
            fresh = torch.where(torch.rand(len(split), generator=gen) < 0.5, -1.0, 1.0)
            y = split.y.clone()
            if split is train and self.targets == "random":
                y = fresh
            elif split is train and self.targets == "worst":
                y = spectrum(h_infinity(split.x))[1][:, -1].float() * math.sqrt(len(split))
            y = torch.where(u < self.corruption, fresh, y)
            relabelled.append(TensorSplit(split.x, y, split.group))
        return tuple(relabelled)
