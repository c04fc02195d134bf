"""StopBelowLoss: end training once the training objective falls below a threshold (seed 003: 1e-5)."""

from __future__ import annotations

import lightning as L


class StopBelowLoss(L.Callback):
    """Sets `trainer.should_stop` when the objective of a training_step is below `threshold`.

    In full-batch runs a training_step is a chunk of `inner_steps` optimizer steps and the objective is the
    one of its last step, so the run stops at the end of the first chunk that reaches the threshold; use a
    small `inner_steps` (or `log_grid_per_decade`) to stop closer to the first such step. The step is
    logged as `train/stopped_at_step`.
    """

    def __init__(self, threshold: float) -> None:
        if not isinstance(threshold, (int, float)) or not threshold > 0:
            raise ValueError(f"threshold must be a number > 0, got {threshold!r}")
        self.threshold = float(threshold)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx):
        if float(outputs["loss"]) < self.threshold and not trainer.should_stop:
            trainer.should_stop = True
            pl_module.log("train/stopped_at_step", float(trainer.global_step), on_step=True, on_epoch=False)
