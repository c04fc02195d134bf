"""KernelProbe: a two-layer ReLU run against the kernel predictions of seed 002 (Thm 4.1, Lemma 5.3)."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch

from overparam.data.base import whole
from overparam.errors import Diverged
from overparam.theory.arora import (
    complexity_measure,
    h_infinity,
    largest_stable_step,
    predicted_residual,
    spectrum,
)


class KernelProbe(L.Callback):
    """Logs `train/residual` (‖y − u(k)‖/‖y‖), `theory/predicted_residual`, `theory/complexity_measure`,
    `param/dist_to_init` (‖W − W0‖_F), `param/max_neuron_move` (max_r ‖w_r − w_r(0)‖),
    `param/flipped_patterns` (fraction of 1{w_rᵀx_i ≥ 0} changed since init) and `theory/sqrt_yHy`.

    It stops a step size with η·λ_max(H∞) ≥ 2, naming the largest stable one, before any step is taken,
    and saves the spectrum of H∞ with the label projections |v_iᵀy|/‖y‖ as `<dirpath>/kernel_spectrum.pt`
    (Fig. 1 b, d).
    """

    per_member = True  # run once per member of a stacked model (overparam.batched.member_callbacks)

    def __init__(self, dirpath: str) -> None:
        self.path = Path(dirpath) / "kernel_spectrum.pt"

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        train = trainer.datamodule.train
        batch = whole(train)
        self.x = batch.x.flatten(1).to(pl_module.device, pl_module.dtype)
        self.y = batch.y.to(pl_module.device).double()
        H = h_infinity(self.x)
        # The kernel dynamics are for Φ = ½ Σ (y_i − u_i)²; a mean loss divides the step by n.
        lr = pl_module.learning_rate
        self.eta = lr if pl_module.loss_reduction == "sum" else lr / len(self.y)
        if self.eta >= largest_stable_step(H):
            raise Diverged(
                f"optim.lr gives η·λ_max(H∞) ≥ 2, so gradient descent diverges; the largest stable "
                f"step for this data is {largest_stable_step(H):.4g} (sum loss)",
                step=0,
                last_finite=None,
            )
        self.eigenvalues, vectors = spectrum(H)
        self.projections = vectors.T @ self.y
        if not self.path.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            spectrum_record = {"eigenvalues": self.eigenvalues.cpu(), "projections": self.projections.cpu()}
            torch.save({**spectrum_record, "label_norm": self.y.norm().cpu()}, self.path)
        self.W0 = pl_module.net.W.detach().clone()
        self.patterns0 = self.x @ self.W0.T >= 0
        self.constants = {
            "theory/complexity_measure": complexity_measure(H, self.y),
            "theory/sqrt_yHy": complexity_measure(H, self.y) * (len(self.y) / 2) ** 0.5,
            "theory/lambda_min": float(self.eigenvalues[-1]),
            "lr_times_lambda_max": self.eta * float(self.eigenvalues[0]),
        }

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        W = pl_module.net.W.detach()
        with torch.no_grad():
            u = pl_module.net(self.x).squeeze(-1).double()
        step = torch.tensor([trainer.global_step])
        logs = {
            "train/residual": (self.y - u).norm() / self.y.norm(),
            "theory/predicted_residual": predicted_residual(
                self.eigenvalues, self.projections, self.eta, step
            )[0]
            / self.y.norm(),
            "param/dist_to_init": (W - self.W0).norm(),
            "param/max_neuron_move": (W - self.W0).norm(dim=1).max(),
            "param/flipped_patterns": ((self.x @ W.T >= 0) != self.patterns0).float().mean(),
            **{k: torch.tensor(v) for k, v in self.constants.items()},
        }
        pl_module.log_dict({k: v.float() for k, v in logs.items()}, on_step=True, on_epoch=False)
