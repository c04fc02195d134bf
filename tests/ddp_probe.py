"""A callback the DDP test loads in every rank: what the rank saw and where its group weights ended."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch


class SaveGroupWeights(L.Callback):
    def __init__(self, dirpath: str) -> None:
        self.dirpath, self.seen = Path(dirpath), []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.current_epoch == 0:
            self.seen.extend(batch.index.tolist())

    def on_train_end(self, trainer, pl_module) -> None:
        state = {"g": pl_module.reweighter.g.cpu(), "seen": self.seen, "world": trainer.world_size}
        torch.save(state, self.dirpath / f"rank{trainer.global_rank}.pt")
