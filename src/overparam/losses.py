"""Per-sample losses (reduction is the reweighter's job): each maps (outputs, targets) -> (n,)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def cross_entropy(outputs: Tensor, targets: Tensor) -> Tensor:
    """Softmax cross-entropy over `outputs` (n, C) with class-index targets (n,)."""
    if outputs.shape[-1] < 2:
        raise ValueError("loss=cross_entropy needs one output per class: set data.labels=index")
    return F.cross_entropy(outputs, targets, reduction="none")


def squared(outputs: Tensor, targets: Tensor) -> Tensor:
    """½ (f(x) − y)² for scalar outputs, or ½ ‖f(x) − y‖² for vector targets."""
    outputs = outputs.squeeze(-1) if outputs.shape[-1] == 1 and targets.dim() == 1 else outputs
    diff = outputs - targets.to(outputs.dtype)
    return 0.5 * (diff**2 if diff.dim() == 1 else (diff**2).sum(-1))


def mean_squared_error(outputs: Tensor, targets: Tensor) -> Tensor:
    """‖f(x) − y‖²/C, so that the mean over samples is torch's MSELoss over all n·C entries (seed 004's
    code, whose η = 1 refers to it; gradient-flow time per step is 2η/(nC))."""
    outputs = outputs.squeeze(-1) if outputs.shape[-1] == 1 and targets.dim() == 1 else outputs
    diff = outputs - targets.to(outputs.dtype)
    return diff**2 if diff.dim() == 1 else (diff**2).mean(-1)


def logistic(outputs: Tensor, targets: Tensor) -> Tensor:
    """log(1 + exp(−y f(x))) for scalar outputs and ±1 targets."""
    if outputs.shape[-1] != 1:
        raise ValueError("loss=logistic needs a scalar output and ±1 targets: set data.labels=pm1")
    return F.softplus(-targets.to(outputs.dtype) * outputs.squeeze(-1))


def logistic_quadratic_model(outputs: Tensor, targets: Tensor) -> Tensor:
    """The logistic loss's quadratic model at f = 0, shifted to a minimum of 0: ⅛ (f(x) − 2y)², with the
    logistic loss's gradient (−y/2) and curvature (¼) there."""
    return 0.25 * squared(outputs, 2 * targets.to(outputs.dtype))


def focal(outputs: Tensor, targets: Tensor, gamma: float) -> Tensor:
    """Focal loss (Lin et al. 2017): −(1 − p_y)^γ log p_y, which down-weights the examples already fit;
    γ = 0 is the cross-entropy (the logistic loss for a scalar output)."""
    log_p = -(logistic(outputs, targets) if outputs.shape[-1] == 1 else cross_entropy(outputs, targets))
    return -(-torch.expm1(log_p)).pow(gamma) * log_p


def class_balanced(outputs: Tensor, targets: Tensor, base, beta: float, class_counts: Tensor) -> Tensor:
    """Class-balanced loss (Cui et al. 2019): the `base` loss of each example times
    w_y = (1 − β)/(1 − β^{n_y}), the inverse effective number of its class's n_y training examples,
    with w normalized to sum to the number of classes. β = 0 is the base loss; β → 1 weights by 1/n_y."""
    if not 0 <= beta < 1:
        raise ValueError(f"beta must be in [0, 1), got {beta!r}")
    counts = class_counts.to(torch.float64)
    weights = (1 - beta) / (1 - beta**counts) if beta > 0 else torch.ones_like(counts)
    weights = weights * len(weights) / weights.sum()
    classes = targets.long() if outputs.shape[-1] > 1 else (targets > 0).long()  # ±1 and 0/1 alike
    return weights.to(device=outputs.device, dtype=outputs.dtype)[classes] * base(outputs, targets)


POLY_LEFT_BRANCHES = ("vshift", "hshift", "c1")


def polynomial_tail(outputs: Tensor, targets: Tensor, alpha: float, beta: float, left: str) -> Tensor:
    """Polynomially-tailed loss of seed 000 eq. 19 (Wang et al. 2022) on the margin m = y·f(x).

    ℓ(m) = [m − (β − 1)]^(−α) for m ≥ β, and a logistic left branch that equals 1 at m = β:
    `vshift` log(1+e^−m) − log(1+e^−β) + 1 (the literal reading), `hshift`
    log(1 + exp(−(m − β) + log(e − 1))), or `c1` softplus(−2α·log2·(m − β))/log 2 (convex, C¹).
    """
    if left not in POLY_LEFT_BRANCHES:
        raise ValueError(f"left must be one of {', '.join(POLY_LEFT_BRANCHES)}, got {left!r}")
    if outputs.shape[-1] != 1:
        raise ValueError("loss=polynomial_tail needs a scalar output and ±1 targets: set data.labels=pm1")
    m = targets.to(outputs.dtype) * outputs.squeeze(-1)
    right = (m.clamp(min=beta) - (beta - 1)).pow(-alpha)
    shifted = m.clamp(max=beta) - beta
    if left == "vshift":
        left_branch = F.softplus(-m.clamp(max=beta)) - F.softplus(torch.tensor(-beta, dtype=m.dtype)) + 1
    elif left == "hshift":
        left_branch = F.softplus(-shifted + torch.log(torch.tensor(torch.e - 1, dtype=m.dtype)))
    else:
        left_branch = F.softplus(
            -2 * alpha * torch.log(torch.tensor(2.0, dtype=m.dtype)) * shifted
        ) / math.log(2)
    return torch.where(m >= beta, right, left_branch)


def curvature(loss_fn, n_outputs: int = 1) -> float | None:
    """The largest second derivative of a loss in f, relative to ½‖f − y‖² (the squared loss: 1), or None
    where it is not bounded by a constant. Sets stable step sizes and gradient-flow time."""
    base = getattr(loss_fn, "func", loss_fn)
    return {squared: 1.0, mean_squared_error: 2.0 / n_outputs, logistic: 0.25}.get(base)


def quadratic_model(loss_fn):
    """The loss's quadratic model at zero outputs (its gradient and curvature there, minimum 0), or None
    where the loss is quadratic already or has no such model here."""
    return {logistic: logistic_quadratic_model}.get(getattr(loss_fn, "func", loss_fn))


def is_quadratic(loss_fn) -> bool:
    """Whether the loss is exactly quadratic in f (its curvature is then the same everywhere)."""
    return getattr(loss_fn, "func", loss_fn) in (squared, mean_squared_error)
