"""Per-sample losses (reduction is the reweighter's job): each maps (outputs, targets) -> (n,)."""

from __future__ import annotations

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


def logistic(outputs: Tensor, targets: Tensor) -> Tensor:
    """log(1 + exp(−y f(x))) for scalar outputs and ±1 targets."""
    if outputs.shape[-1] != 1:
        raise ValueError("loss=logistic needs a scalar output and ±1 targets: set data.labels=pm1")
    return F.softplus(-targets.to(outputs.dtype) * outputs.squeeze(-1))
