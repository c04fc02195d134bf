"""The first-order expansion of any model around its initialization θ0 (seed 000 eq. 11, seed 001 eq. 6)."""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn
from torch.func import functional_call, jvp


class Linearized(nn.Module):
    """f_lin(x; θ) = f(x; θ0) + ⟨θ − θ0, ∇θ f(x; θ0)⟩, computed with one `torch.func.jvp` per forward.

    `base` builds the network (any family in `overparam.models`) with `base_settings` (so a sweep sets
    `model.width` alike for a network and its linearization); its parameters are θ, initialised at θ0,
    and θ0 is kept as buffers. Trained like any other model.
    """

    linear_in_parameters = True  # a squared loss makes the objective quadratic in θ

    def __init__(
        self, in_shape: tuple[int, ...], out_features: int, base: Callable[..., nn.Module], **base_settings
    ) -> None:
        super().__init__()
        self.base = base(in_shape=in_shape, out_features=out_features, **base_settings)
        self.theta0_names = [name for name, _ in self.base.named_parameters()]
        for k, (_, p) in enumerate(self.base.named_parameters()):
            self.register_buffer(f"theta0_{k}", p.detach().clone())

    def theta0(self) -> dict[str, Tensor]:
        return {name: getattr(self, f"theta0_{k}") for k, name in enumerate(self.theta0_names)}

    def forward(self, x: Tensor) -> Tensor:
        theta0, theta = self.theta0(), dict(self.base.named_parameters())
        tangent = {name: theta[name] - theta0[name] for name in theta0}

        def f(params):
            return functional_call(self.base, params, (x,))

        f0, directional = jvp(f, (theta0,), (tangent,))
        return f0 + directional
