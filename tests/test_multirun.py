"""Hydra multiruns from the command line: the basic launcher and the joblib launcher."""

from __future__ import annotations

import json

import pytest

from conftest import run_cli

FAST = ["trainer.max_epochs=1", "data.n_train=256", "data.n_val=64", "data.n_test=64", "~callbacks.progress"]


@pytest.mark.parametrize(
    "launcher", [[], ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]], ids=["basic", "joblib"]
)
def test_multirun_writes_one_metrics_json_per_algorithm(tmp_path, launcher):
    result = run_cli(["-m", "weighting=erm,iw,gdro", *FAST, *launcher, f"hydra.sweep.dir={tmp_path}"])
    assert result.returncode == 0, result.stderr[-2000:]
    written = [json.loads(path.read_text()) for path in sorted(tmp_path.glob("*/metrics.json"))]
    assert sorted(w["config"]["weighting"]["_target_"].split(".")[-2] for w in written) == [
        "erm",
        "gdro",
        "iw",
    ]
    for job in written:
        assert job["status"] == "completed" and "test/worst_group_acc" in job["metrics"]
    assert all("weighting=" in path.parent.name for path in tmp_path.glob("*/metrics.json"))


def test_a_diverging_job_is_recorded_and_its_sweep_siblings_complete(tmp_path):
    result = run_cli(["-m", "optim.lr=1e8,0.1", *FAST, "trainer.max_epochs=5", f"hydra.sweep.dir={tmp_path}"])
    assert result.returncode == 0, result.stderr[-2000:]
    status = {}
    for path in tmp_path.glob("*/metrics.json"):
        written = json.loads(path.read_text())
        status[written["config"]["optim"]["lr"]] = written
    assert status[0.1]["status"] == "completed"
    diverged = status[1e8]
    assert diverged["status"] == "diverged" and diverged["steps"] >= 1
    assert "lower optim.lr" in diverged["error"] and diverged["last_finite_loss"] is not None


def test_a_job_with_a_bad_value_is_recorded_as_failed_and_its_siblings_complete(tmp_path):
    sweep = ["-m", "run.inner_steps=0,1", *FAST, f"hydra.sweep.dir={tmp_path}"]
    result = run_cli(sweep)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "error: run.inner_steps must be an integer ≥ 1 or auto, got 0" in result.stderr
    assert "Traceback" not in result.stderr
    written = {
        json.loads(path.read_text())["config"]["run"]["inner_steps"]: path
        for path in tmp_path.glob("*/metrics.json")
    }
    failed = json.loads(written[0].read_text())
    assert failed["status"] == "failed" and "run.inner_steps" in failed["error"]
    assert json.loads(written[1].read_text())["status"] == "completed"
    completed_at = written[1].stat().st_mtime_ns
    again = run_cli(sweep)  # only what is missing runs again: the bad job fails again, the other is skipped
    assert again.returncode == 0 and again.stdout.count("skipped:") == 1
    assert written[1].stat().st_mtime_ns == completed_at
