"""χ²-DRO (Hashimoto et al. 2018): the worst reweighting in a χ² ball around the empirical distribution."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from overparam.weighting.base import Reweighter


def chi2_dual_eta(losses: Tensor, rho: float, iterations: int = 200) -> float:
    """η* = argmin_η η + √(1+2ρ)·√(mean((ℓ − η)₊²)), by bisection on the derivative (float64).

    The objective is convex in η. Its derivative is 1 − √(1+2ρ)·mean((ℓ−η)₊)/√mean((ℓ−η)₊²), negative far
    below min ℓ and increasing; the root is found to machine precision.
    """
    ell = losses.detach().double()
    scale = math.sqrt(1 + 2 * rho)
    spread = float(ell.var(unbiased=False))
    lo = min(float(ell.min()), float(ell.mean()) - math.sqrt(spread / (2 * rho))) - 1.0
    hi = float(ell.max())
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        excess = (ell - mid).clamp(min=0)
        second = excess.pow(2).mean()
        slope = 1.0 if second == 0 else 1.0 - scale * float(excess.mean()) / math.sqrt(float(second))
        lo, hi = (mid, hi) if slope < 0 else (lo, mid)
        if hi - lo <= 1e-15 * max(1.0, abs(hi)):
            break
    return 0.5 * (lo + hi)


def chi2_weights(losses: Tensor, rho: float) -> Tensor:
    """Worst-case weights q_i ∝ (ℓ_i − η*)₊ of the χ² ball of radius ρ; uniform if all losses are equal.

    Args:
        losses: per-sample losses `(n,)`.
        rho: the radius ρ > 0 of D_χ²(Q‖P) = ½ E_P (dQ/dP − 1)² ≤ ρ.

    Returns:
        q `(n,)` on the simplex.
    """
    ell = losses.detach().double()
    if float(ell.max() - ell.min()) == 0.0:
        return torch.full_like(losses, 1.0 / len(losses))
    excess = (ell - chi2_dual_eta(ell, rho)).clamp(min=0)
    if float(excess.sum()) == 0.0:  # η* at the maximum: all mass on the largest loss(es)
        excess = (ell == ell.max()).double()
    return (excess / excess.sum()).to(losses.dtype)


def chi2_weights_rows(losses: Tensor, rho: Tensor, iterations: int = 200) -> Tensor:
    """`chi2_weights` of every row of `losses` `(members, n)`, row k with radius `rho[k]`: the same
    bisection run on all rows at once, each row frozen once its bracket is as narrow as the single
    solve's."""
    ell = losses.detach().double()
    rho = rho.to(ell)
    scale = torch.sqrt(1 + 2 * rho)
    spread = ell.var(dim=1, unbiased=False)
    lo = torch.minimum(ell.min(1).values, ell.mean(1) - torch.sqrt(spread / (2 * rho))) - 1.0
    hi = ell.max(1).values
    done = ~torch.isfinite(ell).all(1)  # a diverged member of a stacked model has nothing to solve
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        excess = (ell - mid[:, None]).clamp(min=0)
        second = excess.pow(2).mean(1)
        slope = torch.where(second == 0, 1.0, 1.0 - scale * excess.mean(1) / second.sqrt())
        below = slope < 0
        lo, hi = torch.where(done | ~below, lo, mid), torch.where(done | below, hi, mid)
        done = done | (hi - lo <= 1e-15 * hi.abs().clamp(min=1.0))
        if bool(done.all()):
            break
    excess = (ell - (0.5 * (lo + hi))[:, None]).clamp(min=0)
    at_max = (ell == ell.max(1, keepdim=True).values).double()
    excess = torch.where(excess.sum(1, keepdim=True) == 0, at_max, excess)
    q = excess / excess.sum(1, keepdim=True)
    flat = (ell.max(1).values - ell.min(1).values) == 0
    q = torch.where(flat[:, None], torch.full_like(q, 1.0 / ell.shape[1]), q)
    return q.to(losses.dtype)


def radius_from_alpha(alpha: float) -> float:
    """ρ = ½(1/α − 1)², the χ² radius matching a CVaR level α (seed 001 §2.2)."""
    return 0.5 * (1.0 / alpha - 1.0) ** 2


class ChiSquareDRO(Reweighter):
    """χ²-DRO with radius `rho`, or `alpha` (then ρ = ½(1/α − 1)²); give exactly one of them."""

    def __init__(
        self, n_groups: int, group_counts: Tensor, n_train: int, rho: float | None, alpha: float | None
    ) -> None:
        super().__init__(n_groups, group_counts, n_train)
        if (rho is None) == (alpha is None):
            raise ValueError(f"give exactly one of rho and alpha, got rho={rho!r}, alpha={alpha!r}")
        if alpha is not None and not 0 < alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
        self.rho = float(rho) if rho is not None else radius_from_alpha(alpha)
        if not self.rho > 0:
            raise ValueError(f"rho must be > 0, got {rho!r}")

    def forward(self, losses: Tensor, groups: Tensor, index: Tensor) -> Tensor:
        return chi2_weights(losses, self.rho)

    @classmethod
    def stacked(cls, members: list[Reweighter], losses: Tensor, groups: Tensor, index: Tensor) -> Tensor:
        return chi2_weights_rows(losses, torch.tensor([member.rho for member in members]))

    def max_weight(self) -> float:
        # ½ mean((n q − 1)²) ≤ ρ bounds every n q_i by 1 + √(2ρn).
        return min(1.0, (1.0 + math.sqrt(2 * self.rho * self.n_train)) / self.n_train)
