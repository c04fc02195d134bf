"""`python -m overparam.results <sweep>`: one table row per job, the curves, and the declared figure."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pandas as pd

from conftest import ROOT, run_cli
from overparam.results import collect, summarize
from overparam.results.selection import RULES, select


def sweep_and_collect(sweep_dir, overrides: list[str]) -> subprocess.CompletedProcess:
    """`python train.py -m <overrides>` into `sweep_dir` (it must succeed), then `python -m overparam.results`
    on it; returns what the results command printed."""
    sweep = run_cli(["-m", *overrides, "~callbacks.progress", f"hydra.sweep.dir={sweep_dir}"])
    assert sweep.returncode == 0, sweep.stderr[-2000:]
    return subprocess.run(
        [sys.executable, "-m", "overparam.results", str(sweep_dir)], cwd=ROOT, capture_output=True, text=True
    )


def test_results_cli_tabulates_a_sweep_and_draws_its_figure(tmp_path):
    result = sweep_and_collect(tmp_path, ["+experiment=grw_fig1", "trainer.max_steps=200"])
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


def test_each_model_selection_rule_picks_its_best_logged_step_and_reports_the_test_metrics_there(tmp_path):
    sizes = ["data.n_train=600", "data.n_val=300", "data.n_test=300"]
    result = sweep_and_collect(
        tmp_path,
        ["weighting=erm,gdro", *sizes, "trainer.max_epochs=4", "run.eval_splits=[val,test]"],
    )
    assert result.returncode == 0 and "test oracle (uses test labels)" in result.stdout, result.stderr
    picks = pd.read_csv(tmp_path / "selection.csv")
    curves = pd.read_csv(tmp_path / "curves.csv")
    assert set(picks["rule"]) == set(RULES) and len(picks) == 2 * len(RULES)
    for (job, rule), pick in picks.set_index(["job", "rule"]).iterrows():
        curve = curves[curves["job"] == job].dropna(subset=[RULES[rule]])
        best = curve.loc[curve[RULES[rule]].idxmax()]
        assert pick["step"] == best["step"] and pick["test/avg_acc"] == best["test/avg_acc"]
        oracle = picks[(picks["job"] == job) & picks["rule"].str.startswith("test oracle")]
        assert pick["test/worst_group_acc"] <= oracle["test/worst_group_acc"].item()


def test_selection_takes_the_first_of_equal_bests_and_skips_rules_without_their_metric():
    curve = pd.DataFrame(
        {
            "step": [10, 20, 30, 40],
            "val/worst_group_acc": [0.5, 0.7, None, 0.7],
            "val/avg_acc": [0.9, 0.8, None, 0.85],
            "test/worst_group_acc": [0.4, 0.6, None, 0.65],
            "test/avg_acc": [0.8, 0.7, None, 0.75],
        }
    )
    picks = {pick["rule"]: pick for pick in select(curve)}
    assert "worst-class val acc" not in picks
    assert picks["worst-group val acc"]["step"] == 20 and picks["worst-group val acc"]["test/avg_acc"] == 0.7
    assert picks["avg val acc"]["step"] == 10
    assert picks["test oracle (uses test labels)"]["test/worst_group_acc"] == 0.65


def test_a_regression_sweep_gets_no_accuracy_based_model_selection(tmp_path):
    """Seed 004's sines are regression targets: the results say there is no selection table for them
    instead of ranking runs by a sign 'accuracy'."""
    one_job = ["model.width=50", "seed=0", "node_scaling=iid", "trainer.max_steps=20"]
    result = sweep_and_collect(tmp_path, ["+experiment=asym_width", *one_job])
    assert result.returncode == 0, result.stderr[-2000:]
    assert "model selection: none for regression targets" in result.stdout
    assert "test oracle" not in result.stdout and not (tmp_path / "selection.csv").exists()


def test_a_sweep_whose_test_split_was_evaluated_only_at_the_end_gets_one_sentence_not_a_table(tmp_path):
    """Without the test split among run.eval_splits no selection rule's pick has test metrics: a table of
    NaN beside the oracle's only test step would mislead."""
    result = sweep_and_collect(tmp_path, ["weighting=erm,gdro", "trainer.max_epochs=2"])
    assert result.returncode == 0, result.stderr[-2000:]
    assert "model selection: none, the test split was evaluated only after training" in result.stdout
    assert "test oracle" not in result.stdout
    assert set(pd.read_csv(tmp_path / "selection.csv")["rule"]) >= {"worst-group val acc", "avg val acc"}
