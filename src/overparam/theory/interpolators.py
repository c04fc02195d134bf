"""Where (re)weighted gradient descent ends up on linear and linearized models (seeds 000 and 001)."""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import minimize
from torch import Tensor


def interpolator(X: Tensor, y: Tensor, theta0: Tensor) -> Tensor:
    """θ* = θ0 + Xᵀ(XXᵀ)⁻¹(y − Xθ0): the interpolator with θ* − θ0 in the row span of X.

    Every GRW method that drives the training loss to 0 converges here (seed 000 Thm 1, seed 001 §3.1).

    Args:
        X: features `(n, p)`, one row per sample (for a linearized network, ∇θ f(x_i; θ0)).
        y: targets `(n,)` (for a linearized network, y − f(X; θ0)).
        theta0: the initialization `(p,)`.

    Returns:
        θ* `(p,)`.
    """
    residual = y - X @ theta0
    return theta0 + X.T @ torch.linalg.solve(X @ X.T, residual)


def regularized_solution(X: Tensor, y: Tensor, theta0: Tensor, q: Tensor, mu: float) -> Tensor:
    """θ*_μ = θ0 + Xᵀ(Q XXᵀ + μI)⁻¹ Q (y − Xθ0), the minimiser of Σ q_i ½(x_iᵀθ − y_i)² + μ/2‖θ − θ0‖².

    Seed 000 §2.4 (push-through form). Unlike θ*, it depends on the static weights q.

    Args:
        X: features `(n, p)`.
        y: targets `(n,)`.
        theta0: the initialization and centre of the penalty `(p,)`.
        q: static sample weights `(n,)` on the simplex.
        mu: the penalty μ > 0.

    Returns:
        θ*_μ `(p,)`.
    """
    Q = torch.diag(q.to(X.dtype))
    system = Q @ X @ X.T + mu * torch.eye(len(y), dtype=X.dtype, device=X.device)
    return theta0 + X.T @ torch.linalg.solve(system, Q @ (y - X @ theta0))


def max_margin_direction(X: Tensor, y: Tensor) -> Tensor:
    """θ̂_MM = argmax_{‖θ‖=1} min_i y_i x_iᵀθ, the hard-margin SVM without bias (seed 000 Thm 7).

    Solves the dual max_{α≥0} Σα − ½ αᵀ(ZZᵀ)α with Z_i = y_i x_i by L-BFGS-B; w = Zᵀα.

    Args:
        X: features `(n, p)` of linearly separable data.
        y: labels `(n,)` in {−1, +1}.

    Returns:
        the unit vector θ̂_MM `(p,)`.
    """
    Z = (y[:, None] * X).double().cpu().numpy()
    gram = Z @ Z.T

    def dual(alpha):
        return 0.5 * alpha @ gram @ alpha - alpha.sum(), gram @ alpha - 1.0

    result = minimize(
        dual,
        np.zeros(len(Z)),
        jac=True,
        method="L-BFGS-B",
        bounds=[(0, None)] * len(Z),
        options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 10_000},
    )
    w = torch.from_numpy(Z.T @ result.x).to(X.dtype)
    return w / w.norm()


def span_residual(X: Tensor, delta: Tensor) -> float:
    """‖P⊥ δ‖ / ‖δ‖, where P⊥ projects onto the orthogonal complement of the row span of X.

    Gradient descent on any reweighted loss keeps θ − θ0 in that span (seed 001 P1c).
    """
    norm = float(delta.norm())
    if norm == 0.0:
        return 0.0
    in_span = X.T @ torch.linalg.lstsq(X.T, delta).solution
    return float((delta - in_span).norm()) / norm
