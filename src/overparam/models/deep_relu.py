"""The deep ReLU network of seed 003, Eq. (1), with the initialization scale σ as a prefactor.

    h¹(x) = σ/√m₁ · W¹ x (+ σ b¹),   hˡ(x) = σ/√m_l · Wˡ ReLU(hˡ⁻¹(x)) (+ σ bˡ),   f(x) = h^L(x)

m_l is the layer's *output* width (so the last layer's prefactor is σ/√1: seed 003 §1.2, trap 1), L counts
weight layers (L = 2 is one hidden layer), and the raw parameters are drawn N(0, 1) from `init_seed` alone,
so the same draws serve every σ (trap 3): a σ-sweep or the σ-shrinking procedure moves only the prefactor.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

BIASES = ("none", "zero", "normal")


class DeepReLU(nn.Module):
    """Eq. (1) of seed 003. `bias`: none (the default of the theory), zero (trainable, initialised 0) or
    normal (N(0, 1) scaled by 1/√m_l, seed 003 §1.2 trap 2)."""

    def __init__(
        self,
        in_shape: tuple[int, ...],
        out_features: int,
        width: int,
        depth: int,
        sigma: float,
        bias: str = "none",
        init_seed: int = 0,
    ) -> None:
        super().__init__()
        if out_features != 1:
            raise ValueError(
                f"deep_relu has a scalar output: set data.labels=pm1 (got {out_features} outputs)"
            )
        if not isinstance(width, int) or width < 1:
            raise ValueError(f"width must be an integer ≥ 1, got {width!r}")
        if not isinstance(depth, int) or depth < 1:
            raise ValueError(
                f"depth must be an integer ≥ 1 (weight layers; 2 = one hidden layer), got {depth!r}"
            )
        if not isinstance(sigma, (int, float)) or not sigma > 0:
            raise ValueError(f"sigma must be a number > 0 (the initialization scale σ), got {sigma!r}")
        if bias not in BIASES:
            raise ValueError(f"bias must be one of {', '.join(BIASES)}, got {bias!r}")
        generator = torch.Generator().manual_seed(init_seed)
        sizes = [math.prod(in_shape)] + [width] * (depth - 1) + [1]
        self.weights = nn.ParameterList(
            nn.Parameter(torch.randn(fan_out, fan_in, generator=generator))
            for fan_in, fan_out in zip(sizes[:-1], sizes[1:])
        )
        self.biases = None
        if bias != "none":
            draws = [torch.randn(fan_out, generator=generator) / math.sqrt(fan_out) for fan_out in sizes[1:]]
            self.biases = nn.ParameterList(
                nn.Parameter(draw if bias == "normal" else torch.zeros_like(draw)) for draw in draws
            )
        self.widths = sizes[1:]
        # A buffer, not a float: members of a stacked model may differ in σ (one value per member).
        self.register_buffer("sigma", torch.tensor(float(sigma)))

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)[-1][1]

    def layers(self, x: Tensor) -> list[tuple[Tensor, Tensor]]:
        """(a^{l−1}, h^l) for l = 1..L: each layer's input (a⁰ = x) and pre-activation (h^L = f)."""
        a, out = x.flatten(1), []
        for layer, (weight, fan_out) in enumerate(zip(self.weights, self.widths)):
            h = self.sigma / math.sqrt(fan_out) * a @ weight.T
            if self.biases is not None:
                h = h + self.sigma * self.biases[layer]
            out.append((a, h))
            a = torch.relu(h)
        return out

    def ntk(self, x1: Tensor, x2: Tensor) -> Tensor:
        """K(x, x') = φ(x)φ(x')ᵀ at the current parameters without the P-wide Jacobian (seed 003 §1.4):
        Σ_l (σ²/m_l)(g_l(x)·g_l(x'))(a^{l−1}(x)·a^{l−1}(x')) (+ σ² g_l(x)·g_l(x') with biases), where
        g_l = ∂f/∂h^l comes from one backward pass of Σ_n f(x_n)."""
        terms = [self.backward_terms(x) for x in (x1, x2)]
        kernel = torch.zeros(len(x1), len(x2), dtype=x1.dtype, device=x1.device)
        for fan_out, (a1, g1), (a2, g2) in zip(self.widths, *terms):
            grads = g1 @ g2.T
            kernel += self.sigma**2 / fan_out * grads * (a1 @ a2.T)
            if self.biases is not None:
                kernel += self.sigma**2 * grads
        return kernel

    def backward_terms(self, x: Tensor) -> list[tuple[Tensor, Tensor]]:
        with torch.enable_grad():
            layers = self.layers(x.detach())
            grads = torch.autograd.grad(layers[-1][1].sum(), [h for _, h in layers])
        return [(a.detach(), g) for (a, _), g in zip(layers, grads)]
