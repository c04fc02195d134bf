"""Loggers: the CSV logger a resumed run appends to, and W&B's setup and teardown."""

from __future__ import annotations

import csv
import io
import logging
import os
import sys
from pathlib import Path

from lightning.pytorch.loggers import CSVLogger, WandbLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from omegaconf import DictConfig


class ResumableCSVLogger(CSVLogger):
    """Lightning's CSVLogger, except that it appends to the metrics.csv of the run it resumes instead of
    deleting it. `prepare` has already cut that file back to the rows logged before the checkpoint."""

    @property
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = AppendingWriter(log_dir=self.log_dir)
        return self._experiment


class QuietWandbLogger(WandbLogger):
    """Lightning's W&B logger without its console noise. Lightning always passes `anonymous=None`, which
    W&B (≥ 0.19) answers with a deprecation warning on every run, so it is dropped when unset; and W&B
    prints its run history and summary at the end unless quiet (its warnings and errors still show).
    Where the run went and how to upload it is in the end-of-run lines."""

    def __init__(self, *args, settings: dict | None = None, **kwargs):
        super().__init__(*args, settings={"quiet": True, **(settings or {})}, **kwargs)
        if self._wandb_init.get("anonymous") is None:
            self._wandb_init.pop("anonymous", None)


class AppendingWriter(ExperimentWriter):
    """Appends each save's rows to metrics.csv, and rewrites the file whole, atomically, only when new keys
    change its header (Lightning's writer rewrites in place then). A row torn by a kill mid-append is
    dropped when the file is read back (a resumed run), so the file never holds one for long."""

    def _check_log_dir_exists(self) -> None:
        self.rows: list[dict] = []
        path = Path(self.metrics_file_path)
        if path.exists():
            text = path.read_text()
            complete = text[: text.rfind("\n") + 1]  # everything up to the last whole row
            with io.StringIO(complete, newline="") as file:
                reader = csv.DictReader(file)
                self.metrics_keys = list(reader.fieldnames or [])
                self.rows = [{k: v for k, v in row.items() if v != ""} for row in reader]
            if complete != text:
                self.rewrite(path)

    def save(self) -> None:
        if not self.metrics:
            return
        new_keys = self._record_new_keys()
        start = len(self.rows)
        self.rows.extend(self.metrics)
        self.metrics = []
        path = Path(self.metrics_file_path)
        if new_keys or not path.exists():
            self.rewrite(path)
            return
        rows = io.StringIO()
        csv.DictWriter(rows, fieldnames=self.metrics_keys).writerows(self.rows[start:])
        with path.open("a", newline="") as file:
            file.write(rows.getvalue())

    def rewrite(self, path: Path) -> None:
        tmp = path.with_name(f".{path.name}.tmp")
        with tmp.open("w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=self.metrics_keys)
            writer.writeheader()
            writer.writerows(self.rows)
        os.replace(tmp, path)


def route_library_logs() -> None:
    """Lightning gives its loggers a console handler of their own when imported before logging is set up
    (always, here): send them through the root logger Hydra configured instead, so `train.log` holds them
    and the console shows only their warnings."""
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "torchmetrics"):
        library = logging.getLogger(name)
        library.handlers.clear()
        library.propagate = True


def wandb_settings(cfg: DictConfig) -> dict:
    """W&B never blocks a run: online mode without credentials logs offline instead (sync it later)."""
    node = (cfg.logger or {}).get("wandb")
    if node is None or node.get("mode") != "online":
        return {}
    import wandb

    if wandb.login(prompt=False, verify=False):
        return {}
    print(
        "warning: logger.wandb.mode=online but no W&B API key is set (WANDB_API_KEY or `wandb login`); "
        f"logging offline to {cfg.run_dir}/wandb, upload later with `wandb sync`",
        file=sys.stderr,
    )
    return {"mode": "offline"}


def finish(loggers: list, status: str) -> None:
    """Flush every logger; close a W&B run so that the next job of a sweep starts its own."""
    for logger in loggers:
        logger.finalize("success" if status == "completed" else status)
        if isinstance(logger, WandbLogger):
            logger.experiment.finish(exit_code=int(status != "completed"))
