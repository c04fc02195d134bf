"""Seed 001 (reweighting overfits): worst-group accuracy over training on the synthetic study."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import yaml  # noqa: E402

from overparam.results.collect import collect, curves, job_dirs, overrides, summarize  # noqa: E402
from overparam.results.figures import (  # noqa: E402
    band_line,
    by_setting,
    joined,
    merged_keys,
    override_keys,
    setting_label,
    swept_keys,
)
from overparam.results.figures.seed000 import LABELS  # noqa: E402


def synthetic(sweep_dir: Path):
    """Validation worst-group accuracy and the training loss against the optimizer step: one line per
    setting (every swept key but the seed), the mean over seeds with a band from the lowest to the
    highest."""
    logged = curves(sweep_dir)
    keys = swept_keys(logged)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    panels = (("val/worst_group_acc", "worst-group accuracy (validation)"), ("train/loss", "training loss"))
    for label, part in by_setting(logged, keys, LABELS):
        for ax, (metric, _) in zip(axes, panels):
            band_line(ax, part.dropna(subset=[metric]).groupby("step")[metric], label)
    for ax, (_, name) in zip(axes, panels):
        ax.set(xscale="log", xlabel="optimizer step", ylabel=name, title=f"{name}, mean and range over seeds")
        ax.legend(fontsize=8)
    axes[1].set_yscale("log")
    fig.tight_layout()
    return fig


def epoch_metrics(job: Path) -> pd.DataFrame:
    """Per-epoch training accuracy (eval mode) and worst-group test accuracy of one run."""
    logged = pd.read_csv(job / "metrics.csv")
    columns = ["train_eval/avg_acc", "test/worst_group_acc"]
    return logged.dropna(subset=columns).groupby("epoch")[columns].last()


def table1_frame(sweep_dir: Path, last: int = 10, early: tuple[int, int] = (11, 20)) -> pd.DataFrame:
    """Seed 001 Table 1: average training accuracy / worst-group test accuracy, mean ± 95% t-CI over seeds.

    Each cell averages a run's last `last` epochs (and, at weight decay 0, epochs `early` (1-indexed) as
    the early-stopping row) before the seeds are combined.
    """
    rows = []
    for job in job_dirs(sweep_dir):
        config = yaml.safe_load((job / ".hydra" / "config.yaml").read_text())
        per_epoch = epoch_metrics(job)
        method = overrides(job).get("weighting", config["weighting"]["_target_"].rsplit(".", 1)[-1])
        decay = float(config["optim"]["weight_decay"])
        windows = {f"last {last} epochs": per_epoch.iloc[-last:]}
        if decay == 0:
            windows[f"epochs {early[0]}–{early[1]}"] = per_epoch.iloc[early[0] - 1 : early[1]]
        for window, part in windows.items():
            rows.append(
                {
                    **overrides(job),
                    "method": LABELS.get(method, method),
                    "weight_decay": decay,
                    "window": window,
                    "seed": config["seed"],
                    "train_acc": part["train_eval/avg_acc"].mean(),
                    "worst_group_test_acc": part["test/worst_group_acc"].mean(),
                }
            )
    table = pd.DataFrame(rows)
    by = ["method", "weight_decay", "window"]
    by += merged_keys(table, by, settings=override_keys(job_dirs(sweep_dir)))
    return summarize(table, by, ["train_acc", "worst_group_test_acc"])


def table1(sweep_dir: Path):
    """Table 1 as a figure: 'train acc / worst-group test acc' (%, mean ± 95% CI) per method and decay
    (and setting of every other swept key)."""
    summary = table1_frame(sweep_dir)

    def cell(index, metric: str) -> str:
        return (
            f"{100 * summary.loc[index, ('mean', metric)]:.1f}±{100 * summary.loc[index, ('ci', metric)]:.1f}"
        )

    cells = [
        [f"{cell(index, 'train_acc')} / {cell(index, 'worst_group_test_acc')}"] for index in summary.index
    ]
    labels = [
        joined(f"{method}, wd {decay:g}, {window}", setting_label(summary.index.names[3:], others))
        for method, decay, window, *others in summary.index
    ]
    fig, ax = plt.subplots(figsize=(8, 0.4 * len(cells) + 1))
    ax.axis("off")
    ax.table(
        cellText=cells, rowLabels=labels, colLabels=["train acc / worst-group test acc (%)"], loc="center"
    )
    fig.tight_layout()
    return fig


def synthetic_table_frame(sweep_dir: Path) -> pd.DataFrame:
    """Per method and μ (and setting of every other swept key): final training loss and worst-group test
    accuracy, and the early-stopped one."""
    table = collect(sweep_dir)
    if "best/test/worst_group_acc" not in table:
        raise ValueError(
            f"{sweep_dir} holds no best-checkpoint metrics: the early-stopped column needs a checkpoint"
        )
    table["run.l2_to_init"] = table["run.l2_to_init"].astype(float) if "run.l2_to_init" in table else 0.0
    metrics = ["train/loss", "test/worst_group_acc", "best/test/worst_group_acc"]
    by = ["weighting", "run.l2_to_init"]
    return summarize(table, by + merged_keys(table, by), metrics)


def synthetic_table(sweep_dir: Path):
    """The early-stopping vs weight-decay table of the synthetic study, as a figure."""
    summary = synthetic_table_frame(sweep_dir)

    def cell(index, metric: str, scale: float = 100) -> str:
        mean, ci = summary.loc[index, ("mean", metric)], summary.loc[index, ("ci", metric)]
        return f"{scale * mean:.1f}±{scale * ci:.1f}" if scale != 1 else f"{mean:.1e}"

    cells = [
        [cell(i, "train/loss", 1), cell(i, "test/worst_group_acc"), cell(i, "best/test/worst_group_acc")]
        for i in summary.index
    ]
    labels = [
        joined(f"{LABELS.get(w, w)}, μ = {mu:g}", setting_label(summary.index.names[2:], others))
        for w, mu, *others in summary.index
    ]
    fig, ax = plt.subplots(figsize=(9, 0.4 * len(cells) + 1))
    ax.axis("off")
    ax.table(
        cellText=cells,
        rowLabels=labels,
        loc="center",
        colLabels=["final train loss", "final WG test acc (%)", "early-stopped WG test acc (%)"],
    )
    fig.tight_layout()
    return fig


def wide(sweep_dir: Path):
    """The wide-network study (§7.2): sup_x |f_GRW − f_ERM| on the test points against the width (mean ±
    std over inits, fitted log-log slopes), and validation worst-group accuracy against the step at the
    narrowest and the widest width (mean and range over inits)."""
    from overparam.results.figures.seed000 import width_panel

    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    width_panel(axes[0], sweep_dir)
    logged = curves(sweep_dir)
    widths = logged["model.width"].astype(int)
    ends = logged[widths.isin([widths.min(), widths.max()])]
    for label, part in by_setting(ends, ["weighting", "model.width"], LABELS):
        band_line(
            axes[1], part.dropna(subset=["val/worst_group_acc"]).groupby("step")["val/worst_group_acc"], label
        )
    axes[1].set(
        xscale="log",
        xlabel="optimizer step",
        ylabel="worst-group accuracy (validation)",
        title="worst-group accuracy, mean and range over inits",
    )
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    return fig
