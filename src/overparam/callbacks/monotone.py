"""MonotoneDecay: stop a run as soon as its full training loss rises (seed 003's learning-rate rule)."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L

from overparam.events import StepEvents


class MonotoneDecay(StepEvents, L.Callback):
    """Watches the full training loss: after every step in full-batch runs (the objective of the step,
    which is L_D(θ_t) for unweighted ERM), after every epoch otherwise (`train_eval/loss`, so
    `eval_splits` must hold `train`). The run stops at the first rise, or once the loss is below
    `threshold`. Writes `<dirpath>/monotone.json`: {"monotone", "converged", "steps", "losses"}.
    """

    def __init__(self, dirpath: str, threshold: float) -> None:
        self.path, self.threshold = Path(dirpath) / "monotone.json", threshold
        self.losses: list[float] = []
        self.rose = False
        self.every_step = False  # full batch: a chunk of inner steps ends after every step

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.every_step = trainer.num_training_batches == 1

    def next_event_step(self, step: int) -> int | None:
        return step + 1 if self.every_step else None

    def observe(self, trainer: L.Trainer, loss: float) -> None:
        self.rose = self.rose or bool(self.losses and loss > self.losses[-1])
        self.losses.append(loss)
        if self.rose or loss < self.threshold:
            trainer.should_stop = True

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.num_training_batches == 1:
            self.observe(trainer, float(outputs["loss"]))

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.num_training_batches != 1 and not trainer.sanity_checking:
            if "train_eval/loss" not in trainer.callback_metrics:
                raise ValueError(
                    "MonotoneDecay with mini-batches reads train_eval/loss: add train to eval_splits"
                )
            self.observe(trainer, float(trainer.callback_metrics["train_eval/loss"]))

    def on_fit_end(self, trainer, pl_module) -> None:
        converged = bool(self.losses) and self.losses[-1] < self.threshold
        verdict = {"monotone": not self.rose, "converged": converged, "steps": trainer.global_step}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps({**verdict, "losses": self.losses}))
