"""Model selection: per run, the evaluation each rule picks among those logged during training, with the
test metrics at that point side by side (SubpopBench's model-selection table)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from hydra.utils import get_class

from overparam.results.collect import job_dirs, overrides

# rule -> the logged metric it maximizes. The oracle reads the test labels: it bounds what the others can
# reach and is never a valid selection.
RULES = {
    "worst-group val acc": "val/worst_group_acc",
    "avg val acc": "val/avg_acc",
    "worst-class val acc": "val/worst_class_acc",
    "test oracle (uses test labels)": "test/worst_group_acc",
}
REPORTED = ("test/worst_group_acc", "test/avg_acc", "test/worst_class_acc")


def select(curve: pd.DataFrame) -> list[dict]:
    """For each rule whose metric `curve` (one row per logged step) holds: the first step where it is
    largest, and the reported test metrics at that step (NaN where the test split was not evaluated)."""
    picks = []
    for rule, metric in RULES.items():
        if metric not in curve or curve[metric].isna().all():
            continue
        row = curve.loc[curve[metric].idxmax()]
        picks.append(
            {
                "rule": rule,
                "step": int(row["step"]),
                "epoch": row.get("epoch"),
                "selected_by": float(row[metric]),
                **{name: float(row[name]) if name in row else float("nan") for name in REPORTED},
            }
        )
    return picks


def selections(sweep_dir: str | Path) -> pd.DataFrame:
    """One row per job and rule: the job's overrides, the rule, the step it picks and the test metrics
    there, and at how many steps the job's test split was evaluated (`test_evaluations`)."""
    rows = []
    for job in job_dirs(sweep_dir):
        logged = job / "metrics.csv"
        if logged.exists():
            curve = pd.read_csv(logged).groupby("step", as_index=False).first()
            tested = int(curve[REPORTED[0]].notna().sum()) if REPORTED[0] in curve else 0
            rows += [
                {"job": job.name, **overrides(job), **pick, "test_evaluations": tested}
                for pick in select(curve)
            ]
    return pd.DataFrame(rows)


def side_by_side(table: pd.DataFrame) -> pd.DataFrame:
    """Each rule's reported test metrics, mean over the jobs (and how many jobs had the rule's metric)."""
    reported = [name for name in REPORTED if name in table and table[name].notna().any()]
    summary = table.groupby("rule", sort=False)[reported].mean()
    return summary.assign(jobs=table.groupby("rule", sort=False).size())


def regression_sweep(sweep_dir: str | Path) -> bool:
    """Whether the sweep's runs fit regression targets (their datamodule says so), where the rules, which
    rank accuracies of the sign, would select on nothing meaningful."""
    for job in job_dirs(sweep_dir):
        config = json.loads((job / "metrics.json").read_text()).get("config") or {}
        target = (config.get("data") or {}).get("_target_")
        if target:
            return bool(getattr(get_class(target), "regression", False))
    return False
