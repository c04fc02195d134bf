"""A run directory is a run's identity: restarting into it resumes, a finished run in it is never redone.

`prepare(run_dir, config)` decides what a (re)started job does:
- the directory holds a finished run (metrics.json says completed or diverged): skip it, report its result;
- it holds a started run of another config: refuse (nothing in it is touched);
- it holds `checkpoints/last.ckpt`: resume from it, dropping the curve rows logged after that checkpoint;
- otherwise start afresh (an earlier attempt's metrics.json and metrics.csv are kept as metrics.attempt<k>.*).
"""

from __future__ import annotations

import csv
import json
import os
import random
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Checkpoint
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.plugins.io import TorchCheckpointIO

from overparam.errors import ConfigError

FINAL_STATUSES = ("completed", "diverged")
LAST_CHECKPOINT = Path("checkpoints") / "last.ckpt"
# Keys that may change between attempts without changing what is computed.
COSMETIC_PREFIXES = ("run_dir", "ckpt_path", "logger", "callbacks.progress", "trainer.enable_progress_bar")


@dataclass
class Plan:
    action: str  # "skip" | "resume" | "start"
    ckpt_path: str | None = None
    previous: dict | None = None  # the finished run's metrics.json, when skipping


def write_json(path: Path, payload: dict) -> None:
    """Write atomically: a reader never sees half a file."""
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True))
    os.replace(tmp, path)


def flatten(tree, prefix: str = "") -> dict:
    if isinstance(tree, dict):
        items = {}
        for key, value in tree.items():
            items.update(flatten(value, f"{prefix}{key}."))
        return items
    return {prefix[:-1]: tree}


def config_changes(before: dict, after: dict) -> list[str]:
    """`key: old → new` for every setting that differs, ignoring the cosmetic ones."""
    old, new = flatten(before), flatten(after)
    changed = []
    for key in sorted(set(old) | set(new)):
        if key.startswith(COSMETIC_PREFIXES) or old.get(key, "<unset>") == new.get(key, "<unset>"):
            continue
        changed.append(f"{key}: {old.get(key, '<unset>')} → {new.get(key, '<unset>')}")
    return changed


def prepare(run_dir: Path, config: dict) -> Plan:
    """What to do in `run_dir` for `config` (the unresolved config as a plain dict)."""
    metrics_path, started_path = run_dir / "metrics.json", run_dir / "started.json"
    previous = json.loads(metrics_path.read_text()) if metrics_path.exists() else None
    started = json.loads(started_path.read_text()) if started_path.exists() else None
    recorded = (previous or started or {}).get("config")
    if recorded is not None:
        changes = config_changes(recorded, config)
        if changes:
            raise ConfigError(
                f"{run_dir} already holds a run of another config ({'; '.join(changes[:3])}); "
                "restart it with its own overrides or choose a new hydra.run.dir"
            )
    if previous is not None and previous.get("status") in FINAL_STATUSES:
        return Plan("skip", previous=previous)
    attempt = (started or {}).get("attempt", 0) + 1
    if previous is not None:  # a failed or stopped attempt: keep its record
        os.replace(metrics_path, run_dir / f"metrics.attempt{attempt - 1}.json")
    write_json(started_path, {"attempt": attempt, "config": config})
    checkpoint = run_dir / LAST_CHECKPOINT
    if checkpoint.exists():
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        keep_rows(run_dir / "metrics.csv", state.get("csv_rows", 0))
        return Plan("resume", ckpt_path=str(checkpoint))
    if (run_dir / "metrics.csv").exists():  # an attempt that ended before its first checkpoint
        os.replace(run_dir / "metrics.csv", run_dir / f"metrics.attempt{attempt - 1}.csv")
    return Plan("start")


def keep_rows(path: Path, count: int) -> None:
    """Keep the first `count` curve rows (those logged before the checkpoint); the resumed run logs the
    rest again."""
    if not path.exists():
        return
    with path.open(newline="") as file:
        reader = csv.DictReader(file)
        fields, rows = reader.fieldnames or [], list(reader)[:count]
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


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


class ResumableCSVLogger(CSVLogger):
    """Lightning's CSVLogger, except that it appends to the metrics.csv of the run it resumes instead of
    deleting it. `prepare` has already cut that file back to the rows logged before the checkpoint."""

    @property
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = AppendingWriter(log_dir=self.log_dir)
        return self._experiment


class AppendingWriter(ExperimentWriter):
    """Keeps every row and rewrites metrics.csv whole, atomically, at each save: a kill never leaves a torn
    row or a half-rewritten header (Lightning's writer appends, and rewrites in place when keys change)."""

    def _check_log_dir_exists(self) -> None:
        self.rows: list[dict] = []
        path = Path(self.metrics_file_path)
        if path.exists():
            with path.open(newline="") as file:
                reader = csv.DictReader(file)
                self.metrics_keys = list(reader.fieldnames or [])
                self.rows = [{k: v for k, v in row.items() if v != ""} for row in reader]

    def save(self) -> None:
        if not self.metrics:
            return
        self._record_new_keys()
        self.rows.extend(self.metrics)
        self.metrics = []
        path = Path(self.metrics_file_path)
        tmp = path.with_name(f".{path.name}.tmp")
        with tmp.open("w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=self.metrics_keys)
            writer.writeheader()
            writer.writerows(self.rows)
        os.replace(tmp, path)


class ResumeCheckpoint(Checkpoint):
    """Writes `<dirpath>/last.ckpt` at the end of every `every_n_epochs`-th epoch and of the last one.

    The checkpoint also carries the RNG states (shuffling, dropout, augmentation) and the number of curve
    rows logged so far (the loggers are flushed first), so that a run resumed from it replays exactly what
    an uninterrupted run does. As a `Checkpoint` it runs after the module's epoch-end hook, like
    ModelCheckpoint; unlike ModelCheckpoint it always writes (`save_last` only follows top-k saves).
    """

    def __init__(self, dirpath: str, every_n_epochs: int = 1) -> None:
        if not isinstance(every_n_epochs, int) or every_n_epochs < 1:
            raise ValueError(f"every_n_epochs must be an integer ≥ 1, got {every_n_epochs!r}")
        self.path, self.every_n_epochs = Path(dirpath) / "last.ckpt", every_n_epochs
        self.train_metrics: dict = {}
        self.saved_step: int | None = None
        self.restored_batches: int | None = None

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if (trainer.current_epoch + 1) % self.every_n_epochs == 0:
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
        trainer.save_checkpoint(self.path)
        self.saved_step = trainer.global_step

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        checkpoint["batches_that_stepped"] = trainer.fit_loop.epoch_loop._batches_that_stepped
        checkpoint["rng_states"] = rng_states()
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

    @staticmethod
    def restored_train_metrics(trainer: L.Trainer) -> dict:
        """The last epoch's `train/` metrics of the checkpoint a run resumed from (a run resumed from its
        final checkpoint trains no further, so Lightning has none of its own)."""
        for callback in trainer.callbacks:
            if isinstance(callback, ResumeCheckpoint):
                return callback.train_metrics
        return {}


def rng_states() -> dict:
    """Every RNG a run draws from, as tensors and plain numbers (`torch.load(weights_only=True)` reads it)."""
    kind, key, position, has_gauss, gauss = np.random.get_state()
    states = {
        "torch": torch.get_rng_state(),
        "numpy": [kind, torch.from_numpy(key.astype(np.int64)), position, has_gauss, gauss],
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict) -> None:
    torch.set_rng_state(states["torch"])
    kind, key, position, has_gauss, gauss = states["numpy"]
    np.random.set_state((kind, key.numpy().astype(np.uint32), position, has_gauss, gauss))
    version, internal, gauss_next = states["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
