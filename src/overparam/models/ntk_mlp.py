"""Fully connected network in NTK parametrization with bias scale β (seed 000 eqs. 8–9, seed 001 §3.3)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

ACTIVATIONS = {
    "tanh": torch.tanh,
    "softplus": nn.functional.softplus,
    "gelu": nn.functional.gelu,
    "erf": torch.erf,
    "relu": torch.relu,
}


class NTKMLP(nn.Module):
    """h^{l+1} = W^l x^l / √d_l + β b^l, x^{l+1} = σ(h^{l+1}) for l = 0..L, f(x) = h^{L+1} (no output σ).

    W^l, b^l ~ N(0, 1); the last layer W^L = 0 (`last_layer_init=zero`, as the theory requires, so
    f0(x) = β b^L for every x) or N(0, 1) (`gaussian`, Jacot/Lee). One learning rate fits all layers.
    """

    def __init__(
        self,
        in_shape: tuple[int, ...],
        out_features: int,
        width: int,
        depth: int,
        activation: str,
        beta: float,
        last_layer_init: str,
    ) -> None:
        super().__init__()
        if not isinstance(width, int) or width < 1:
            raise ValueError(f"width must be an integer ≥ 1, got {width!r}")
        if not isinstance(depth, int) or depth < 1:
            raise ValueError(f"depth must be an integer ≥ 1 (hidden layers L), got {depth!r}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {activation!r}")
        if last_layer_init not in ("zero", "gaussian"):
            raise ValueError(f"last_layer_init must be zero or gaussian, got {last_layer_init!r}")
        dims = [math.prod(in_shape)] + [width] * depth + [out_features]
        self.W = nn.ParameterList(
            nn.Parameter(torch.randn(d_out, d_in)) for d_in, d_out in zip(dims, dims[1:])
        )
        self.b = nn.ParameterList(nn.Parameter(torch.randn(d_out)) for d_out in dims[1:])
        if last_layer_init == "zero":
            nn.init.zeros_(self.W[-1])
        self.sigma, self.beta = ACTIVATIONS[activation], float(beta)

    def forward(self, x: Tensor) -> Tensor:
        h = x.flatten(1)  # (n, d_0)
        for layer, (W, b) in enumerate(zip(self.W, self.b)):
            h = h @ W.T / math.sqrt(W.shape[1]) + self.beta * b  # (n, d_{l+1})
            if layer < len(self.W) - 1:
                h = self.sigma(h)
        return h
