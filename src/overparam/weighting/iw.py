"""Importance weighting (Shimodaira 2000): every group contributes equally, q_i ∝ 1 / n_{g(i)}."""

from __future__ import annotations

import torch
from torch import Tensor

from overparam.weighting.base import Reweighter

MODES = ("loss", "sampler")


class ImportanceWeighting(Reweighter):
    """Static group-balancing weights 1/(K·n_k) (seed 001 §2.1).

    `mode=loss` weights the losses: on the full batch q_i = 1/(K·n_k) exactly; on a mini-batch each
    sample keeps weight ∝ 1/n_k, renormalised over the batch. `mode=sampler` instead draws n samples with
    replacement with probability ∝ 1/n_k and averages their losses, as the authors' code does.
    """

    def __init__(self, n_groups: int, group_counts: Tensor, n_train: int, mode: str) -> None:
        super().__init__(n_groups, group_counts, n_train)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        counts = torch.as_tensor(group_counts, dtype=torch.float64)
        if (counts == 0).any():
            empty = torch.nonzero(counts == 0).flatten().tolist()
            raise ValueError(
                f"group_counts has empty group(s) {empty}; importance weights 1/n_k need every group"
            )
        self.mode = mode
        self.static = mode == "loss"
        self.register_buffer("inverse_counts", (1.0 / counts).float())

    def forward(self, losses: Tensor, groups: Tensor, index: Tensor) -> Tensor:
        if self.mode == "sampler":
            return torch.full_like(losses, 1.0 / len(losses)).detach()
        q = self.inverse_counts[groups].to(losses.dtype)
        return q / q.sum()

    def max_weight(self) -> float:
        return 1.0 / self.n_train if self.mode == "sampler" else 1.0 / (self.n_groups * self.smallest_group)

    def sample_weights(self, train_groups: Tensor) -> Tensor | None:
        return self.inverse_counts[train_groups] if self.mode == "sampler" else None
