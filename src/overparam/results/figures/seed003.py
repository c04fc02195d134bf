"""Seed 003 (Nonnenmacher et al.): Fig. 9, how far each optimizer's minimizer lies from GD's."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from overparam.results.collect import job_dirs  # noqa: E402

OPTIMIZER_NAMES = {"SGD": "SGD", "Adagrad": "AdaGrad", "Adam": "Adam"}


def recipe(config: dict) -> str:
    """GD, or the optimizer with its batch split: 'SGD split 0.1', 'AdaGrad', 'AdaGrad split 0.1', ..."""
    name = OPTIMIZER_NAMES.get(config["optim"]["_target_"].rsplit(".", 1)[-1], config["optim"]["_target_"])
    split = config["data"].get("split")
    full_batch = config["data"].get("batch_size") is None and (split is None or split == 1)
    if name == "SGD" and full_batch and not config["optim"].get("momentum"):
        return "GD"
    return name if full_batch else f"{name} split {split}"


def deviations(sweep_dir: Path) -> pd.DataFrame:
    """One row per run that is not GD: its recipe, seed, width, and ‖f(X_T) − f_GD(X_T)‖₂ against the GD
    run of the same seed and width (the test outputs each run saved in snapshots.pt)."""
    runs = []
    for job in job_dirs(sweep_dir):
        if not (job / "snapshots.pt").exists():
            continue
        config = json.loads((job / "metrics.json").read_text())["config"]
        outputs = torch.load(job / "snapshots.pt", weights_only=True)["test_outputs"].squeeze(-1)
        runs.append((recipe(config), config["seed"], config["model"]["width"], outputs))
    gd = {(seed, width): outputs for name, seed, width, outputs in runs if name == "GD"}
    rows = [
        {"recipe": name, "seed": seed, "width": width, "deviation": float((outputs - gd[seed, width]).norm())}
        for name, seed, width, outputs in runs
        if name != "GD" and (seed, width) in gd
    ]
    return pd.DataFrame(rows, columns=["recipe", "seed", "width", "deviation"])


def fig9(sweep_dir: Path):
    """Mean over seeds (± standard error) of ‖f_opt(X_T) − f_GD(X_T)‖₂ per recipe and width: SGD's
    minimizer stays next to GD's, the adaptive methods' do not (seed 003 Fig. 9, F9)."""
    table = deviations(sweep_dir)
    summary = table.groupby(["recipe", "width"])["deviation"].agg(["mean", "sem", "count"]).reset_index()
    fig, ax = plt.subplots(figsize=(7, 3.8))
    labels = [f"{r} (m={w})" for r, w in zip(summary["recipe"], summary["width"])]
    ax.bar(labels, summary["mean"], yerr=summary["sem"].fillna(0), capsize=4, color="tab:blue")
    ax.set(ylabel="‖f(X_T) − f_GD(X_T)‖₂", title="distance of the minimizer from GD's (100 test points)")
    ax.tick_params(axis="x", rotation=20)
    fig.tight_layout()
    return fig
