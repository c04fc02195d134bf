"""The shallow network with asymmetrical node scaling of seed 004 (Caron et al. 2023), Eq. (1)–(4).

    Z_j(x) = w_jᵀx / √d,   f_c(x) = Σ_j √λ_{m,j} a_cj σ(Z_j(x)),   λ_{m,j} = γ/m + (1 − γ) λ̃_j / Σ_k≤m λ̃_k

Only the first layer W = (w_1 … w_m) is trained; the output signs a_cj ∈ {−1, +1} and the scales λ are
fixed buffers. γ = 1 is the NTK scaling 1/m; γ < 1 gives a few nodes (a Zipf law of exponent α) a share
of the output that does not vanish with the width, and those nodes keep learning features.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from overparam.theory.asymmetric import node_scales

ACTIVATIONS = {"relu": torch.relu, "tanh": torch.tanh, "softplus": F.softplus}


class AsymmetricShallow(nn.Module):
    """Seed 004's network. `init_std` is s in w_0j ~ N(0, s²I): 1 in the paper, √2 in the authors' code
    (and its figures). Raw draws come from `init_seed`. Also used as a linear-in-nothing feature extractor:
    `features(x)` = √λ_j σ(Z_j(x)), the hidden layer with its scale (the transfer protocol's inputs)."""

    def __init__(
        self,
        in_shape: tuple[int, ...],
        out_features: int,
        width: int,
        gamma: float,
        alpha: float,
        lambda_tilde: str = "zipf",
        k: int = 1,
        activation: str = "relu",
        init_std: float = math.sqrt(2),
        init_seed: int = 0,
    ) -> None:
        super().__init__()
        if not isinstance(width, int) or width < 1:
            raise ValueError(f"width must be an integer ≥ 1, got {width!r}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {activation!r}")
        if not isinstance(init_std, (int, float)) or not init_std > 0:
            raise ValueError(f"init_std must be a number > 0, got {init_std!r}")
        self.d, self.activation = math.prod(in_shape), activation
        generator = torch.Generator().manual_seed(init_seed)
        self.weight = nn.Parameter(init_std * torch.randn(width, self.d, generator=generator))
        signs = torch.randint(0, 2, (out_features, width), generator=generator) * 2.0 - 1
        self.register_buffer("output_signs", signs)
        self.register_buffer("scales", node_scales(width, gamma, alpha, lambda_tilde, k).float())

    def preactivations(self, x: Tensor) -> Tensor:
        """Z_j(x_i) `(n, m)`, in the dtype of x (the probes evaluate a float32 net in float64)."""
        return x.flatten(1) @ self.weight.T.to(x.dtype) / math.sqrt(self.d)

    def features(self, x: Tensor) -> Tensor:
        """√λ_j σ(Z_j(x)) `(n, m)`: each node's contribution before its output sign."""
        return ACTIVATIONS[self.activation](self.preactivations(x)) * self.scales.sqrt().to(x.dtype)

    def forward(self, x: Tensor) -> Tensor:
        return self.features(x) @ self.output_signs.T.to(x.dtype)

    def slopes(self, x: Tensor) -> Tensor:
        """σ'(Z_j(x_i)) `(n, m)` (ReLU: 1{Z > 0})."""
        z = self.preactivations(x)
        if self.activation == "relu":
            return (z > 0).to(z.dtype)
        if self.activation == "tanh":
            return 1 - torch.tanh(z) ** 2
        return torch.sigmoid(z)

    def ntg(self, x: Tensor, scales: Tensor | None = None) -> Tensor:
        """The neural tangent Gram matrix on x (one output channel; a_cj² = 1 makes them all equal):
        Θ̂ = (XXᵀ/d) ⊙ (D Λ Dᵀ), D_ij = σ'(Z_j(x_i)), Λ = diag(λ)."""
        x = x.flatten(1)
        slopes = self.slopes(x)
        scales = (self.scales if scales is None else scales).to(x.dtype)
        return (x @ x.T / self.d) * ((slopes * scales) @ slopes.T)
