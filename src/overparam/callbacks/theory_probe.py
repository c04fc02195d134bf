"""TheoryProbe: distance of the iterate to the closed-form limits of (linearized) GRW, on the log grid."""

from __future__ import annotations

import lightning as L
import torch
from torch.nn.utils import parameters_to_vector

from overparam.data.base import whole
from overparam.theory.interpolators import (
    interpolator,
    max_margin_direction,
    regularized_solution,
    span_residual,
)
from overparam.theory.kernels import parameter_jacobian, unflatten_like

ORACLES = ("interpolator", "regularized", "max_margin")


class TheoryProbe(L.Callback):
    """Logs `theory/dist_to_interpolator`, `theory/dist_to_regularized`, `theory/dist_to_max_margin`,
    `theory/span_residual`, `param/norm` and `param/dist_to_init` for a scalar-output model.

    The oracles use the features J0 = ∇θ f(X; θ0) of the full training set: for a linear model these are
    the inputs, for a network its linearization at θ0 (seed 001 Cor. 3). θ0 is kept in the callback's
    checkpoint state, so a resumed run measures against the same point.
    """

    per_member = True  # run once per member of a stacked model (overparam.batched.member_callbacks)

    def __init__(self, oracles: list[str]) -> None:
        unknown = set(oracles) - set(ORACLES)
        if unknown:
            raise ValueError(f"oracles must be among {', '.join(ORACLES)}, got {sorted(unknown)}")
        self.oracles = list(oracles)
        self.theta0: torch.Tensor | None = None
        self.targets: dict[str, torch.Tensor] = {}

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        net = pl_module.net
        if self.theta0 is None:
            self.theta0 = parameters_to_vector(net.parameters()).detach().clone()
        theta0 = self.theta0.to(pl_module.device, pl_module.dtype)
        train = trainer.datamodule.train
        batch = whole(train)
        x = batch.x.to(pl_module.device, pl_module.dtype)
        y = batch.y.to(pl_module.device, pl_module.dtype)
        params0 = unflatten_like(net, theta0)
        self.features = parameter_jacobian(net, x, params0)  # (n, p)
        f0 = torch.func.functional_call(net, params0, (x,)).squeeze(-1).detach()
        # Linearized targets y − f0(X), expressed for θ: θ* solves J0 (θ − θ0) = y − f0(X).
        shifted = y - f0 + self.features @ theta0
        if "interpolator" in self.oracles:
            self.targets["interpolator"] = interpolator(self.features, shifted, theta0)
        reweighter = pl_module.reweighter
        if "regularized" in self.oracles and pl_module.l2_to_init > 0 and reweighter.static:
            q = reweighter(
                torch.zeros_like(y), batch.group.to(pl_module.device), batch.index.to(pl_module.device)
            )
            self.targets["regularized"] = regularized_solution(
                self.features, shifted, theta0, q, pl_module.l2_to_init
            )
        if "max_margin" in self.oracles:
            self.targets["max_margin"] = max_margin_direction(self.features, torch.sign(y))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        theta = parameters_to_vector(pl_module.net.parameters()).detach()
        theta0 = self.theta0.to(theta)
        logs = {
            "param/norm": theta.norm(),
            "param/dist_to_init": (theta - theta0).norm(),
            "theory/span_residual": torch.tensor(span_residual(self.features, theta - theta0)),
        }
        for name, target in self.targets.items():
            if name == "max_margin":
                logs["theory/dist_to_max_margin"] = (theta / theta.norm() - target).norm()
            else:
                logs[f"theory/dist_to_{name}"] = (theta - target).norm()
        pl_module.log_dict(logs, on_step=True, on_epoch=False)

    def state_dict(self) -> dict:
        return {"theta0": self.theta0}

    def load_state_dict(self, state_dict: dict) -> None:
        self.theta0 = state_dict["theta0"]
