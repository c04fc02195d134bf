"""Seed 001 (reweighting overfits): worst-group accuracy over training on the synthetic study."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from overparam.results.collect import curves  # noqa: E402
from overparam.results.figures.seed000 import LABELS  # noqa: E402


def synthetic(sweep_dir: Path):
    """Validation worst-group accuracy against the GD step, mean over seeds, one line per method."""
    logged = curves(sweep_dir).dropna(subset=["val/worst_group_acc"])
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for weighting, part in logged.groupby("weighting"):
        mean = part.groupby("step")[["val/worst_group_acc", "train/loss"]].mean()
        mean = mean[mean.index > 0]
        axes[0].plot(mean.index, mean["val/worst_group_acc"], label=LABELS.get(weighting, weighting))
        axes[1].plot(mean.index, mean["train/loss"], label=LABELS.get(weighting, weighting))
    axes[0].set(
        xscale="log",
        xlabel="GD step",
        ylabel="worst-group accuracy (val)",
        title="Reweighting helps early, then falls to ERM",
    )
    axes[1].set(xscale="log", yscale="log", xlabel="GD step", title="training loss R̂")
    for ax in axes:
        ax.legend()
    fig.tight_layout()
    return fig
