"""Group DRO (Sagawa et al. 2020a, Alg. 1): exponentiated-gradient ascent on group weights."""

from __future__ import annotations

import torch
from torch import Tensor

from overparam.weighting.base import Reweighter, group_membership, spread_over_groups

MISSING_GROUPS = ("share", "drop")


class GroupDRO(Reweighter):
    """g ← g ⊙ exp(η_q · L_k), normalised, every step; q_i = g_k / |B ∩ D_k| (seed 001 eq. 3).

    L_k is the mean loss of group k in the batch (0 for a group absent from it, so its weight shrinks
    relative to the others, as in the authors' code). The update uses the losses at the current
    parameters, before the objective Σ_i q_i ℓ_i is formed. Under DDP the per-group sums and counts are
    all-reduced first, so every rank holds the same g.

    A group absent from a mini-batch: `missing_groups=drop` (the authors' code, whose objective is
    Σ_k g_k L_k) leaves its mass out of that step's objective; `share` hands it to the groups present
    (q stays in the simplex; that step is 1/(1 − g_absent) larger). Full batches see every group.
    """

    def __init__(
        self, n_groups: int, group_counts: Tensor, n_train: int, eta: float, missing_groups: str = "share"
    ) -> None:
        super().__init__(n_groups, group_counts, n_train)
        if not isinstance(eta, (int, float)) or not eta > 0:
            raise ValueError(f"eta must be a number > 0 (the group-weight step size η_q), got {eta!r}")
        if missing_groups not in MISSING_GROUPS:
            raise ValueError(
                f"missing_groups must be one of {', '.join(MISSING_GROUPS)}, got {missing_groups!r}"
            )
        self.eta = float(eta)
        self.missing_groups = missing_groups
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
        q = spread_over_groups(g, groups, renormalize=False)
        share = torch.tensor([member.missing_groups == "share" for member in members], device=q.device)
        return torch.where(share[:, None], q / q.sum(-1, keepdim=True), q).to(losses.dtype)

    def max_weight(self) -> float:
        return 1.0 / self.smallest_group  # all of g on the smallest group
