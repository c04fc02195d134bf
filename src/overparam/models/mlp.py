"""Fully connected network with `depth` hidden layers of `width` units (PyTorch's default init)."""

from __future__ import annotations

import math

from torch import Tensor, nn

ACTIVATIONS = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
    "softplus": nn.Softplus,
    "sigmoid": nn.Sigmoid,
}


class MLP(nn.Module):
    """x -> [Linear -> activation] × depth -> Linear, on flattened inputs."""

    def __init__(
        self, in_shape: tuple[int, ...], out_features: int, width: int, depth: int, activation: str
    ) -> None:
        super().__init__()
        if not isinstance(width, int) or width < 1:
            raise ValueError(f"width must be an integer ≥ 1, got {width!r}")
        if not isinstance(depth, int) or depth < 0:
            raise ValueError(f"depth must be an integer ≥ 0, got {depth!r}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {activation!r}")
        sizes = [math.prod(in_shape)] + [width] * depth
        layers: list[nn.Module] = []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(fan_in, fan_out), ACTIVATIONS[activation]()]
        layers.append(nn.Linear(sizes[-1], out_features))
        self.net = nn.Sequential(nn.Flatten(), *layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)
