"""Step-size theory applied before training: `lr_scale` (a multiple of the largest stable full-batch step)
and the divergence bound of full-batch GD on a quadratic objective."""

from __future__ import annotations

import functools

import torch
from torch import nn

from overparam.data.base import whole
from overparam.errors import ConfigError
from overparam.losses import curvature, is_quadratic
from overparam.theory.bounds import stable_learning_rate
from overparam.theory.kernels import parameter_jacobian
from overparam.weighting.base import Reweighter


def scaled_learning_rate(
    lr_scale: float, loss_reduction: str, data, net: nn.Module, reweighter: Reweighter, loss_fn
) -> float:
    """`lr_scale` / (q_max · c · λ_max(JJᵀ)) on the full training set, with J the features at θ0 and c the
    loss's largest curvature relative to the squared loss (1; the logistic loss: 1/4)."""
    if not isinstance(lr_scale, (int, float)) or not 0 < lr_scale < 2:
        raise ConfigError(f"lr_scale must be a number in (0, 2) (stable full-batch GD), got {lr_scale!r}")
    if data.n_outputs != 1:
        raise ConfigError("lr_scale needs a scalar-output model: set data.labels=pm1")
    # A summed loss weights every sample n times more than the simplex weights q say.
    max_weight = reweighter.max_weight() * (data.n_train if loss_reduction == "sum" else 1)
    max_weight *= curvature(loss_fn) or 1.0
    return stable_learning_rate(training_kernel(data, net), max_weight, lr_scale)


def training_kernel(data, net: nn.Module) -> torch.Tensor:
    """JJᵀ in float64 with J = ∇θ f(X; θ0) on the whole training set (the NTK Gram matrix), from the
    network's own kernel when it has one (no P-wide Jacobian)."""
    x = whole(data.train).x.to(next(net.parameters()).dtype)
    if hasattr(net, "ntk"):
        return net.ntk(x, x).double()
    features = parameter_jacobian(net, x).double()
    return features @ features.T


def is_plain_gradient_step(optimizer: functools.partial) -> bool:
    """Whether the optimizer's update is θ ← θ − η·∇ (no momentum, no adaptive scaling), found by what it
    does: two steps with gradients 2 then 1 on a probe parameter (weight decay off) move it 2η then η."""
    probe = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    instance = optimizer([probe], weight_decay=0.0)
    lr = instance.param_groups[0]["lr"]
    moves = []
    for gradient in (2.0, 1.0):
        before = float(probe.detach())
        probe.grad = torch.full_like(probe, gradient)
        instance.step()
        moves.append(before - float(probe.detach()))
    return abs(moves[0] - 2 * lr) <= 1e-12 * lr and abs(moves[1] - lr) <= 1e-12 * lr


def quadratic_stability_error(
    data, net: nn.Module, reweighter: Reweighter, loss_fn, optimizer, l2_to_init: float, loss_reduction: str
) -> str | None:
    """Full-batch GD on a quadratic objective (a model linear in θ, a quadratic loss, fixed weights q)
    diverges exactly when η·λ_max(H) ≥ 2; say so before the first step. Elsewhere the bound is not known."""
    if not (
        data.batch_size is None
        and is_quadratic(loss_fn)
        and getattr(net, "linear_in_parameters", False)
        and reweighter.static
        and data.n_outputs == 1
        and is_plain_gradient_step(optimizer)
    ):
        return None
    train = whole(data.train)
    q = reweighter(torch.zeros(len(train.y)), train.group, train.index).double()
    q = q * (len(q) if loss_reduction == "sum" else 1) * curvature(loss_fn)
    weights = q.sqrt()
    kernel = weights[:, None] * training_kernel(data, net) * weights
    curvature_max = float(torch.linalg.eigvalsh(kernel).max())
    curvature_max += l2_to_init + optimizer.keywords.get("weight_decay", 0.0)
    lr = optimizer.keywords["lr"]
    if lr * curvature_max < 2:
        return None
    return (
        f"optim.lr={lr:g} gives η·λ_max(H) = {lr * curvature_max:.4g} ≥ 2 for this quadratic objective, so "
        f"full-batch gradient descent diverges; use optim.lr < {2 / curvature_max:.4g}"
    )
