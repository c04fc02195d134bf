"""ReweightingCallback: observes the weights q the reweighter produced and logs them."""

from __future__ import annotations

import lightning as L
import torch


class ReweightingCallback(L.Callback):
    """Logs `weights/group/<name>` (mass of q per group), `weights/min_q` and `weights/entropy`.

    It only observes; the objective is formed in the module. Lightning throttles the writes to
    `trainer.log_every_n_steps`.
    """

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx):
        q, groups = outputs["q"], outputs["groups"]
        names = pl_module.hparams.group_names
        mass = torch.bincount(groups, weights=q.float(), minlength=len(names))
        logs = {f"weights/group/{name}": m for name, m in zip(names, mass)}
        logs["weights/min_q"] = q.min()
        logs["weights/entropy"] = -(q * torch.log(q.clamp(min=1e-30))).sum()
        pl_module.log_dict(logs, on_step=True, on_epoch=False)
