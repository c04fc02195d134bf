"""Seed 004's closed forms for ReLU nets with node scales λ (Caron et al. 2023, Sect. 3–5)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

LAMBDA_TILDES = ("zipf", "zipf_code", "uniform_k")


def node_scales(width: int, gamma: float, alpha: float, lambda_tilde: str = "zipf", k: int = 1) -> Tensor:
    """λ_{m,1..m} in float64: γ/m + (1 − γ) λ̃_j / Σ_{k≤m} λ̃_k, with λ̃_j ∝ j^{−1/α} (`zipf`, Eq. 4), the
    authors' code's Zipf pmf that gives node 1 nothing and node j ≥ 2 (j − 1)^{−1/α} (`zipf_code`), or
    1/K on the first `k` nodes (`uniform_k`, a width-K net when γ = 0). They sum to 1."""
    if not 0 <= gamma <= 1:
        raise ValueError(f"gamma must be in [0, 1], got {gamma!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1) (Zipf exponent), got {alpha!r}")
    if lambda_tilde not in LAMBDA_TILDES:
        raise ValueError(f"lambda_tilde must be one of {', '.join(LAMBDA_TILDES)}, got {lambda_tilde!r}")
    j = torch.arange(1, width + 1, dtype=torch.float64)
    if lambda_tilde == "zipf":
        tilde = j.pow(-1 / alpha)
    elif lambda_tilde == "zipf_code":
        tilde = torch.where(j > 1, (j - 1).clamp(min=1).pow(-1 / alpha), torch.zeros_like(j))
    else:
        if not 1 <= k <= width:
            raise ValueError(f"k must be in [1, width] for lambda_tilde=uniform_k, got {k!r}")
        tilde = (j <= k).double()
    return gamma / width + (1 - gamma) * tilde / tilde.sum()


def relu_slope_agreement(x: Tensor, z: Tensor | None = None) -> Tensor:
    """p_ii' = P(w·x_i > 0, w·z_i' > 0) = (π − θ_ii')/(2π) for w ~ N(0, I), θ the angle between inputs
    (z = x when not given)."""
    x = x.flatten(1).double()
    z = x if z is None else z.flatten(1).double()
    cosine = (x / x.norm(dim=1, keepdim=True)) @ (z / z.norm(dim=1, keepdim=True)).T
    return (math.pi - torch.arccos(cosine.clamp(-1, 1))) / (2 * math.pi)


def mean_ntg(x: Tensor, z: Tensor | None = None) -> Tensor:
    """Θ̂*(X, Z) = (XZᵀ/d) · (π − θ)/(2π), the NTG averaged over the weights (Prop 3.1), for any λ, m and
    init scale: Σ_j λ_j = 1 and the nodes are i.i.d. (Z = X when not given.)"""
    x = x.flatten(1).double()
    z = x if z is None else z.flatten(1).double()
    return (x @ z.T / x.shape[1]) * relu_slope_agreement(x, z)


def kernel_flow_prediction(
    x_train: Tensor, y_train: Tensor, x_test: Tensor, f0_train: Tensor, f0_test: Tensor, time: float
) -> Tensor:
    """Test predictions of gradient flow on L = ½Σ_i (y_i − f(x_i))² for time t in the kernel regime, with the
    limiting NTG Θ̂* fixed (spec T11): f_t(x) = f_0(x) + Θ̂*(x, X) Θ̂*⁻¹ (I − e^{−Θ̂* t}) (y − f_0(X))."""
    evals, evecs = torch.linalg.eigh(mean_ntg(x_train))
    reached = evecs @ torch.diag(-torch.expm1(-evals * time) / evals) @ evecs.T  # Θ⁻¹(I − e^{−Θt})
    residual = y_train.double().flatten() - f0_train.double().flatten()
    return f0_test.double().flatten() + mean_ntg(x_test, x_train) @ reached @ residual


def kappa(x: Tensor) -> float:
    """κ_n = λ_min(Θ̂*(X)) > 0 for distinct, non-parallel inputs (Prop 3.1)."""
    return float(torch.linalg.eigvalsh(mean_ntg(x))[0])


def ntg_spread(x: Tensor) -> float:
    """C_0(X) = Σ_ii' (x_iᵀx_i'/d)² Var(σ'(u_i)σ'(u_i')) for ReLU (the variance is p(1 − p)), so that
    E‖Θ̂_m(X; W_0) − Θ̂*‖_F² = C_0(X) Σ_j λ_{m,j}² exactly at any width (the finite-m form of Eq. 12)."""
    x = x.flatten(1).double()
    p = relu_slope_agreement(x)
    return float(((x @ x.T / x.shape[1]) ** 2 * p * (1 - p)).sum())


def expected_initial_velocity(x: Tensor, scale: float, init_std: float = 1.0) -> Tensor:
    """E[dw_j/dt] at t = 0 under gradient flow on L = ½Σ_i (y_i − f(x_i))² (Thm 5.1, ReLU):
    −λ_{m,j}/√d · Σ_i x_i g_1(x_i) with g_1(x) = s‖x‖/√(2πd); linear in λ_{m,j}, so it does not vanish
    with the width when γ < 1. (The mean is over the init and the output signs; y drops out.)"""
    x = x.flatten(1).double()
    d = x.shape[1]
    g1 = init_std * x.norm(dim=1) / math.sqrt(2 * math.pi * d)
    return -scale / math.sqrt(d) * (x * g1[:, None]).sum(0)


def departure(scales: Tensor, gamma: float) -> float:
    """(1 − γ)² Σ_j λ̃_j² = Σ_j (λ_{m,j} − γ/m)²: how far the node scales are from the NTK's 1/m, the
    constant in front of the NTG's non-vanishing randomness (Eq. 12) and of the feature learning that
    survives m → ∞. Zero for γ = 1."""
    scales = scales.double()
    return float((scales - gamma / len(scales)).pow(2).sum())


def tanh_ntg_drift(x: Tensor, init_std: float = 1.0, samples: int = 200_000, seed: int = 0) -> Tensor:
    """E[dΘ̂(x_k, x_l)/dt] at t = 0 divided by Σ_j λ_{m,j}², for tanh under gradient flow on
    L = ½Σ_i (y_i − f(x_i))² (Thm 5.2), averaged over w ~ N(0, s²I) and the output signs (y drops out):

        −(x_kᵀx_l)/d² · Σ_i [(x_kᵀx_i) g_2(k, l, i) + (x_lᵀx_i) g_2(l, k, i)],
        g_2(a, b, i) = E[σ''(z_a) σ'(z_b) σ'(z_i) σ(z_i)],  z ~ N(0, s² Gram(x_a, x_b, x_i)/d).

    The power of d is 2 by this derivation; the paper prints 3/2 (spec T10). The Gaussian expectations are
    Monte Carlo over `samples` shared draws."""
    x = x.flatten(1).double()
    n, d = x.shape
    gram = x @ x.T
    a, b, i = torch.meshgrid(torch.arange(n), torch.arange(n), torch.arange(n), indexing="ij")
    triples = torch.stack([a, b, i], -1).reshape(-1, 3)
    covariance = init_std**2 * gram[triples[:, :, None], triples[:, None, :]] / d
    cholesky = torch.linalg.cholesky(covariance + 1e-12 * torch.eye(3, dtype=torch.float64))
    draws = torch.randn(samples, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    z = torch.einsum("tpq,sq->tsp", cholesky, draws)  # (triples, samples, 3)
    tanh = torch.tanh(z)
    slope = 1 - tanh**2
    g2 = (
        (-2 * tanh[..., 0] * slope[..., 0] * slope[..., 1] * slope[..., 2] * tanh[..., 2])
        .mean(1)
        .reshape(n, n, n)
    )
    inner = torch.einsum("ki,kli->kl", gram, g2)  # Σ_i (x_kᵀx_i) g_2(k, l, i)
    return -gram / d**2 * (inner + inner.T)
