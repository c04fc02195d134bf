"""Seed 003 (Nonnenmacher et al.), which minimizer: test error against the training set size (Fig. 1, and
Fig. 10 with the cross-entropy), the initialization scale σ (Fig. 2, with the closed-form f_lin and f_int),
the width and optimizer (Fig. 3), the batch split (Fig. 4), each optimizer's distance from GD's minimizer
(Fig. 9), and the σ-shrinking remedy. Fashion-MNIST (Figs. 6–8) is the same sweeps with data=fashion_pairs.

"Test error" is the paper's: L_T = (1/2N_T)‖f(X_T) − Y_T‖² (`test/loss` with the squared loss)."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from overparam.results.collect import job_dirs, overrides  # noqa: E402
from overparam.results.figures import joined, lines, mean_std_line, override_keys, ticks_at  # noqa: E402

OPTIMIZER_NAMES = {"SGD": "SGD", "Adagrad": "AdaGrad", "Adam": "Adam"}


def recipe(config: dict) -> str:
    """GD, or the optimizer with its batch split: 'SGD split 0.1', 'AdaGrad', 'AdaGrad split 0.1', ..."""
    name = OPTIMIZER_NAMES.get(config["optim"]["_target_"].rsplit(".", 1)[-1], config["optim"]["_target_"])
    split = config["data"].get("split")
    full_batch = config["data"].get("batch_size") is None and (split is None or split == 1)
    if name == "SGD" and full_batch and not config["optim"].get("momentum"):
        return "GD"
    return name if full_batch else f"{name} split {split}"


def runs(sweep_dir: Path) -> pd.DataFrame:
    """One row per completed run: its overrides, then recipe, seed, depth, width, sigma, n_train, split,
    shuffle, test_loss, test_error (0-1), train_loss, converged (below the stop loss: the figures leave
    the others out and count them, as the spec says), steps and the run directory."""
    rows = []
    for job in job_dirs(sweep_dir):
        result = json.loads((job / "metrics.json").read_text())
        if result["status"] != "completed":
            continue
        config, metrics = result["config"], result["metrics"]
        data, model = config["data"], config["model"]
        stop = (config.get("callbacks") or {}).get("stop") or {}
        threshold = stop.get("stopping_threshold", float("inf"))
        rows.append(
            {
                **overrides(job),
                "recipe": recipe(config),
                "seed": config["seed"],
                "depth": model.get("depth"),
                "width": model.get("width"),
                "sigma": model.get("sigma"),
                "n_train": data.get("n_train"),
                "split": data.get("split") or 1.0,
                "shuffle": bool(data.get("shuffle", True)),
                "test_loss": metrics["test/loss"],
                "test_error": 1 - metrics["test/avg_acc"],
                "train_loss": metrics.get("train_eval/loss"),
                "converged": metrics.get("train_eval/loss", float("inf")) < threshold,
                "steps": result["steps"],
                "job": job,
            }
        )
    return pd.DataFrame(rows)


def mean_and_std(table: pd.DataFrame, by: list[str], value: str) -> pd.DataFrame:
    return table.groupby(by)[value].agg(["mean", "std", "sem", "count"]).reset_index()


def converged_runs(sweep_dir: Path, fig) -> pd.DataFrame:
    """The converged runs; the figure's caption counts the others."""
    table = runs(sweep_dir)
    left_out = int((~table["converged"]).sum()) if len(table) else 0
    if left_out:
        fig.text(0.01, 0.005, f"{left_out} run(s) did not reach the stop loss and are left out", fontsize=8)
    return table[table["converged"]] if len(table) else table


def deviations(sweep_dir: Path) -> pd.DataFrame:
    """One row per run that is not GD: its overrides, recipe, seed, width, and ‖f(X_T) − f_GD(X_T)‖₂
    against the GD run of the same model, data and seed (the test outputs each run saved in
    snapshots.pt)."""
    table = runs(sweep_dir)
    table = table[[(job / "snapshots.pt").exists() for job in table["job"]]] if len(table) else table
    if table.empty:
        return pd.DataFrame(columns=["recipe", "seed", "width", "deviation"])
    outputs = {
        job: torch.load(job / "snapshots.pt", weights_only=True)["test_outputs"].squeeze(-1)
        for job in table["job"]
    }
    same_problem = ["seed", "depth", "width", "sigma", "n_train"]
    gd = {
        tuple(row[same_problem]): outputs[row["job"]] for _, row in table.iterrows() if row["recipe"] == "GD"
    }
    rows = [
        {**row.to_dict(), "deviation": float((outputs[row["job"]] - gd[key]).norm())}
        for _, row in table.iterrows()
        if row["recipe"] != "GD" and (key := tuple(row[same_problem])) in gd
    ]
    return pd.DataFrame(rows)


def fig9(sweep_dir: Path):
    """‖f_opt(X_T) − f_GD(X_T)‖₂ against the width (mean ± std over inits), one line per recipe and setting
    of every other swept key, one panel per depth, on log axes: SGD's minimizer stays next to GD's, the
    adaptive methods' do not (seed 003 Fig. 9, F9)."""
    table = deviations(sweep_dir)
    depths = sorted(table["depth"].unique()) if len(table) else [None]
    fig, axes = plt.subplots(1, len(depths), figsize=(5.5 * len(depths), 4), squeeze=False)
    for ax, depth in zip(axes[0], depths):
        part = table[table["depth"] == depth] if depth is not None else table
        against(ax, part, ["recipe"], "width", "deviation", str)
        ax.set(xscale="log", yscale="log", xlabel="width m", ylabel="‖f(X_T) − f_GD(X_T)‖₂")
        ax.set_title(f"distance from GD's minimizer (100 test points), L = {depth}", fontsize=10)
        ticks_at(ax, part["width"])
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def settings_of(table: pd.DataFrame) -> set[str]:
    return override_keys(table["job"]) if len(table) else set()


def against(ax, table: pd.DataFrame, by: list[str], x: str, value: str, label) -> None:
    """One line per value of `by` and setting of every other swept key: `value` against `x`, mean ± std
    over repetitions; `label(*values of by)` names the line."""
    for values, setting, part in lines(table, by, along=x, settings=settings_of(table)):
        summary = mean_and_std(part, [x], value)
        values = values if isinstance(values, tuple) else (values,)
        mean_std_line(ax, summary[x], summary, joined(label(*values), setting))


def against_training_set_size(ax, table: pd.DataFrame, value: str) -> None:
    """One line per optimizer and σ: `value` (mean ± std over repetitions) against N."""
    against(ax, table, ["recipe", "sigma"], "n_train", value, lambda name, sigma: f"{name}, σ = {sigma:g}")
    ax.set(xscale="log", xlabel="training set size N")
    ticks_at(ax, table["n_train"])


def fig1(sweep_dir: Path):
    """Test MSE against the training set size N for each optimizer and σ (mean ± std over repetitions):
    σ = 2 above σ = 0.5 at every N, SGD on GD, AdaGrad apart (seed 003 Fig. 1, F1.1–F1.4)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    against_training_set_size(ax, converged_runs(sweep_dir, fig), "test_loss")
    ax.set(yscale="log", ylabel="test MSE ½(f − y)²")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def fig10(sweep_dir: Path):
    """Fig. 1 with the logistic (binary cross-entropy) loss: test cross-entropy and 0-1 error against N
    (mean ± std over repetitions, on linear axes: across data draws the spread exceeds the mean)."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    table = converged_runs(sweep_dir, fig)
    for ax, value, label in zip(axes, ["test_loss", "test_error"], ["test cross-entropy", "test 0-1 error"]):
        against_training_set_size(ax, table, value)
        ax.set(ylabel=label)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def limits(table: pd.DataFrame) -> pd.DataFrame:
    """Test MSE of f_lin,∞ and f_int (from each run's limits.pt) next to the trained network's, each row
    with the run's columns."""
    rows = []
    for _, run in table.iterrows():
        if not (run["job"] / "limits.pt").exists():
            continue
        saved = torch.load(run["job"] / "limits.pt", weights_only=True)
        for name in ("f_lin", "f_int"):
            loss = 0.5 * (saved[f"{name}_test"] - saved["y_test"]).pow(2).mean().item()
            rows.append({**run.to_dict(), "curve": name, "test_loss": loss})
    return pd.DataFrame(rows, columns=[*table.columns, "curve"])


def fig2(sweep_dir: Path):
    """Test MSE against σ for the trained network f_NN and the closed forms f_lin,∞ (GD's lazy limit) and
    f_int (the kernel interpolator), one panel per depth and width (mean ± std over inits): f_int is flat,
    the others grow like σ^{2L} once the init term dominates (seed 003 Fig. 2, F2.1–F2.5)."""
    every = runs(sweep_dir)
    panels = sorted(every[["depth", "width"]].drop_duplicates().itertuples(index=False))
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    table = converged_runs(sweep_dir, fig)
    curves = pd.concat([table.assign(curve="f_NN (trained)"), limits(every)], ignore_index=True)
    for ax, (depth, width) in zip(axes[0], panels):
        part = curves[(curves["depth"] == depth) & (curves["width"] == width)]
        against(ax, part, ["curve"], "sigma", "test_loss", str)
        sigmas = sorted(part["sigma"].unique())
        large = [s for s in sigmas if s >= 1]
        if large:  # the σ^{2L} reference through the largest σ, where the init term dominates
            top = part[part["sigma"] == large[-1]].groupby("curve")["test_loss"].mean().max()
            reference = [top * (s / large[-1]) ** (2 * depth) for s in large]
            ax.plot(large, reference, "k:", label=f"∝ σ^{2 * depth}")
        ax.set(
            xscale="log",
            yscale="log",
            xlabel="initialization scale σ",
            ylabel="test MSE",
            title=f"L = {depth}, m = {width}",
        )
        ticks_at(ax, sigmas)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def fig3(sweep_dir: Path):
    """Test MSE against width for GD, SGD and the adaptive methods, one panel per depth (mean ± std):
    every method reaches zero training loss, the adaptive ones at a different minimizer (Fig. 3)."""
    every = runs(sweep_dir)
    depths = sorted(every["depth"].unique())
    fig, axes = plt.subplots(1, len(depths), figsize=(5.5 * len(depths), 4), squeeze=False)
    table = converged_runs(sweep_dir, fig)
    for ax, depth in zip(axes[0], depths):
        part = table[table["depth"] == depth]
        against(ax, part, ["recipe"], "width", "test_loss", str)
        ax.set(xscale="log", xlabel="width m", ylabel="test MSE", title=f"L = {depth}")
        ticks_at(ax, part["width"])
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def optimizer_of(table: pd.DataFrame) -> pd.Series:
    return table["recipe"].str.split(" ").str[0].replace({"GD": "SGD"})


def fig4(sweep_dir: Path):
    """Test MSE against the batch split (batch = split·N; 1 = full batch): SGD with and without shuffling
    stays at GD's error, AdaGrad's error moves with the split (seed 003 Fig. 4, F4.1–F4.3); one
    test-MSE axis for both, so the size of each spread reads directly."""
    every = runs(sweep_dir)
    optimizers = sorted(optimizer_of(every).unique())
    fig, axes = plt.subplots(
        len(optimizers), 1, figsize=(6, 3.5 * len(optimizers)), squeeze=False, sharey=True
    )
    table = converged_runs(sweep_dir, fig)
    for ax, name in zip(axes[:, 0], optimizers):
        part = table[optimizer_of(table) == name] if len(table) else table
        against(
            ax,
            part,
            ["width", "shuffle"],
            "split",
            "test_loss",
            lambda width, shuffle: f"m = {width}, {'shuffled' if shuffle else 'fixed split'}",
        )
        ax.set(xscale="log", xlabel="split (batch size / N)", ylabel="test MSE", title=name)
        ticks_at(ax, part["split"])
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def sigma_search_rounds(sweep_dir: Path) -> pd.DataFrame:
    """One row per round of every σ-shrinking run: seed, round, σ, validation and test loss, chosen."""
    rows = []
    for job in sorted(path.parent for path in Path(sweep_dir).rglob("metrics.json")):
        result = json.loads((job / "metrics.json").read_text())
        if "sigma_search" not in result or "chosen_round" not in result["sigma_search"]:
            continue
        record = result["sigma_search"]
        for entry in record["rounds"]:
            round_result = json.loads((job / f"round={entry['round']}" / "metrics.json").read_text())
            rows.append(
                {
                    **overrides(job),
                    "seed": result["config"]["seed"],
                    "round": entry["round"],
                    "sigma": entry["sigma"],
                    "val_loss": entry["monitor"],
                    "test_loss": round_result.get("metrics", {}).get("test/loss"),
                    "chosen": entry["round"] == record["chosen_round"],
                    "job": job,
                }
            )
    return pd.DataFrame(rows)


def sigma_search(sweep_dir: Path):
    """The σ-shrinking remedy (seed 003 §1.7): validation and test MSE of every round against σ, one line
    per initialization and setting of every other swept key, the returned round circled."""
    table = sigma_search_rounds(sweep_dir)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, value, label in zip(axes, ["val_loss", "test_loss"], ["validation MSE", "test MSE"]):
        for seed, setting, line in lines(table, ["seed"], along="round", settings=settings_of(table)):
            ax.plot(line["sigma"], line[value], marker="o", label=joined(f"seed {seed}", setting))
            chosen = line[line["chosen"]]
            ax.scatter(chosen["sigma"], chosen[value], s=150, facecolors="none", edgecolors="k")
        ax.set(xscale="log", yscale="log", xlabel="σ (rounds run right to left)", ylabel=label)
        ticks_at(ax, table["sigma"].round(3))
        ax.yaxis.set_tick_params(labelleft=True)  # shared axis: label both panels
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig
