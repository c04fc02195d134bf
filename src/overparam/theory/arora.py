"""Two-layer ReLU nets in the kernel regime (seed 002, Arora et al. 2019): H∞, rates, complexity, bounds."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def h_infinity(X: Tensor, Z: Tensor | None = None) -> Tensor:
    """H∞_ij = x_iᵀz_j (π − arccos(x_iᵀz_j)) / (2π), the Gram matrix of the trained first layer (Sect. 3).

    Args:
        X: unit-norm inputs `(n, d)`.
        Z: unit-norm inputs `(m, d)` (default X).

    Returns:
        H∞ `(n, m)` in float64.
    """
    X = X.double()
    symmetric = Z is None
    Z = X if symmetric else Z.double()
    cosine = (X @ Z.T).clamp(-1.0, 1.0)
    H = cosine * (math.pi - torch.arccos(cosine)) / (2 * math.pi)
    if symmetric:  # arccos is ill-conditioned at 1: set the diagonal to its exact value ‖x‖²/2
        H.diagonal().copy_((X * X).sum(1) / 2)
    return H


def spectrum(H: Tensor) -> tuple[Tensor, Tensor]:
    """Eigenvalues (descending) and the matching orthonormal eigenvectors (columns) of a symmetric H."""
    eigenvalues, eigenvectors = torch.linalg.eigh(H.double())
    return eigenvalues.flip(0), eigenvectors.flip(1)


def predicted_residual(eigenvalues: Tensor, projections: Tensor, eta: float, steps: Tensor) -> Tensor:
    """‖y − u(k)‖ ≈ sqrt(Σ_i (1 − ηλ_i)^{2k} (v_iᵀy)²) of the linearised dynamics (eq. 7, Thm 4.1).

    Args:
        eigenvalues: λ_i of H∞ `(n,)`.
        projections: v_iᵀy `(n,)`.
        eta: the step size η (for the sum loss ½ Σ (y_i − u_i)²).
        steps: the iterations k `(T,)`.

    Returns:
        the predicted residual norms `(T,)`.
    """
    factors = (1 - eta * eigenvalues.double())[None, :] ** (2 * steps.double()[:, None])
    return (factors * projections.double()[None, :] ** 2).sum(1).sqrt()


def complexity_measure(H: Tensor, y: Tensor) -> float:
    """sqrt(2 yᵀ(H∞)⁻¹y / n) (eq. 10), the data-dependent complexity of Thm 5.1, in float64."""
    factor = torch.linalg.cholesky(H.double())
    return math.sqrt(
        2 * float(y.double() @ torch.cholesky_solve(y.double()[:, None], factor).squeeze(1)) / len(y)
    )


def generalization_bound(H: Tensor, y: Tensor, delta: float = 0.05) -> float:
    """Thm 5.1 / Cor 5.2 without its unspecified constant: sqrt(2yᵀH⁻¹y/n) + sqrt(log(n/(λ₀δ))/n)."""
    n, lam_min = len(y), float(torch.linalg.eigvalsh(H.double())[0])
    return complexity_measure(H, y) + math.sqrt(math.log(n / (lam_min * delta)) / n)


def largest_stable_step(H: Tensor) -> float:
    """GD on ½‖y − u‖² in the kernel regime diverges once η·λ_max(H∞) ≥ 2."""
    return 2.0 / float(torch.linalg.eigvalsh(H.double())[-1])


def learnability_bound(alpha: float, beta_norm: float, power: int) -> float:
    """Sect. 6 bound on sqrt(yᵀ(H∞)⁻¹y) for y = α(βᵀx)^p: 2|α|‖β‖ for p = 1 (the proof's constant), and
    √(2π)(2l − 1)|α|‖β‖^{2l} for p = 2l (via H∞ ⪰ K^{∘2l}/(2π(2l−1)²)). Odd p ≥ 3 has no bound (Thm 6.1)."""
    if power == 1:
        return 2 * abs(alpha) * beta_norm
    if power % 2 == 0:
        return math.sqrt(2 * math.pi) * (power - 1) * abs(alpha) * beta_norm**power
    raise ValueError(f"power must be 1 or even (H∞ has no odd-degree ≥ 3 component), got {power}")
