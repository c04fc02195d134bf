"""After fit: the final weights on every split, and the test metrics of the checkpoint that validation
worst-group accuracy chose (its own epoch and step, not the run's last)."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from overparam.batched.member_callbacks import load_member_network
from overparam.callbacks.resume import ResumeCheckpoint
from overparam.ensemble import member_of


def scalars(metrics: dict) -> dict[str, float]:
    return {key: float(value) for key, value in sorted(metrics.items())}


def evaluate(trainer: L.Trainer, module: L.LightningModule, data) -> dict:
    """{"metrics": final metrics, "best": the chosen checkpoint's} (even when fit stopped mid-epoch)."""
    # A run resumed from its final checkpoint trains no further: its last epoch's metrics come from there.
    logged = {**ResumeCheckpoint.restored_train_metrics(trainer), **trainer.callback_metrics}
    final = scalars({k: v for k, v in logged.items() if k.startswith(("train/", "probe/"))})
    for evaluate_split in (trainer.validate, trainer.test):
        module.written_member_metrics = {}  # a stacked model's members write theirs themselves
        final.update(scalars(evaluate_split(module, datamodule=data, verbose=False)[0]))
        final.update(module.written_member_metrics)
    if getattr(module, "members", 1) > 1:
        return {"metrics": final, "best": {}, "member_best": best_member_metrics(trainer, module, data)}
    return {"metrics": final, "best": best_checkpoint_metrics(trainer, module, data)}


def best_member_metrics(trainer: L.Trainer, module: L.LightningModule, data) -> dict[int, dict]:
    """Each member's `best/` metrics, as its single run's `best_checkpoint_metrics`: every member's best
    network put into its row of the stacked model, and the test split evaluated once for all of them."""
    chosen = {}
    for callback in trainer.callbacks:
        inner = getattr(callback, "callback", None)
        if isinstance(inner, ModelCheckpoint) and inner.monitor and inner.best_model_score is not None:
            if callback.k not in module.member_failures:
                chosen[callback.k] = inner
    if not chosen:
        return {}
    saved = {
        k: torch.load(c.best_model_path, map_location="cpu", weights_only=False) for k, c in chosen.items()
    }
    for k, checkpoint in saved.items():
        load_member_network(module, k, checkpoint["state_dict"])
    module.written_member_metrics = {}
    trainer.test(module, datamodule=data, verbose=False)
    tested = module.written_member_metrics
    best = {}
    for k, checkpoint in chosen.items():
        own = {name: value for key, value in tested.items() for owner, name in [member_of(key)] if owner == k}
        best[k] = best_record(own, saved[k], checkpoint)
    return best


def best_checkpoint_metrics(trainer: L.Trainer, module: L.LightningModule, data) -> dict:
    checkpoint = next((c for c in trainer.checkpoint_callbacks if getattr(c, "monitor", None)), None)
    if checkpoint is None or checkpoint.best_model_score is None:
        return {}
    path = checkpoint.best_model_path
    best_test = trainer.test(module, datamodule=data, ckpt_path=path, verbose=False)
    # Testing a checkpoint restores its weights, not the loop's counters: read them from the file.
    saved = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    return best_record(scalars(best_test[0]), saved, checkpoint)


def best_record(tested: dict[str, float], saved: dict, checkpoint: ModelCheckpoint) -> dict:
    """The `best/` metrics: the chosen checkpoint's test metrics, its epoch and step (from the file
    `saved`), its score and its file name."""
    best = {f"best/{name}": value for name, value in sorted(tested.items())}
    best.update({"best/epoch": float(saved["epoch"]), "best/step": float(saved["global_step"])})
    best[f"best/{checkpoint.monitor}"] = float(checkpoint.best_model_score)
    best["best/checkpoint"] = Path(checkpoint.best_model_path).name
    return best
