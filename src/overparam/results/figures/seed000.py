"""Seed 000 (Zhai et al., GRW does not improve over ERM): Figs. 1–3 from their sweeps."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from overparam.results.collect import curves, snapshots  # noqa: E402
from overparam.results.figures import (  # noqa: E402
    band_line,
    by_setting,
    joined,
    lines,
    mean_std_line,
    swept_keys,
    ticks_at,
)

LABELS = {
    "erm": "ERM",
    "iw": "IW",
    "gdro": "Group DRO",
    "gdro_nu1": "Group DRO",
    "cvar": "CVaR",
    "chi2": "χ²-DRO",
}


def erm_of(run: dict, runs) -> dict | None:
    """The ERM run with the same overrides as `run` but the weighting (same seed, width, loss, ...)."""
    setting = {k: v for k, v in run["overrides"].items() if k != "weighting"}
    return next(
        (
            other
            for other in runs
            if other["overrides"].get("weighting") == "erm"
            and {k: v for k, v in other["overrides"].items() if k != "weighting"} == setting
        ),
        None,
    )


def weight_gaps(sweep_dir: Path, normalize: bool = False) -> pd.DataFrame:
    """‖θ_m(t) − θ_ERM(t)‖ (or between θ/‖θ‖ if `normalize`) for every run, against the ERM run of its
    setting, from the snapshots; one row per run and step with the run's overrides."""
    runs = list(snapshots(sweep_dir).values())
    rows = []
    for run in runs:
        erm = erm_of(run, runs)
        if erm is None:
            continue
        theta, reference = run["theta"], erm["theta"]
        if normalize:
            theta = theta / theta.norm(dim=1, keepdim=True)
            reference = reference / reference.norm(dim=1, keepdim=True)
        gap = (theta - reference).norm(dim=1)
        rows += [
            {**run["overrides"], "step": step, "gap": value}
            for step, value in zip(run["step"].tolist(), gap.tolist())
        ]
    return pd.DataFrame(rows)


def plot_by_method(ax, frame: pd.DataFrame, y: str, skip_erm: bool = False) -> None:
    """One line per method and per setting of every other swept key: the mean over seeds at every step,
    with their range as a band."""
    frame = frame.dropna(subset=[y])
    keys = ["weighting", *[key for key in swept_keys(frame.drop(columns=[y])) if key != "weighting"]]
    for k, (label, part) in enumerate(by_setting(frame, keys, LABELS)):
        if skip_erm and part["weighting"].iloc[0] == "erm":
            continue  # its colour stays ERM's, so a method has one colour in every panel
        band_line(ax, part.groupby("step")[y], label.removeprefix("weighting="), color=f"C{k % 10}")
    ax.set_xscale("log")
    ax.set_xlabel("GD step")


def plot_group_weights(ax, logged: pd.DataFrame) -> None:
    """Group DRO's group weights g against the step, one line per group and setting."""
    columns = [c for c in logged.columns if c.startswith("weights/group/")]
    gdro = logged[logged["weighting"].str.startswith("gdro")].dropna(subset=columns[:1])
    for _, setting, part in lines(gdro, ["weighting"]):
        for column in columns:
            band_line(ax, part.groupby("step")[column], joined(column.rsplit("/", 1)[-1], setting))
    ax.set(xscale="log", xlabel="GD step (full batch)")


def fig1(sweep_dir: Path):
    """(a) training loss, (b) ‖θ_m − θ_ERM‖, (c) ‖θ‖, (d) Group DRO's group weights."""
    logged, gaps = curves(sweep_dir), weight_gaps(sweep_dir)
    fig, axes = plt.subplots(1, 4, figsize=(17, 3.6))
    plot_by_method(axes[0], logged, "train/objective")
    axes[0].set(yscale="log", title="(a) training objective")
    plot_by_method(axes[1], gaps, "gap", skip_erm=True)
    axes[1].set(yscale="log", title="(b) ‖θ − θ_ERM‖")
    plot_by_method(axes[2], logged, "param/norm")
    axes[2].set(title="(c) ‖θ‖")
    plot_group_weights(axes[3], logged)
    axes[3].set(title="(d) Group DRO group weights")
    for ax in axes:
        ax.legend(fontsize=8)
    fig.suptitle("Seed 000 Fig. 1: ERM, IW and Group DRO from the same θ0, squared loss, full-batch GD")
    fig.tight_layout()
    return fig


def fig2(sweep_dir: Path):
    """For μ = 0.1 and μ = 10: training loss and ‖θ_m − θ_ERM‖ under the penalty μ/2‖θ − θ0‖²."""
    logged, gaps = curves(sweep_dir), weight_gaps(sweep_dir)
    mus = sorted(logged["run.l2_to_init"].unique(), key=float)
    fig, axes = plt.subplots(1, 2 * len(mus), figsize=(17, 3.6))
    for k, mu in enumerate(mus):
        plot_by_method(axes[2 * k], logged[logged["run.l2_to_init"] == mu], "train/loss")
        axes[2 * k].set(yscale="log", title=f"μ = {mu}: training loss R̂")
        plot_by_method(axes[2 * k + 1], gaps[gaps["run.l2_to_init"] == mu], "gap", skip_erm=True)
        axes[2 * k + 1].set(yscale="log", title=f"μ = {mu}: ‖θ − θ_ERM‖")
    for ax in axes:
        ax.legend(fontsize=8)
    fig.suptitle("Seed 000 Fig. 2: the methods under the penalty μ/2‖θ − θ0‖², two panels per μ")
    fig.tight_layout()
    return fig


def fig3(sweep_dir: Path):
    """Rows: logistic and polynomially-tailed loss; columns: loss, ‖θ‖, ‖θ̂_m − θ̂_ERM‖ with θ̂ = θ/‖θ‖, and
    Group DRO's group weights (when the sweep has Group DRO)."""
    logged, gaps = curves(sweep_dir), weight_gaps(sweep_dir, normalize=True)
    losses = sorted(logged["loss"].unique())
    with_gdro = logged["weighting"].str.startswith("gdro").any()
    columns = 4 if with_gdro else 3
    fig, axes = plt.subplots(len(losses), columns, figsize=(4.7 * columns, 3.4 * len(losses)), squeeze=False)
    for row, loss in zip(axes, losses):
        if with_gdro:
            plot_group_weights(row[3], logged[logged["loss"] == loss])
            row[3].set(title=f"{loss}: Group DRO group weights")
        plot_by_method(row[0], logged[logged["loss"] == loss], "train/loss")
        row[0].set(yscale="log", title=f"{loss}: training loss")
        plot_by_method(row[1], logged[logged["loss"] == loss], "param/norm")
        row[1].set(title=f"{loss}: ‖θ‖")
        plot_by_method(row[2], gaps[gaps["loss"] == loss], "gap", skip_erm=True)
        row[2].set(title=f"{loss}: ‖θ/‖θ‖ − θ_ERM/‖θ_ERM‖‖")
        for ax in row:
            ax.legend(fontsize=8)
    fig.suptitle(
        "Seed 000 Fig. 3: the methods under the logistic and a polynomially-tailed loss, one row each"
    )
    fig.tight_layout()
    return fig


def prediction_gaps(sweep_dir: Path) -> pd.DataFrame:
    """sup over test points of |f_m − f_ERM| at the end of training for every run (against the ERM run
    of its setting), with its overrides and its width as an integer."""
    runs = list(snapshots(sweep_dir).values())
    rows = []
    for run in runs:
        erm = erm_of(run, runs)
        if erm is not None:
            gap = float((run["test_outputs"] - erm["test_outputs"]).abs().max())
            rows.append({**run["overrides"], "width": int(run["overrides"]["model.width"]), "gap": gap})
    return pd.DataFrame(rows)


def fitted_slope(frame: pd.DataFrame) -> float:
    """The least-squares slope of log gap against log width."""
    import numpy as np

    return float(np.polyfit(np.log(frame["width"]), np.log(frame["gap"]), 1)[0])


def width(sweep_dir: Path):
    """sup_x |f_GRW(x) − f_ERM(x)| at convergence against the width, log-log, with fitted slopes: one line
    per method and setting of every other swept key, the mean over seeds with ± std bars."""
    fig, ax = plt.subplots(figsize=(5.5, 4))
    width_panel(ax, sweep_dir)
    fig.tight_layout()
    return fig


def width_panel(ax, sweep_dir: Path) -> None:
    gaps = prediction_gaps(sweep_dir)
    others = gaps[gaps["weighting"] != "erm"]
    settings = set(others.columns) - {"gap"}
    for weighting, setting, part in lines(others, ["weighting"], along="width", settings=settings):
        summary = part.groupby("width")["gap"].agg(["mean", "std"]).reset_index()
        slope = fitted_slope(summary.rename(columns={"mean": "gap"}))
        label = joined(LABELS.get(weighting, weighting), setting) + f" (slope {slope:.2f})"
        mean_std_line(ax, summary["width"], summary, label)
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="width d",
        ylabel="sup_x |f − f_ERM| on test points",
        title="gap between each method and ERM against the width",
    )
    ticks_at(ax, gaps["width"])
    ax.legend(fontsize=8)
