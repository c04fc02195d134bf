"""A run is a directory, a sweep is a folder of them: join metrics.json, metrics.csv and overrides."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import torch
import yaml
from scipy import stats


def job_dirs(sweep_dir: str | Path) -> list[Path]:
    """Every run directory under `sweep_dir` (those holding a metrics.json), in a stable order. An
    ensemble's own directory is left out (its members' directories hold its runs), and so are the runs a
    procedure trained to make one: learning-rate search trials (under `lr_search/`) and the rounds of a
    σ-shrinking run (whose own directory holds the result)."""
    sweep_dir = Path(sweep_dir)
    found = sorted(path.parent for path in sweep_dir.rglob("metrics.json"))
    results = {job: json.loads((job / "metrics.json").read_text()) for job in found}
    procedures = [job for job, result in results.items() if "sigma_search" in result]
    return [
        job
        for job in found
        if "members" not in results[job]
        and "lr_search" not in job.relative_to(sweep_dir).parts
        and not any(parent in procedures for parent in job.parents)
    ]


def overrides(job: Path) -> dict[str, str]:
    """The job's command-line overrides as {key: value}, read from `.hydra/overrides.yaml`."""
    path = job / ".hydra" / "overrides.yaml"
    if not path.exists():
        return {}
    pairs = [item.split("=", 1) for item in yaml.safe_load(path.read_text()) or [] if "=" in item]
    return {key.lstrip("+~"): value for key, value in pairs}


def collect(sweep_dir: str | Path) -> pd.DataFrame:
    """One row per job: its overrides, `status`, `steps`, `seconds`, and every final and `best/` metric."""
    rows = []
    for job in job_dirs(sweep_dir):
        result = json.loads((job / "metrics.json").read_text())
        rows.append(
            {
                "job": job.name,
                **overrides(job),
                "status": result["status"],
                "steps": result.get("steps"),
                "seconds": result.get("seconds"),
                **result.get("metrics", {}),
                **{k: v for k, v in result.get("best", {}).items() if k != "best/checkpoint"},
            }
        )
    return pd.DataFrame(rows)


def curves(sweep_dir: str | Path) -> pd.DataFrame:
    """Every job's metrics.csv stacked, one row per logged step, with the job's overrides as columns."""
    frames = []
    for job in job_dirs(sweep_dir):
        if (job / "metrics.csv").exists():
            frame = pd.read_csv(job / "metrics.csv").groupby("step", as_index=False).first()
            frames.append(frame.assign(job=job.name, **overrides(job)))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def snapshots(sweep_dir: str | Path) -> dict[str, dict]:
    """{job name: {"step", "theta", "test_outputs", "overrides"}} for the jobs that saved snapshots.pt."""
    out = {}
    for job in job_dirs(sweep_dir):
        if (job / "snapshots.pt").exists():
            out[job.name] = {**torch.load(job / "snapshots.pt"), "overrides": overrides(job)}
    return out


def summarize(table: pd.DataFrame, by: list[str], metrics: list[str], level: float = 0.95) -> pd.DataFrame:
    """Mean, standard deviation, count and the half-width of a t confidence interval over seeds."""
    grouped = table.groupby(by)[metrics]
    mean, std, count = grouped.mean(), grouped.std(ddof=1), grouped.count()
    half_width = std * stats.t.ppf(0.5 + level / 2, (count - 1).clip(lower=1)) / count.pow(0.5)
    return pd.concat({"mean": mean, "std": std, "n": count, "ci": half_width}, axis=1)
