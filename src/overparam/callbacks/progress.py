"""Progress: Lightning's rich bar in a terminal; elsewhere (SLURM .out files, nohup, pipes) one line per
epoch with the same numbers."""

from __future__ import annotations

import sys
from pathlib import Path

import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.pytorch.callbacks import RichProgressBar


class Progress(RichProgressBar):
    """The bar shows the training objective and the model-selection metric (`val/worst_group_acc`); when
    stdout is not a terminal it is replaced by a line per epoch: step, objective and that metric, led by
    the job's name in a sweep (parallel jobs' lines interleave)."""

    def __init__(self, metrics: tuple[str, ...] = ("train/objective", "val/worst_group_acc")) -> None:
        super().__init__()
        self.metrics = tuple(metrics)
        self.lines = not sys.stdout.isatty()
        self.label = job_label()

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self.lines:
            self.disable()
        else:
            super().setup(trainer, pl_module, stage)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.lines:
            super().on_train_epoch_end(trainer, pl_module)
            return
        logged = trainer.callback_metrics
        numbers = "  ".join(f"{name} {float(logged[name]):.4g}" for name in self.metrics if name in logged)
        print(f"{self.label}epoch {trainer.current_epoch}  step {trainer.global_step}  {numbers}", flush=True)


def job_label() -> str:
    """`[<job directory>] ` for a job of a sweep, whose lines may interleave with its siblings'."""
    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        return f"[{Path(HydraConfig.get().runtime.output_dir).name}] "
    return ""
