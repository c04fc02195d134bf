"""Empirical risk minimisation: q_i = 1/n."""

from __future__ import annotations

import torch
from torch import Tensor

from overparam.weighting.base import Reweighter


class ERM(Reweighter):
    """Uniform weights over the batch (seed 001 §2.1)."""

    uniform = True
    static = True

    def __init__(self, n_groups: int, group_counts: Tensor, n_train: int) -> None:
        super().__init__(n_groups, group_counts, n_train)

    def forward(self, losses: Tensor, groups: Tensor, index: Tensor) -> Tensor:
        if torch.compiler.is_compiling():
            # In a compiled step q is a constant of the graph; a kept tensor would be guarded on, and a
            # first call in another dtype (float32 before a float64 run) would compile the step twice.
            return torch.full_like(losses, 1.0 / len(losses))
        # Full-batch GD asks for the same q at every step: keep it (a fresh tensor costs ~10% of a tiny step).
        q = self.__dict__.get("cached_q")
        if q is None or q.shape != losses.shape or q.dtype != losses.dtype or q.device != losses.device:
            q = torch.full_like(losses, 1.0 / len(losses)).detach()
            self.__dict__["cached_q"] = q
        return q

    def max_weight(self) -> float:
        return 1.0 / self.n_train
