"""ReweightingCallback: observes the weights q the reweighter produced and logs them."""

from __future__ import annotations

import lightning as L
import torch


class ReweightingCallback(L.Callback):
    """Logs `weights/group/<name>` (mass of q per group), `weights/min_q` and `weights/entropy`.

    It only observes: the objective and every reweighter hook run in the module, so removing this
    callback changes no number. Lightning throttles the writes to `trainer.log_every_n_steps`.
    """

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx):
        q, groups = outputs["q"], outputs["groups"]
        names = pl_module.hparams.group_names
        logs = {}
        # A seed-batched ensemble has one row of q per member: weights/member<k>/...
        rows = [("weights", q)] if q.dim() == 1 else [(f"weights/member{k}", row) for k, row in enumerate(q)]
        for prefix, member_q in rows:
            mass = torch.bincount(groups, weights=member_q.float(), minlength=len(names))
            logs.update({f"{prefix}/group/{name}": m for name, m in zip(names, mass)})
            logs[f"{prefix}/min_q"] = member_q.min()
            logs[f"{prefix}/entropy"] = -(member_q * torch.log(member_q.clamp(min=1e-30))).sum()
        if q.dim() == 1:
            pl_module.log_dict(logs, on_step=True, on_epoch=False)
        else:
            pl_module.log_members(logs)
