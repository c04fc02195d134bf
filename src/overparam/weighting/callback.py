"""ReweightingCallback: observes the weights q the reweighter produced and logs them; switches JTT's stage."""

from __future__ import annotations

import copy

import lightning as L
import torch


class ReweightingCallback(L.Callback):
    """Logs `weights/group/<name>` (mass of q per group), `weights/min_q` and `weights/entropy`.

    It only observes; the objective is formed in the module. Lightning throttles the writes to
    `trainer.log_every_n_steps`. For a two-stage reweighter (JTT) it also makes the switch: it finds the
    training points the model gets wrong, hands them to the reweighter, and restarts the network from
    its initial parameters with a fresh optimizer state.
    """

    def __init__(self) -> None:
        self.initial_state: dict | None = None

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if hasattr(pl_module.reweighter, "start_second_stage") and self.initial_state is None:
            self.initial_state = copy.deepcopy(pl_module.net.state_dict())

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
        pl_module.log_dict(logs, on_step=True, on_epoch=False)
        reweighter = pl_module.reweighter
        if hasattr(reweighter, "start_second_stage") and not reweighter.second_stage:
            if trainer.global_step >= reweighter.identification_steps:
                self.switch_stage(trainer, pl_module)

    def switch_stage(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        train = trainer.datamodule.train
        wrong = torch.zeros(len(train), dtype=torch.bool, device=pl_module.device)
        pl_module.net.eval()
        with torch.no_grad():
            for start in range(0, len(train), 1024):
                batch = train[list(range(start, min(start + 1024, len(train))))]
                x, y = batch.x.to(pl_module.device, pl_module.dtype), batch.y.to(pl_module.device)
                wrong[batch.index] = ~pl_module.correct(pl_module.net(x), y)
        pl_module.net.train()
        pl_module.reweighter.start_second_stage(wrong)
        pl_module.net.load_state_dict(self.initial_state)
        for optimizer in trainer.optimizers:
            optimizer.state.clear()
        pl_module.log("weights/jtt_error_set_size", wrong.sum().float())

    def state_dict(self) -> dict:
        return {"initial_state": self.initial_state}

    def load_state_dict(self, state_dict: dict) -> None:
        self.initial_state = state_dict["initial_state"]
