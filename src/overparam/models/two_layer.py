"""Two-layer ReLU network with a fixed second layer (seed 002, Arora et al. 2019, Sect. 3.1)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class TwoLayerReLU(nn.Module):
    """f(x) = (1/√m) Σ_r a_r ReLU(w_rᵀx), w_r ~ N(0, κ²I), a_r ~ unif{±1} fixed (a buffer): only W trains.

    `init=symmetric` duplicates the neurons with a → −a, so f(x) = 0 at initialization exactly (the kernel
    regime with κ = 1, seed 002 §5.1 item 9).
    """

    def __init__(self, in_shape: tuple[int, ...], out_features: int, m: int, kappa: float, init: str) -> None:
        super().__init__()
        if out_features != 1:
            raise ValueError(
                f"two_layer_relu has a scalar output: set data.labels=pm1 (got {out_features} outputs)"
            )
        if not isinstance(m, int) or m < 1 or (init == "symmetric" and m % 2):
            raise ValueError(f"m must be a positive integer (even for symmetric init), got {m!r}")
        if not isinstance(kappa, (int, float)) or not 0 < kappa <= 1:
            raise ValueError(f"kappa must be in (0, 1], got {kappa!r}")
        if init not in ("gaussian", "symmetric"):
            raise ValueError(f"init must be gaussian or symmetric, got {init!r}")
        d = math.prod(in_shape)
        half = m // 2 if init == "symmetric" else m
        W = torch.randn(half, d) * kappa
        a = torch.where(torch.rand(half) < 0.5, -1.0, 1.0)
        if init == "symmetric":
            W, a = torch.cat([W, W]), torch.cat([a, -a])
        self.W = nn.Parameter(W)  # (m, d)
        self.register_buffer("a", a)  # (m,)

    def forward(self, x: Tensor) -> Tensor:
        # Sect. 3.1: f(x) = (1/√m) Σ_r a_r σ(w_rᵀx)
        return (torch.relu(x.flatten(1) @ self.W.T) @ self.a / math.sqrt(len(self.a)))[:, None]
