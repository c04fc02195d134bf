"""Group DRO (Sagawa et al. 2020a, Alg. 1): exponentiated-gradient ascent on group weights."""

from __future__ import annotations

import torch
from torch import Tensor

from overparam.weighting.base import Reweighter, group_membership, spread_over_groups


class GroupDRO(Reweighter):
    """g ← g ⊙ exp(η_q · L_k), normalised, every step; q_i = g_k / |B ∩ D_k| (seed 001 eq. 3).

    L_k is the mean loss of group k in the batch (0 for a group absent from it, so its weight shrinks
    relative to the others, as in the authors' code). The update uses the losses at the current
    parameters, before the objective Σ_i q_i ℓ_i is formed. Under DDP the per-group sums and counts are
    all-reduced first, so every rank holds the same g.
    """

    def __init__(self, n_groups: int, group_counts: Tensor, n_train: int, eta: float) -> None:
        super().__init__(n_groups, group_counts, n_train)
        if not isinstance(eta, (int, float)) or not eta > 0:
            raise ValueError(f"eta must be a number > 0 (the group-weight step size η_q), got {eta!r}")
        self.eta = float(eta)
        self.register_buffer("g", torch.full((n_groups,), 1.0 / n_groups))

    def forward(self, losses: Tensor, groups: Tensor, index: Tensor) -> Tensor:
        return self.stacked([self], losses.unsqueeze(0), groups, index)[0]

    @classmethod
    def stacked(cls, members: list[GroupDRO], losses: Tensor, groups: Tensor, index: Tensor) -> Tensor:
        """Every member's update at once: g rows `(members, k)`, each with its own η_q."""
        g = torch.stack([member.g for member in members])
        membership = group_membership(groups, g.shape[1], g.dtype)
        sums, counts = losses.detach().to(g.dtype) @ membership, membership.sum(0)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(sums)
            torch.distributed.all_reduce(counts)
        group_loss = sums / counts.clamp(min=1)
        eta = torch.tensor([member.eta for member in members], dtype=g.dtype, device=g.device)
        # Multiplying in log space keeps g finite when η_q · L_k is large.
        g = torch.softmax(torch.log(g) + eta[:, None] * group_loss, dim=1)
        for member, row in zip(members, g):
            member.g.copy_(row)
        return spread_over_groups(g, groups).to(losses.dtype)

    def max_weight(self) -> float:
        return 1.0 / self.smallest_group  # all of g on the smallest group
