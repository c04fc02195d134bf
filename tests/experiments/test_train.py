"""The default experiment end to end, and the science claim it exists for."""

from __future__ import annotations

import json

import lightning as L
import pandas as pd
import torch

from conftest import QUIET, compose_config
from overparam.entry import execute


def test_default_experiment_trains_and_writes_metrics_json(run_dir):
    metrics = execute(compose_config(QUIET, run_dir)).flat()
    written = json.loads((run_dir / "metrics.json").read_text())
    assert written["status"] == "completed" and written["steps"] == 20 * 24  # 20 epochs × ⌈3000/128⌉ batches
    for key in (
        "test/avg_acc",
        "test/worst_group_acc",
        "val/worst_group_acc",
        "train/avg_acc",
        "test/group_acc/y0_green",
        "test/group_loss/y1_red",
    ):
        assert key in written["metrics"], key
    assert written["best"]["best/val/worst_group_acc"] >= written["metrics"]["val/worst_group_acc"]
    # The best/ entries are the chosen checkpoint's (the first epoch with the highest validation
    # worst-group accuracy), not the last epoch's.
    validation = pd.read_csv(run_dir / "metrics.csv").dropna(subset=["val/worst_group_acc"])
    chosen = validation.loc[validation["val/worst_group_acc"].idxmax()]
    assert (written["best"]["best/epoch"], written["best"]["best/step"]) == (chosen["epoch"], chosen["step"])
    assert written["best"]["best/checkpoint"] == f"best-epoch{int(chosen['epoch'])}.ckpt"
    assert metrics["test/worst_group_acc"] == written["metrics"]["test/worst_group_acc"]
    assert written["metrics"]["train/avg_acc"] > 0.95  # it learned
    header = (run_dir / "metrics.csv").read_text().splitlines()[0]
    assert "weights/group/y0_green" in header and "weights/entropy" in header
    assert (run_dir / "checkpoints" / "last.ckpt").exists()


def test_group_dro_beats_erm_on_worst_group_accuracy(tmp_path):
    """Model selection on validation worst-group accuracy (Sagawa et al. 2020a): GDRO ≥ ERM + 10 pp."""
    worst = {}
    for weighting in ("erm", "gdro"):
        metrics = execute(compose_config([*QUIET, f"weighting={weighting}"], tmp_path / weighting)).flat()
        worst[weighting] = metrics["best/test/worst_group_acc"]
    assert worst["gdro"] >= worst["erm"] + 0.10, worst


class GroupWeightsProbe(L.Callback):
    """Records the Group DRO weights when training (re)starts."""

    seen: torch.Tensor | None = None

    def on_train_start(self, trainer, pl_module):
        GroupWeightsProbe.seen = pl_module.reweighter.g.clone()


def test_checkpoint_restores_group_dro_weights_and_resume_continues_from_them(tmp_path):
    probe = "+callbacks.probe._target_=test_train.GroupWeightsProbe"
    execute(compose_config([*QUIET, "trainer.max_epochs=2", "weighting.eta=0.5", probe], tmp_path / "a"))
    checkpoint = tmp_path / "a" / "checkpoints" / "last.ckpt"
    saved = torch.load(checkpoint, weights_only=False)["state_dict"]["reweighter.g"]
    assert not torch.allclose(saved, torch.full((4,), 0.25))  # the state moved and was saved
    resumed = [*QUIET, "trainer.max_epochs=3", "weighting.eta=0.5", f"ckpt_path={checkpoint}", probe]
    execute(compose_config(resumed, tmp_path / "b"))
    torch.testing.assert_close(GroupWeightsProbe.seen, saved)
    assert json.loads((tmp_path / "b" / "metrics.json").read_text())["steps"] == 3 * 24
