"""KernelLimits: where GD would end in the lazy limit, computed in closed form at θ0 (seed 003 Thm 1)."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch

from overparam.data.base import whole
from overparam.theory.kernels import empirical_ntk, kernel_regression_limit
from overparam.theory.minimizers import kernel_interpolator


class KernelLimits(L.Callback):
    """Before the first step, saves `<dirpath>/limits.pt` with the test points' targets and, in float64,
    f0 (the network at θ0), f_lin,∞ = f0 + K(x,X)K⁻¹(Y − f0(X)) (GD's limit for the linearization) and
    f_int = K(x,X)K⁻¹Y (the kernel interpolator), plus λ_max and λ_min of K(X,X). Seed 003's Fig. 2 draws
    the test errors of these two next to the trained network's.

    It runs in `setup`, before a resumed run restores its checkpoint, so θ0 is always the initialization.
    """

    per_member = True  # run once per member of a stacked model (overparam.batched.member_callbacks)

    def __init__(self, dirpath: str) -> None:
        self.path = Path(dirpath) / "limits.pt"

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "fit" or self.path.exists():
            return
        net = pl_module.net
        dtype = next(net.parameters()).dtype
        net.double()
        try:
            train, test = whole(trainer.datamodule.train), whole(trainer.datamodule.test)
            x, xt = train.x.double(), test.x.double()
            kernel = net.ntk if hasattr(net, "ntk") else lambda a, b: empirical_ntk(net, a, b)
            K, Kt = kernel(x, x), kernel(xt, x)
            with torch.no_grad():
                f0, f0t = net(x).squeeze(-1), net(xt).squeeze(-1)
        finally:
            net.to(dtype)
        y = train.y.double()
        eigenvalues = torch.linalg.eigvalsh(K)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(
            {
                "y_test": test.y.double(),
                "f0_test": f0t,
                "f_lin_test": kernel_regression_limit(Kt, K, y, f0, f0t),
                "f_int_test": kernel_interpolator(Kt, K, y),
                "lambda_max": eigenvalues[-1],
                "lambda_min": eigenvalues[0],
            },
            self.path,
        )
