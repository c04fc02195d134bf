"""Seed 004 (Caron et al.), asymmetrical node scaling: training curves and feature learning (Fig. 1, the
regression, MNIST and CIFAR panels), feature learning against width, and pruning and transfer."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from overparam.results.collect import job_dirs, overrides  # noqa: E402
from overparam.results.figures import joined, lines, mean_std_line, override_keys, ticks_at  # noqa: E402
from overparam.theory.asymmetric import departure, node_scales  # noqa: E402


def scaling_label(model: dict) -> str:
    return "γ = 1 (iid)" if model["gamma"] == 1 else f"γ = {model['gamma']:g}, α = {model['alpha']:g}"


def runs(sweep_dir: Path) -> pd.DataFrame:
    """One row per completed run: its overrides, scaling label, γ, α, width, seed, final metrics and the
    run directory."""
    rows = []
    for job in job_dirs(sweep_dir):
        result = json.loads((job / "metrics.json").read_text())
        if result["status"] != "completed":
            continue
        model = result["config"]["model"]
        rows.append(
            {
                **overrides(job),
                "scaling": scaling_label(model),
                "gamma": model["gamma"],
                "alpha": model["alpha"],
                "width": model["width"],
                "seed": result["config"]["seed"],
                **result["metrics"],
                "job": job,
            }
        )
    return pd.DataFrame(rows).sort_values(["gamma", "alpha"], ascending=[False, False], ignore_index=True)


def weight_change_of_top_node(job: Path) -> pd.DataFrame:
    """Δ_j*(t) = ‖w_t,j* − w_0,j*‖ for the node j* that moved most by the end (chosen per run)."""
    saved = torch.load(job / "node_scaling.pt", weights_only=True)
    changes = saved["weight_change"]
    top = int(changes[-1].argmax())
    return pd.DataFrame({"step": saved["step"].numpy(), "value": changes[:, top].numpy()})


def band(ax, frame: pd.DataFrame, label: str, first_step: int = 1) -> None:
    """Mean ± std over runs of `value` against `step`, from `first_step` (training curves skip step 0)."""
    summary = frame.groupby("step")["value"].agg(["mean", "std"]).reset_index()
    summary = summary[summary["step"] >= first_step]
    ax.plot(summary["step"], summary["mean"], label=label)
    ax.fill_between(
        summary["step"],
        summary["mean"] - summary["std"].fillna(0),
        summary["mean"] + summary["std"].fillna(0),
        alpha=0.2,
    )


def curves_of(job: Path, column: str) -> pd.DataFrame:
    logged = pd.read_csv(job / "metrics.csv").dropna(subset=[column]).groupby("step", as_index=False).last()
    return logged[["step", column]].rename(columns={column: "value"})


def training(sweep_dir: Path):
    """Training risk, test risk, Δ_j*(t), √‖Θ̂_t − Θ̂_0‖₂ and λ_min(Θ̂_t) against the GD step, one line per node
    scaling (mean ± std over inits): every scaling trains, γ < 1 moves its top nodes far more (Fig. 1/2)."""
    table = runs(sweep_dir)
    settings = override_keys(table["job"])
    panels = [
        ("train_eval/loss", "training risk (MSE)", "log"),
        ("test/loss", "test risk", "linear"),
        ("weight_change", "max_j ‖w_t,j − w_0,j‖ (node j* of the last step)", "linear"),
        ("probe/ntg_change_sqrt", "√‖Θ̂_t − Θ̂_0‖₂", "linear"),
        ("probe/eig_min", "λ_min(Θ̂_t)", "log"),
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6))
    for ax, (column, label, scale) in zip(axes, panels):
        for scaling, setting, part in lines(table, ["scaling"], settings=settings):
            if column == "weight_change":
                frame = pd.concat([weight_change_of_top_node(job) for job in part["job"]])
            else:
                frame = pd.concat([curves_of(job, column) for job in part["job"]])
            band(ax, frame, joined(scaling, setting))
        ax.set(xlabel="optimizer step", title=label, yscale=scale)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


fig1 = fig2 = fig3 = training  # the same panels for the simulated set, the regression tables and MNIST


def width(sweep_dir: Path):
    """Feature learning against width at a fixed number of steps: max_j ‖Δw_j‖ and ‖Θ̂_t − Θ̂_0‖₂ fall like
    m^{-1/2} for γ = 1 (dotted reference) and stay put for γ < 1 (spec T8)."""
    table = runs(sweep_dir)
    settings = override_keys(table["job"])
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, column, label in zip(
        axes, ["probe/max_weight_change", "probe/ntg_change"], ["max_j ‖w_T,j − w_0,j‖", "‖Θ̂_T − Θ̂_0‖₂"]
    ):
        for scaling, setting, part in lines(table, ["scaling"], along="width", settings=settings):
            summary = part.groupby("width")[column].agg(["mean", "std"]).reset_index()
            mean_std_line(ax, summary["width"], summary, joined(scaling, setting))
        widths = np.array(sorted(table["width"].unique()), dtype=float)
        first = table[(table["gamma"] == 1) & (table["width"] == widths[0])][column].mean()
        if np.isfinite(first):
            ax.plot(widths, first * (widths / widths[0]) ** -0.5, "k:", label="∝ m^(−1/2)")
        ax.set(xscale="log", yscale="log", xlabel="width m", title=label)
        ticks_at(ax, widths)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def grid(sweep_dir: Path):
    """The (γ, α) grid: final max_j ‖Δw_j‖, ‖Θ̂_T − Θ̂_0‖₂, λ_min(Θ̂_T) and training risk against the departure
    (1 − γ)² Σ λ̃² of the node scales from 1/m (γ = 1 sits at 0, drawn at the axis' left end); one colour
    per γ, mean ± std over inits. The spec expects each to be monotone in the departure."""
    table = runs(sweep_dir)
    table["departure"] = [
        departure(node_scales(int(w), float(g), float(a)), float(g))
        for w, g, a in zip(table["width"], table["gamma"], table["alpha"])
    ]
    floor = (
        table.loc[table["departure"] > 0, "departure"].min() / 3 if (table["departure"] > 0).any() else 1e-3
    )
    table["departure"] = table["departure"].clip(lower=floor)
    panels = [
        ("probe/max_weight_change", "max_j ‖w_T,j − w_0,j‖"),
        ("probe/ntg_change", "‖Θ̂_T − Θ̂_0‖₂"),
        ("probe/eig_min", "λ_min(Θ̂_T)"),
        ("train_eval/loss", "final training risk"),
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6))
    # α moves a point along its γ's line (γ = 1's α all sit at the left end), so it draws no line of its own.
    settings = override_keys(table["job"]) - {"model.alpha"}
    for ax, (column, label) in zip(axes, panels):
        for gamma, setting, part in lines(table, ["gamma"], along="departure", settings=settings):
            summary = part.groupby("departure")[column].agg(["mean", "std"]).reset_index()
            mean_std_line(ax, summary["departure"], summary, joined(f"γ = {gamma:g}", setting))
        ax.set(xscale="log", yscale="log", xlabel="(1 − γ)² Σ λ̃²", title=label)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def protocol_table(sweep_dir: Path, name: str) -> pd.DataFrame:
    """Every run's pruning.csv or transfer.csv with its overrides, scaling and seed."""
    table = runs(sweep_dir)
    settings = [*override_keys(table["job"]), "scaling", "gamma", "seed"]
    frames = [
        pd.read_csv(run["job"] / f"{name}.csv").assign(**run[settings].to_dict())
        for _, run in table.iterrows()
        if (run["job"] / f"{name}.csv").exists()
    ]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def protocols(sweep_dir: Path):
    """Pruning (risk, or accuracy for classes, against the number of nodes removed, least important
    first) and transfer (external test risk of a small net fed the top-k features), one row per importance
    ranking: the smaller γ, the flatter the pruning curve and the better the few top features (Figs. 2–4)."""
    pruning, transfer = protocol_table(sweep_dir, "pruning"), protocol_table(sweep_dir, "transfer")
    settings = override_keys(job_dirs(sweep_dir))
    importances = list(dict.fromkeys(pruning["importance"]))
    columns = 3 if not transfer.empty else 2
    fig, axes = plt.subplots(
        len(importances), columns, figsize=(4.6 * columns, 3.6 * len(importances)), squeeze=False
    )
    metric = "accuracy" if "accuracy" in pruning and pruning["accuracy"].notna().any() else "risk"
    for row, kind in zip(axes, importances):
        for ax, split in zip(row, ["train", "test"]):
            part = pruning[(pruning["importance"] == kind) & (pruning["split"] == split)]
            for scaling, setting, line in lines(part, ["scaling"], along="pruned", settings=settings):
                line = line.rename(columns={"pruned": "step", metric: "value"})
                band(ax, line, joined(scaling, setting), first_step=0)
            ax.set(xlabel="nodes pruned", title=f"{split} {metric} after pruning ({kind})")
        if not transfer.empty:
            part = transfer[transfer["importance"] == kind]
            diverged = part["diverged"].astype(bool) if "diverged" in part else pd.Series(False, part.index)
            part = part[~diverged]  # a diverged head says nothing about the features; counted in the title
            value = "test_accuracy" if "test_accuracy" in part else "test_risk"
            for scaling, setting, line in lines(part, ["scaling"], along="k", settings=settings):
                band(row[2], line.rename(columns={"k": "step", value: "value"}), joined(scaling, setting))
            title = f"transfer {value.replace('_', ' ')} ({kind})"
            row[2].set(
                xlabel="top-k features",
                title=title + (f", {diverged.sum()} diverged" if diverged.any() else ""),
            )
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    return fig


# Names for the gallery files (seed004_<name>.png): pruning on the simulated set, the protocols of Figs. 2–4.
pruning = fig2_protocols = fig3_protocols = fig4 = protocols
