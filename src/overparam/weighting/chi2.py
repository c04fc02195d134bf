"""χ²-DRO (Hashimoto et al. 2018): the worst reweighting in a χ² ball around the empirical distribution."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from overparam.weighting.base import Reweighter


def chi2_dual_eta_rows(losses: Tensor, rho: Tensor) -> Tensor:
    """η* = argmin_η η + √(1+2ρ)·√(mean((ℓ − η)₊²)) of every row of `losses` `(rows, n)`, in closed form.

    The objective is convex with derivative F'(η) = 1 − √(1+2ρ)·mean((ℓ−η)₊)/√mean((ℓ−η)₊²), increasing in
    η. With the losses sorted, ℓ_(1) ≥ … ≥ ℓ_(n), F' at each ℓ_(j) needs only prefix sums, and the support
    of the optimum is the m = #{j : F'(ℓ_(j)) > 0} largest losses. On it, F'(η) = 0 is a quadratic whose
    root below the support's mean μ is η* = μ − √(V/(c·m − 1)), V the support's variance and c = (1+2ρ)/n
    (c·m ≥ 1 by Cauchy–Schwarz). No iteration: every row at once, and a graph `torch.compile` can hold.
    """
    ell = losses.detach().double()
    n = ell.shape[-1]
    scale = torch.sqrt(1 + 2 * rho.to(ell))[:, None]
    top = ell.sort(dim=-1, descending=True).values
    # Sums over the j − 1 losses above each ℓ_(j), taken relative to the row's largest loss.
    shifted = top - top[:, :1]
    zero = torch.zeros_like(top[:, :1])
    above = torch.cat([zero, shifted.cumsum(-1)[:, :-1]], -1)
    above_sq = torch.cat([zero, (shifted * shifted).cumsum(-1)[:, :-1]], -1)
    count = torch.arange(n, dtype=ell.dtype, device=ell.device)
    first = above - count * shifted  # Σ (ℓ_i − ℓ_(j))₊
    second = above_sq - 2 * shifted * above + count * shifted * shifted  # Σ (ℓ_i − ℓ_(j))₊²
    slope = torch.where(second > 0, 1 - scale * first / torch.sqrt(n * second.clamp(min=1e-300)), 1.0)
    m = (slope > 0).sum(-1, keepdim=True).clamp(min=1)
    support = torch.arange(n, device=ell.device) < m
    size = m.to(ell.dtype)
    mean = (shifted * support).sum(-1, keepdim=True) / size
    variance = (((shifted - mean) * support) ** 2).sum(-1, keepdim=True) / size
    excess_scale = (scale**2 * size / n - 1).clamp(min=1e-300)
    return (top[:, :1] + mean - torch.sqrt(variance / excess_scale)).squeeze(-1)


def chi2_dual_eta(losses: Tensor, rho: float) -> float:
    """η* of one vector of losses (see `chi2_dual_eta_rows`)."""
    return float(chi2_dual_eta_rows(losses[None], torch.tensor([float(rho)]))[0])


def chi2_weights(losses: Tensor, rho: float) -> Tensor:
    """Worst-case weights q_i ∝ (ℓ_i − η*)₊ of the χ² ball of radius ρ; uniform if all losses are equal.

    Args:
        losses: per-sample losses `(n,)`.
        rho: the radius ρ > 0 of D_χ²(Q‖P) = ½ E_P (dQ/dP − 1)² ≤ ρ.

    Returns:
        q `(n,)` on the simplex.
    """
    return chi2_weights_rows(losses[None], torch.tensor([float(rho)]))[0]


def chi2_weights_rows(losses: Tensor, rho: Tensor) -> Tensor:
    """`chi2_weights` of every row of `losses` `(rows, n)`, row k with radius `rho[k]`."""
    ell = losses.detach().double()
    excess = (ell - chi2_dual_eta_rows(ell, rho)[:, None]).clamp(min=0)
    at_max = (ell == ell.max(-1, keepdim=True).values).double()
    excess = torch.where(excess.sum(-1, keepdim=True) == 0, at_max, excess)  # η* at the maximum
    q = excess / excess.sum(-1, keepdim=True)
    flat = (ell.max(-1).values - ell.min(-1).values) == 0
    q = torch.where(flat[:, None], torch.full_like(q, 1.0 / ell.shape[-1]), q)
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
