"""Features and kernels of a network around its initialization, with torch.func."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.func import functional_call, jacrev, vmap


def parameter_jacobian(model: nn.Module, x: Tensor, params: dict[str, Tensor] | None = None) -> Tensor:
    """J with J[i] = ∇θ f(x_i; θ) for a scalar-output model, flattened over all parameters.

    For a linear model these are the inputs (plus 1 for a bias); for a network they are the features of
    its linearization f0(x) + ⟨θ − θ0, ∇θ f0(x)⟩ (seed 001 §3.2).

    Args:
        model: a module with a scalar output.
        x: inputs `(n, ...)`.
        params: parameters to evaluate at (default: the model's own), e.g. θ0.

    Returns:
        J `(n, p)`.
    """
    params = params or {name: p.detach() for name, p in model.named_parameters()}

    def f(theta, xi):
        return functional_call(model, theta, (xi[None],)).squeeze()

    jac = vmap(jacrev(f), in_dims=(None, 0))(params, x)
    return torch.cat([jac[name].flatten(1) for name in params], dim=1)


def empirical_ntk(model: nn.Module, x1: Tensor, x2: Tensor) -> Tensor:
    """Θ(x1, x2) = J(x1) J(x2)ᵀ, the empirical neural tangent kernel of a scalar-output model `(n1, n2)`."""
    return parameter_jacobian(model, x1) @ parameter_jacobian(model, x2).T


def unflatten_like(model: nn.Module, theta: Tensor) -> dict[str, Tensor]:
    """A flat parameter vector as the {name: tensor} dict that `functional_call` takes."""
    out, offset = {}, 0
    for name, p in model.named_parameters():
        out[name] = theta[offset : offset + p.numel()].view_as(p)
        offset += p.numel()
    return out


def kernel_regression_limit(
    K_test_train: Tensor, K_train: Tensor, y: Tensor, f0_train: Tensor, f0_test: Tensor
) -> Tensor:
    """f*(x) = f0(x) + Θ(x, X) Θ(X, X)⁻¹ (y − f0(X)): where GD on the linearized model converges for any
    reweighting that satisfies Assumption 1 (seed 000 §3.3, seed 001 P2).

    Args:
        K_test_train: Θ(x, X) `(m, n)`.
        K_train: Θ(X, X) `(n, n)`, positive definite.
        y: training targets `(n,)`.
        f0_train: the network at θ0 on the training inputs `(n,)`.
        f0_test: the network at θ0 on the test inputs `(m,)`.

    Returns:
        f*(x) on the test inputs `(m,)`.
    """
    return f0_test + K_test_train @ torch.linalg.solve(K_train, y - f0_train)
