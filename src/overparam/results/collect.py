"""A run is a directory, a sweep is a folder of them: join metrics.json, metrics.csv and overrides."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pandas as pd
import torch
import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf
from scipy import stats


def job_dirs(sweep_dir: str | Path) -> list[Path]:
    """Every run directory under `sweep_dir` (those holding a metrics.json), in a stable order. An
    ensemble's or a batched group's own directory is left out (its members' directories hold its runs;
    the launcher keeps groups in hidden folders, `.batched/`), and so are the runs a
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
        and not any(part.startswith(".") for part in job.relative_to(sweep_dir).parts)
        and "lr_search" not in job.relative_to(sweep_dir).parts
        and not any(parent in procedures for parent in job.parents)
    ]


def overrides(job: Path) -> dict[str, str]:
    """The job's command-line overrides as {key: value}, read from `.hydra/overrides.yaml`."""
    pairs = [item.split("=", 1) for item in job_overrides(job) if "=" in item]
    return {key.lstrip("+~"): value for key, value in pairs}


def expected_jobs(sweep_dir: str | Path) -> list[frozenset[str]] | None:
    """Every job the sweep launches, as its set of overrides, expanded from `multirun.yaml` as Hydra's
    basic sweeper expands it (the config's `hydra.sweeper.params`, then the command line); None when the
    sweep has no such file or draws its values (Optuna's intervals)."""
    path = Path(sweep_dir) / "multirun.yaml"
    if not path.exists():
        return None
    config = OmegaConf.load(path)
    params = OmegaConf.to_container(config.hydra.sweeper, resolve=False).get("params") or {}
    lines = [f"{key}={value}" for key, value in params.items()] + list(config.hydra.overrides.task)
    choices: dict[str, list[str]] = {}
    for override in OverridesParser.create().parse_overrides(lines):
        key = override.get_key_element()
        if not override.is_sweep_override():
            choices[override.key_or_group] = [f"{key}={override.get_value_element_as_str()}"]
        elif "INTERVAL" in override.value_type.name:
            return None
        else:
            choices[override.key_or_group] = [f"{key}={value}" for value in override.sweep_string_iterator()]
    return [frozenset(combination) for combination in itertools.product(*choices.values())]


def unfinished_jobs(sweep_dir: str | Path) -> pd.DataFrame:
    """The jobs of the sweep that have no result: started but never ended (`unfinished`: killed before
    writing metrics.json) or never started (`missing`), with their overrides."""
    sweep_dir = Path(sweep_dir)
    rows = []
    started = sorted(
        p.parent for p in sweep_dir.rglob("started.json") if not (p.parent / "metrics.json").exists()
    )
    rows += [{"job": job.name, **overrides(job), "status": "unfinished"} for job in started]
    expected = expected_jobs(sweep_dir)
    if expected is not None:
        seen = {frozenset(job_overrides(job)) for job in sweep_dir.glob("*/") if (job / ".hydra").exists()}
        for job in expected:
            if job not in seen:
                pairs = [item.split("=", 1) for item in sorted(job)]
                rows.append({"job": None, **{k.lstrip("+~"): v for k, v in pairs}, "status": "missing"})
    return pd.DataFrame(rows)


def job_overrides(job: Path) -> list[str]:
    path = job / ".hydra" / "overrides.yaml"
    return (yaml.safe_load(path.read_text()) or []) if path.exists() else []


def collect(sweep_dir: str | Path) -> pd.DataFrame:
    """One row per job with a result: its overrides, `status` (completed, diverged, failed, stopped),
    `error`, `steps`, `seconds`, and every final and `best/` metric."""
    rows = []
    for job in job_dirs(sweep_dir):
        result = json.loads((job / "metrics.json").read_text())
        rows.append(
            {
                "job": job.name,
                **overrides(job),
                "status": result["status"],
                **({"error": result["error"]} if result.get("error") else {}),
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
