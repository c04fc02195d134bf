"""Linear model f(x) = ⟨θ, x⟩ (+ b): the setting of seed 000 and seed 001 §3.1."""

from __future__ import annotations

import math

from torch import Tensor, nn


class Linear(nn.Module):
    """A linear map on flattened inputs, optionally without bias.

    `init_scale=null` keeps PyTorch's default U(−1/√d, 1/√d) (seed 000 §3.1: it gives ‖θ*‖ ≈ 0.63 on the
    six-image set), 0 starts at θ0 = 0, and a positive value draws θ0 ~ N(0, init_scale²).
    """

    linear_in_parameters = True  # a squared loss makes the objective quadratic in θ

    def __init__(
        self, in_shape: tuple[int, ...], out_features: int, bias: bool, init_scale: float | None
    ) -> None:
        super().__init__()
        if init_scale is not None and (not isinstance(init_scale, (int, float)) or init_scale < 0):
            raise ValueError(f"init_scale must be null (PyTorch default) or a number ≥ 0, got {init_scale!r}")
        self.fc = nn.Linear(math.prod(in_shape), out_features, bias=bias)
        if init_scale is not None:
            nn.init.normal_(self.fc.weight, std=init_scale)
            if bias:
                nn.init.zeros_(self.fc.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(x.flatten(1))
