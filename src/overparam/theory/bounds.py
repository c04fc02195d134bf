"""Step-size and generalization bounds as plain functions."""

from __future__ import annotations

import torch
from torch import Tensor


def stable_learning_rate(gram: Tensor, max_weight: float, scale: float = 1.0) -> float:
    """η = scale / (q_max · λ_max(JJᵀ)) for full-batch GD on Σ_i q_i ½(f(x_i) − y_i)².

    The Hessian of the weighted squared loss is JᵀQJ, whose largest eigenvalue is at most
    q_max·λ_max(JJᵀ); GD is stable for scale < 2 (seed 001 §7.1 uses scale = 1).

    Args:
        gram: JJᵀ `(n, n)`, with J the inputs of a linear model or ∇θ f(X; θ0) of a network (its NTK).
        max_weight: q_max, an upper bound on the sample weights (`Reweighter.max_weight()`).
        scale: the multiple of 1/(q_max λ_max) to use.

    Returns:
        the learning rate η.
    """
    lam_max = float(torch.linalg.eigvalsh(gram).max())
    return scale / (max_weight * lam_max)
