"""Ways to remove the random initial function f(x; θ0) from any network: seed 003's extension baselines
(labelled there as *not the paper's method*; the paper's remedy is the σ search). Both start at f ≡ 0 with
the network's own tangent kernel, so in the lazy regime gradient descent reaches the kernel interpolator
f_int instead of f_int plus the init term. Chosen with the top-level key `mitigation`."""

from __future__ import annotations

import copy
import math

import torch
from torch import Tensor, nn
from torch.func import functional_call

from overparam.theory.kernels import empirical_ntk

MITIGATIONS = ("none", "center", "asi")


class OutputCentered(nn.Module):
    """f̃(x; θ) = f(x; θ) − f(x; θ0) with θ0 a frozen copy kept as buffers (so it has no gradient and adds
    nothing to the tangent kernel)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.names = [name for name, _ in net.named_parameters()]
        for index, (_, parameter) in enumerate(net.named_parameters()):
            self.register_buffer(f"initial_{index}", parameter.detach().clone())

    def initial(self) -> dict[str, Tensor]:
        return {name: getattr(self, f"initial_{index}") for index, name in enumerate(self.names)}

    def forward(self, x: Tensor) -> Tensor:
        with torch.no_grad():
            start = functional_call(self.net, self.initial(), (x,))
        return self.net(x) - start

    def ntk(self, x1: Tensor, x2: Tensor) -> Tensor:
        return self.net.ntk(x1, x2) if hasattr(self.net, "ntk") else empirical_ntk(self.net, x1, x2)


class Antisymmetric(nn.Module):
    """ASI (Zhang et al. 2020): f(x) = (f(x; θ¹) − f(x; θ²))/√2 with θ²_0 = θ¹_0, both trained: zero at
    init, the same kernel at init, twice the parameters."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.first, self.second = net, copy.deepcopy(net)

    def forward(self, x: Tensor) -> Tensor:
        return (self.first(x) - self.second(x)) / math.sqrt(2)

    def ntk(self, x1: Tensor, x2: Tensor) -> Tensor:
        if hasattr(self.first, "ntk"):
            return (self.first.ntk(x1, x2) + self.second.ntk(x1, x2)) / 2
        return empirical_ntk(self, x1, x2)


def mitigate(net: nn.Module, mitigation: str) -> nn.Module:
    if mitigation not in MITIGATIONS:
        raise ValueError(f"mitigation must be one of {', '.join(MITIGATIONS)}, got {mitigation!r}")
    return {"none": lambda n: n, "center": OutputCentered, "asi": Antisymmetric}[mitigation](net)
