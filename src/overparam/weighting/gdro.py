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

    The authors' options (their `loss.py`): `adjustment` C adds the generalization adjustment C/√n_k to
    L_k in the update of g (one C, or one per group; n_k the training counts), and `normalize_loss`
    divides the (adjusted) L by its sum first. Neither changes the objective's gradient.
    """

    def __init__(
        self,
        n_groups: int,
        group_counts: Tensor,
        n_train: int,
        eta: float,
        missing_groups: str = "share",
        adjustment: float | list[float] = 0.0,
        normalize_loss: bool = False,
    ) -> None:
        super().__init__(n_groups, group_counts, n_train)
        if not isinstance(eta, (int, float)) or not eta > 0:
            raise ValueError(f"eta must be a number > 0 (the group-weight step size η_q), got {eta!r}")
        check_missing_groups(missing_groups)
        self.eta = float(eta)
        self.missing_groups, self.normalize_loss = missing_groups, bool(normalize_loss)
        self.register_buffer("g", torch.full((n_groups,), 1.0 / n_groups))
        self.register_buffer("adjustment_term", generalization_adjustment(adjustment, group_counts))

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
        group_loss = group_loss + torch.stack([m.adjustment_term for m in members]).to(group_loss)
        normalize = torch.tensor([m.normalize_loss for m in members], device=g.device)
        group_loss = torch.where(
            normalize[:, None], group_loss / group_loss.sum(-1, keepdim=True), group_loss
        )
        eta = torch.tensor([member.eta for member in members], dtype=g.dtype, device=g.device)
        # Multiplying in log space keeps g finite when η_q · L_k is large.
        g = torch.softmax(torch.log(g) + eta[:, None] * group_loss, dim=1)
        for member, row in zip(members, g):
            member.g.copy_(row)
        return spread_by_rule(g, groups, [member.missing_groups for member in members]).to(losses.dtype)

    def max_weight(self) -> float:
        return 1.0 / self.smallest_group  # all of g on the smallest group


class GreedyGroupDRO(Reweighter):
    """The authors' greedy variant (`btl`): rank the groups by an exponential moving average of their
    losses (plus the adjustment C/√n_k), then give the top groups, up to a training fraction α, weight
    p_k/α each (p_k the group's training fraction) and the next group what is left of 1. `min_var_weight`
    mixes in p: g ← w·p + (1 − w)·g. The average moves by `gamma` towards a group's batch loss whenever
    the group is in the batch (the first time, to it), before the ranking."""

    def __init__(
        self,
        n_groups: int,
        group_counts: Tensor,
        n_train: int,
        alpha: float,
        gamma: float = 0.1,
        adjustment: float | list[float] = 0.0,
        min_var_weight: float = 0.0,
        missing_groups: str = "drop",
    ) -> None:
        super().__init__(n_groups, group_counts, n_train)
        if not isinstance(alpha, (int, float)) or not 0 < alpha <= 1:
            raise ValueError(
                f"alpha must be a number in (0, 1] (the training fraction weighted), got {alpha!r}"
            )
        if not isinstance(gamma, (int, float)) or not 0 < gamma <= 1:
            raise ValueError(f"gamma must be a number in (0, 1] (the loss average's step), got {gamma!r}")
        if not isinstance(min_var_weight, (int, float)) or not 0 <= min_var_weight <= 1:
            raise ValueError(f"min_var_weight must be a number in [0, 1], got {min_var_weight!r}")
        check_missing_groups(missing_groups)
        self.alpha, self.gamma, self.min_var_weight = float(alpha), float(gamma), float(min_var_weight)
        self.missing_groups = missing_groups
        counts = torch.as_tensor(group_counts, dtype=torch.float64)
        self.register_buffer("group_fraction", counts / counts.sum())
        self.register_buffer("adjustment_term", generalization_adjustment(adjustment, group_counts))
        self.register_buffer("average_loss", torch.zeros(n_groups, dtype=torch.float64))
        self.register_buffer("seen", torch.zeros(n_groups, dtype=torch.bool))
        self.register_buffer("g", self.group_fraction.clone())

    def forward(self, losses: Tensor, groups: Tensor, index: Tensor) -> Tensor:
        membership = group_membership(groups, self.n_groups, self.average_loss.dtype)
        sums, counts = losses.detach().to(membership.dtype) @ membership, membership.sum(0)
        present = counts > 0
        keep = torch.where(self.seen, 1 - self.gamma * present.to(sums.dtype), torch.zeros_like(sums))
        self.average_loss.copy_(self.average_loss * keep + sums / counts.clamp(min=1) * (1 - keep))
        self.seen |= present
        ranking = torch.argsort(self.average_loss + self.adjustment_term, descending=True, stable=True)
        fraction = self.group_fraction[ranking]
        within = torch.cumsum(fraction, 0) <= self.alpha * (1 + 1e-12)
        weights = torch.where(within, fraction / self.alpha, torch.zeros_like(fraction))
        boundary = int(within.sum())
        if boundary < self.n_groups:
            weights[boundary] = 1 - weights.sum()
        weights = self.min_var_weight * fraction + (1 - self.min_var_weight) * weights
        self.g.copy_(torch.empty_like(weights).scatter_(0, ranking, weights))
        return spread_by_rule(self.g[None], groups, [self.missing_groups])[0].to(losses.dtype)

    def max_weight(self) -> float:
        return 1.0 / self.smallest_group


def check_missing_groups(rule: str) -> None:
    if rule not in MISSING_GROUPS:
        raise ValueError(f"missing_groups must be one of {', '.join(MISSING_GROUPS)}, got {rule!r}")


def generalization_adjustment(adjustment: float | list[float], group_counts: Tensor) -> Tensor:
    """C/√n_k per group (C one number or one per group, each ≥ 0), as the authors add it to the group
    losses that update g."""
    counts = torch.as_tensor(group_counts, dtype=torch.float64)
    values = list(adjustment) if hasattr(adjustment, "__len__") else [adjustment] * len(counts)
    if len(values) != len(counts) or not all(isinstance(v, (int, float)) and v >= 0 for v in values):
        raise ValueError(
            f"adjustment must be one number ≥ 0 or one per group ({len(counts)}), got {adjustment!r}"
        )
    scale = torch.tensor(values, dtype=torch.float64)
    return torch.where(counts > 0, scale / counts.clamp(min=1).sqrt(), torch.zeros_like(scale))


def spread_by_rule(group_mass: Tensor, groups: Tensor, rules: list[str]) -> Tensor:
    """Each member's group mass `(members, k)` spread over the batch's samples, a group missing from the
    batch handled by that member's rule (`share` renormalises, `drop` leaves it out)."""
    q = spread_over_groups(group_mass, groups, renormalize=False)
    share = torch.tensor([rule == "share" for rule in rules], device=q.device)
    return torch.where(share[:, None], q / q.sum(-1, keepdim=True), q)
