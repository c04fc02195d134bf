"""Inputs uniform on the unit sphere with a smooth target y = α(βᵀx)^p (seed 002, Sect. 6)."""

from __future__ import annotations

import torch

from overparam.data.base import GroupDataModule, TensorSplit


class SphereTargets(GroupDataModule):
    """x ~ uniform on S^{d−1}, y = α(βᵀx)^p with β a random vector of norm `beta_norm` (fixed by `seed`).

    Sect. 6 shows sqrt(yᵀ(H∞)⁻¹y) is bounded independently of n for p = 1 and even p, so such targets are
    learnable by a two-layer ReLU net with O(1/ε²) samples; odd p ≥ 3 falls outside the theorem. One group.
    """

    group_names = ("all",)

    def __init__(
        self,
        d: int,
        power: int,
        alpha: float,
        beta_norm: float,
        n_train: int,
        n_test: int,
        batch_size: int | None,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size, eval_batch_size, num_workers, "pm1", seed)
        if not isinstance(power, int) or power < 1:
            raise ValueError(f"power must be an integer ≥ 1, got {power!r}")
        if min(d, n_train, n_test) < 1:
            raise ValueError(f"d, n_train and n_test must be ≥ 1, got {d}, {n_train}, {n_test}")
        self.d, self.power, self.alpha, self.beta_norm = d, power, float(alpha), float(beta_norm)
        self.sizes = (n_train, n_test)

    def build_splits(self):
        gen = torch.Generator().manual_seed(self.seed)
        beta = torch.randn(self.d, generator=gen)
        beta = beta / beta.norm() * self.beta_norm
        splits = []
        for n in (self.sizes[0], self.sizes[1], self.sizes[1]):
            x = torch.randn(n, self.d, generator=gen)
            x = x / x.norm(dim=1, keepdim=True)
            y = self.alpha * (x @ beta) ** self.power
            splits.append(TensorSplit(x, y, torch.zeros(n, dtype=torch.long)))
        return tuple(splits)
