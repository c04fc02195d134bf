"""DORO (Zhai et al. 2021): drop the ε-fraction of largest losses as outliers, then CVaR or χ²-DRO."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from overparam.weighting.base import Reweighter
from overparam.weighting.chi2 import chi2_weights
from overparam.weighting.cvar import cvar_weights

BASES = ("cvar", "chi2")


class DORO(Reweighter):
    """The ⌊εn⌋ largest losses get weight 0; the rest are reweighted by `base` (CVaR α or χ² ρ).

    With `base=cvar` this is the authors' "robust CVaR": the mean of the sorted losses at positions
    (n − ⌊n(ε + α(1−ε))⌋, n − ⌊nε⌋], up to rounding.
    """

    def __init__(
        self,
        n_groups: int,
        group_counts: Tensor,
        n_train: int,
        eps: float,
        base: str,
        alpha: float,
        rho: float,
    ) -> None:
        super().__init__(n_groups, group_counts, n_train)
        if not isinstance(eps, (int, float)) or not 0 <= eps < 1:
            raise ValueError(f"eps must be in [0, 1), got {eps!r}")
        if base not in BASES:
            raise ValueError(f"base must be one of {', '.join(BASES)}, got {base!r}")
        if not 0 < alpha <= 1 or not rho > 0:
            raise ValueError(f"alpha must be in (0, 1] and rho > 0, got alpha={alpha!r}, rho={rho!r}")
        self.eps, self.base, self.alpha, self.rho = float(eps), base, float(alpha), float(rho)

    def forward(self, losses: Tensor, groups: Tensor, index: Tensor) -> Tensor:
        n = len(losses)
        dropped = min(math.floor(self.eps * n), n - 1)
        kept = torch.sort(losses.detach(), descending=True, stable=True).indices[dropped:]
        rest = losses[kept]
        q_rest = cvar_weights(rest, self.alpha) if self.base == "cvar" else chi2_weights(rest, self.rho)
        q = torch.zeros_like(losses)
        q[kept] = q_rest.to(losses.dtype)
        return q

    def max_weight(self) -> float:
        kept = self.n_train - math.floor(self.eps * self.n_train)
        if self.base == "cvar":
            return min(1.0, 1.0 / (self.alpha * kept))
        return min(1.0, (1.0 + math.sqrt(2 * self.rho * kept)) / kept)
