"""Sweeps at cluster scale: a joblib sweep that skips its finished jobs when re-run, the collector's table and
figure, and the sbatch script the SLURM launcher would submit."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pandas as pd
import pytest
import submitit
import yaml
from hydra import compose, initialize_config_dir
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher
from omegaconf import OmegaConf

from conftest import CONF, ROOT, run_cli

SWEEP = [
    "-m",
    "+experiment=grw_fig1",
    "seed=0,1",
    "trainer.max_steps=1000",
    "~callbacks.progress",
    "hydra/launcher=joblib",
    "hydra.launcher.n_jobs=2",
]


def test_a_joblib_sweep_runs_each_job_once_and_the_collector_tabulates_and_draws_it(tmp_path):
    sweep = tmp_path / "sweep"
    first = run_cli([*SWEEP, f"hydra.sweep.dir={sweep}"])
    assert first.returncode == 0, first.stderr[-2000:]
    written = sorted(sweep.glob("*/metrics.json"))
    assert len(written) == 6  # 3 weightings × 2 seeds
    assert all(json.loads(path.read_text())["status"] == "completed" for path in written)
    stamps = {path: path.stat().st_mtime_ns for path in written}

    again = run_cli([*SWEEP, f"hydra.sweep.dir={sweep}"])
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stdout.count("skipped:") == 6  # no job trained again
    assert {path: path.stat().st_mtime_ns for path in written} == stamps

    collected = subprocess.run(
        [sys.executable, "-m", "overparam.results", str(sweep)], cwd=ROOT, capture_output=True, text=True
    )
    assert collected.returncode == 0, collected.stderr[-2000:]
    table = pd.read_parquet(sweep / "results.parquet")
    assert len(table) == 6 and set(table["weighting"]) == {"erm", "iw", "gdro_nu1"}
    assert len(pd.read_csv(sweep / "results.csv")) == 6
    summary = pd.read_csv(sweep / "summary.csv").set_index(["weighting", "metric"])
    worst = summary.xs("test/worst_group_acc", level="metric")  # one row per weighting, over the two seeds
    assert len(worst) == 3 and (worst["n"] == 2).all()
    by_hand = table.groupby("weighting")["test/worst_group_acc"].mean()
    assert worst["mean"].sort_index().tolist() == pytest.approx(by_hand.sort_index().tolist())
    assert (sweep / "seed000_fig1.png").stat().st_size > 10_000


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch):
    """A PATH with an `srun` (submitit looks for one) and a capture of the script sbatch would receive."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 1\n")
    (bin_dir / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    rendered = {}

    class Submitted(Exception):
        pass

    def capture(executor, command):
        rendered["script"] = executor._make_submission_file_text(command, "0")
        raise Submitted

    monkeypatch.setattr(submitit.slurm.slurm.SlurmExecutor, "_submit_command", capture)
    return rendered, Submitted


def test_the_slurm_launcher_renders_a_gpu_array_job_with_requeue(tmp_path, fake_slurm):
    rendered, submitted = fake_slurm
    overrides = [
        "hydra/launcher=slurm",
        "hydra.launcher.partition=gpu",
        "hydra.launcher.timeout_min=240",
        "hydra.launcher.array_parallelism=2",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        "+experiment=gdro_waterbirds",
        "data.root=/data/waterbirds",
    ]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    params = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    params.pop("_target_")
    launcher = SlurmLauncher(**params)
    launcher.setup(hydra_context=None, task_function=lambda config: None, config=cfg)
    with pytest.raises(submitted):
        launcher.launch([[f"seed={seed}"] for seed in (2002, 2022, 2042)], initial_job_idx=0)
    script = rendered["script"]
    for line in (
        "#SBATCH --array=0-2%2",  # three jobs, at most two at once
        "#SBATCH --partition=gpu",
        "#SBATCH --gpus-per-node=1",
        "#SBATCH --time=240",
        "#SBATCH --signal=USR2@120",  # submitit's warning before the time limit: checkpoint and requeue
        "-m submitit.core._submit",
    ):
        assert line in script
    assert launcher.params["max_num_timeout"] == 3  # requeues after preemption or timeout


def test_optuna_tunes_group_dro_on_validation_worst_group_accuracy(tmp_path):
    result = run_cli(
        [
            "-m",
            "+experiment=tune_gdro_cmnist",
            "hydra.sweeper.n_trials=3",
            "trainer.max_epochs=2",
            "data.n_train=256",
            "data.n_val=64",
            "data.n_test=64",
            "~callbacks.progress",
            f"hydra.sweep.dir={tmp_path}",
        ]
    )
    assert result.returncode == 0, result.stderr[-2000:]
    found = yaml.safe_load((tmp_path / "optimization_results.yaml").read_text())
    assert set(found["best_params"]) == {"weighting.eta", "optim.weight_decay"}
    trials = [json.loads(path.read_text()) for path in tmp_path.glob("*/metrics.json")]
    assert len(trials) == 3
    etas = [trial["config"]["weighting"]["eta"] for trial in trials]
    assert len(set(etas)) == 3 and all(1e-3 <= eta <= 1.0 for eta in etas)  # sampled, log-uniform range
    assert found["best_value"] == max(trial["best"]["best/val/worst_group_acc"] for trial in trials)
    # Trial directories are short and flat (no 17-digit floats), and the console has no plugin chatter.
    names = [path.parent.name for path in tmp_path.glob("*/metrics.json")]
    values = [item.split("=", 1)[1] for name in names for item in name.split(",") if "=" in item]
    sampled = [v for v in values if re.fullmatch(r"[\d.e-]+", v) and "." in v]
    assert sampled and all(v == f"{float(v):.4g}" for v in sampled), names  # 4 significant digits
    assert "setup plugin" not in result.stdout + result.stderr
