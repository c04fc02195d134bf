"""Checkpoints a run resumes from: `last.ckpt` with RNG states and logged rows, written atomically."""

from __future__ import annotations

import os
import time
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Checkpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO

from overparam.loggers import ResumableCSVLogger
from overparam.rng import rng_states, set_rng_states


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints are written beside their final name, synced, then renamed: a kill never leaves half a file
    (Lightning's own write goes through the system temp dir, which may be another filesystem)."""

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        with tmp.open("wb") as file:
            torch.save(checkpoint, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)


class ResumeCheckpoint(Checkpoint):
    """Writes `<dirpath>/last.ckpt` at the end of every `every_n_epochs`-th epoch and of the last one, but
    not again within `min_seconds` of the previous write: a full-batch run's epoch is a chunk of steps
    that takes milliseconds, and writing each would cost more than the steps (a kill then loses at most
    `min_seconds` of training; a resumed run still ends exactly as an uninterrupted one).

    The checkpoint also carries the RNG states (shuffling, dropout, augmentation) and the number of curve
    rows logged so far (the loggers are flushed first), so that a run resumed from it replays exactly what
    an uninterrupted run does. As a `Checkpoint` it runs after the module's epoch-end hook, like
    ModelCheckpoint; unlike ModelCheckpoint it always writes (`save_last` only follows top-k saves).
    """

    def __init__(self, dirpath: str, every_n_epochs: int = 1, min_seconds: float = 0.0) -> None:
        if not isinstance(every_n_epochs, int) or every_n_epochs < 1:
            raise ValueError(f"every_n_epochs must be an integer ≥ 1, got {every_n_epochs!r}")
        if not isinstance(min_seconds, int | float) or min_seconds < 0:
            raise ValueError(f"min_seconds must be a number ≥ 0, got {min_seconds!r}")
        self.path, self.every_n_epochs, self.min_seconds = (
            Path(dirpath) / "last.ckpt",
            every_n_epochs,
            min_seconds,
        )
        self.saved_at: float | None = None  # when this attempt last wrote
        self.train_metrics: dict = {}
        self.saved_step: int | None = None
        self.restored_batches: int | None = None
        # Training time across attempts: what the resumed checkpoint had, plus this attempt's.
        self.seconds_before, self.started = 0.0, time.time()

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.started = time.time()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        recently = self.saved_at is not None and time.monotonic() - self.saved_at < self.min_seconds
        if (trainer.current_epoch + 1) % self.every_n_epochs == 0 and not recently:
            self.save(trainer)

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx
    ) -> None:
        # Lightning's restart logic may add one to its count of stepped batches (it assumes a save inside
        # a batch); the count sets the log_every_n_steps schedule, so put back the saved one.
        if self.restored_batches is not None:
            trainer.fit_loop.epoch_loop._batches_that_stepped = self.restored_batches
            self.restored_batches = None

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.saved_step != trainer.global_step:
            self.save(trainer)

    def save(self, trainer: L.Trainer) -> None:
        trainer.save_checkpoint(self.path, weights_only=False)  # the full state: optimizer, loops, RNG
        self.saved_step, self.saved_at = trainer.global_step, time.monotonic()

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        checkpoint["batches_that_stepped"] = trainer.fit_loop.epoch_loop._batches_that_stepped
        checkpoint["rng_states"] = rng_states()
        checkpoint["seconds"] = self.seconds_before + time.time() - self.started
        checkpoint["last_finite_objective"] = pl_module.last_finite_objective
        checkpoint["train_metrics"] = {
            k: v.detach().cpu() for k, v in trainer.callback_metrics.items() if k.startswith("train/")
        }
        for logger in trainer.loggers:
            logger.save()
            if isinstance(logger, ResumableCSVLogger):
                checkpoint["csv_rows"] = len(logger.experiment.rows)

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        if "rng_states" in checkpoint:
            set_rng_states(checkpoint["rng_states"])
        pl_module.last_finite_objective = checkpoint.get("last_finite_objective")
        self.train_metrics = checkpoint.get("train_metrics", {})
        self.restored_batches = checkpoint.get("batches_that_stepped")
        self.seconds_before = checkpoint.get("seconds", 0.0)

    @staticmethod
    def restored_train_metrics(trainer: L.Trainer) -> dict:
        """The last epoch's `train/` metrics of the checkpoint a run resumed from (a run resumed from its
        final checkpoint trains no further, so Lightning has none of its own)."""
        for callback in trainer.callbacks:
            if isinstance(callback, ResumeCheckpoint):
                return callback.train_metrics
        return {}
