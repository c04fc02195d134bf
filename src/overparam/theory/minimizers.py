"""Seed 003's closed forms: which minimizer GD reaches, and how it moves with the initialization scale σ."""

from __future__ import annotations

import torch
from torch import Tensor


def kernel_interpolator(K_test_train: Tensor, K_train: Tensor, y: Tensor) -> Tensor:
    """f_int(x) = K(x, X) K(X, X)⁻¹ Y, the minimum-RKHS-norm interpolator (Eq. 3)."""
    return K_test_train @ torch.linalg.solve(K_train, y)


def init_term(K_test_train: Tensor, K_train: Tensor, f0_train: Tensor, f0_test: Tensor) -> Tensor:
    """r(x) = f0(x) − K(x, X) K⁻¹ f0(X): what GD's limit f_lin,∞ = f_int + r adds to the interpolator
    (Thm 1's (1/L) φ(x)(1 − P_F)θ0 by Lemma 4). Zero on the training inputs, independent of Y."""
    return f0_test - K_test_train @ torch.linalg.solve(K_train, f0_train)


def linearized_test_loss_over_sigma(
    K_test_train: Tensor,
    K_train: Tensor,
    f0_train: Tensor,
    f0_test: Tensor,
    y_train: Tensor,
    y_test: Tensor,
    sigmas: list[float],
    depth: int,
) -> Tensor:
    """L_T(f_lin,∞) = (1/2N_T)‖f_int + σ^L r₁ − Y_T‖² for each σ, from the kernel and f0 at σ = 1.

    With no biases φ_σ = σ^L φ₁, so K_σ = σ^{2L} K₁ and f0,σ = σ^L f0,₁: f_int does not move with σ and the
    init term scales as σ^L (seed 003 §1.5). One kernel serves the whole σ-sweep.
    """
    interpolant = kernel_interpolator(K_test_train, K_train, y_train)
    r1 = init_term(K_test_train, K_train, f0_train, f0_test)
    losses = [0.5 * ((interpolant + sigma**depth * r1 - y_test) ** 2).mean() for sigma in sigmas]
    return torch.stack(losses)
