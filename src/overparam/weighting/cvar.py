"""CVaR-DRO: the worst α-fraction of the batch carries all the weight (seed 000 §2.2, seed 001 §2.2)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from overparam.weighting.base import Reweighter


def cvar_weights(losses: Tensor, alpha: float) -> Tensor:
    """argmax_q Σ q_i ℓ_i over {0 ≤ q_i ≤ 1/(αn), Σ q = 1}.

    The ⌊αn⌋ largest losses get 1/(αn) each, the next one the remaining mass, every other sample 0.
    Ties are broken by index.

    Args:
        losses: per-sample losses `(n,)`.
        alpha: the fraction α ∈ (0, 1].

    Returns:
        q `(n,)` on the simplex.
    """
    n = len(losses)
    cap = 1.0 / (alpha * n)
    order = torch.sort(losses.detach(), descending=True, stable=True).indices
    full = min(math.floor(alpha * n + 1e-9), n)
    ranked = torch.zeros(n, dtype=losses.dtype, device=losses.device)
    ranked[:full] = cap
    if full < n:
        ranked[full] = 1.0 - full * cap
    q = torch.empty_like(ranked)
    q[order] = ranked
    return q.clamp(min=0)


class CVaR(Reweighter):
    """Conditional value at risk at level α: the average of the worst α-fraction of the batch's losses."""

    def __init__(self, n_groups: int, group_counts: Tensor, n_train: int, alpha: float) -> None:
        super().__init__(n_groups, group_counts, n_train)
        if not isinstance(alpha, (int, float)) or not 0 < alpha <= 1:
            raise ValueError(f"alpha must be in (0, 1], got {alpha!r}")
        self.alpha = float(alpha)

    def forward(self, losses: Tensor, groups: Tensor, index: Tensor) -> Tensor:
        return cvar_weights(losses, self.alpha)

    def max_weight(self) -> float:
        return min(1.0, 1.0 / (self.alpha * self.n_train))
