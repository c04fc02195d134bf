"""`python -m overparam.results <sweep>`: one table row per job, the curves, and the declared figure."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pandas as pd

from conftest import ROOT, run_cli
from overparam.results import collect, summarize


def test_results_cli_tabulates_a_sweep_and_draws_its_figure(tmp_path):
    sweep = run_cli(
        [
            "-m",
            "+experiment=grw_fig1",
            "trainer.max_steps=200",
            "~callbacks.progress",
            f"hydra.sweep.dir={tmp_path}",
        ]
    )
    assert sweep.returncode == 0, sweep.stderr[-2000:]
    result = subprocess.run(
        [sys.executable, "-m", "overparam.results", str(tmp_path)], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]
    table = pd.read_csv(tmp_path / "results.csv")
    assert sorted(table["weighting"]) == ["erm", "gdro_nu1", "iw"] and set(table["status"]) == {"completed"}
    assert (table["steps"] == 200).all()
    curves = pd.read_csv(tmp_path / "curves.csv")
    assert curves.groupby("weighting")["step"].max().eq(200).all()
    assert (tmp_path / "seed000_fig1.png").stat().st_size > 10_000


def test_results_cli_names_an_empty_directory(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "overparam.results", str(tmp_path)], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode != 0 and "holds no run directory with a metrics.json" in result.stderr


def test_summarize_gives_t_intervals_over_seeds():
    table = pd.DataFrame({"weighting": ["erm"] * 5, "acc": [0.1, 0.2, 0.3, 0.4, 0.5]})
    summary = summarize(table, ["weighting"], ["acc"])
    assert summary[("mean", "acc")].item() == 0.3
    assert abs(summary[("ci", "acc")].item() - 2.776 * 0.158114 / 5**0.5) < 1e-3  # t_{0.975, 4} s / √5
    assert collect(ROOT / "nonexistent").empty


def test_the_collector_accounts_for_every_job_of_the_sweep(tmp_path):
    """A failed job keeps its reason, and a job that never started (its directory gone, as when an array
    task was never scheduled) is listed from multirun.yaml; the counts are printed."""
    sweep = run_cli(
        [
            "-m",
            "+experiment=grw_fig1",
            "trainer.max_steps=50",
            "~callbacks.progress",
            f"hydra.sweep.dir={tmp_path}",
        ]
    )
    assert sweep.returncode == 0, sweep.stderr[-2000:]
    jobs = {path.name.split("weighting=")[1].split(",")[0]: path for path in tmp_path.glob("*weighting=*")}
    shutil.rmtree(jobs["iw"])
    record = json.loads((jobs["erm"] / "metrics.json").read_text())
    record.update(status="failed", error="data.root /nowhere does not exist")
    (jobs["erm"] / "metrics.json").write_text(json.dumps(record))
    result = subprocess.run(
        [sys.executable, "-m", "overparam.results", str(tmp_path)], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]
    counts = next(line for line in result.stdout.splitlines() if line.startswith("3 jobs: "))
    assert set(counts.removeprefix("3 jobs: ").split(", ")) == {"1 completed", "1 failed", "1 missing"}
    assert "failed: " in result.stdout and "data.root /nowhere does not exist" in result.stdout
    table = pd.read_csv(tmp_path / "results.csv").set_index("weighting")
    assert table.loc["iw", "status"] == "missing" and table.loc["erm", "status"] == "failed"
    assert table.loc["gdro_nu1", "status"] == "completed"
