"""python -m overparam.results <sweep dir> [--out DIR]: tables and the sweep's figures."""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path

import pandas as pd
import yaml

from overparam.results.collect import collect, curves, job_dirs, summarize, unfinished_jobs
from overparam.results.selection import regression_sweep, selections, side_by_side

# Columns of `collect` that describe a job rather than a setting it shares with other seeds.
NOT_SETTINGS = {"job", "seed", "status", "steps", "seconds", "epoch", "step"}


def declared_figures(sweep_dir: Path) -> list[str]:
    """The figure functions the sweep's config names (`figure`: one dotted path or a list of them)."""
    for job in job_dirs(sweep_dir):
        config = yaml.safe_load((job / ".hydra" / "config.yaml").read_text())
        if config.get("figure"):
            figure = config["figure"]
            return [figure] if isinstance(figure, str) else list(figure)
    return []


def summary_over_seeds(table):
    """One row per setting (the overrides but the seed) and metric: mean, std, n, 95% CI half-width."""
    settings = [c for c in table.columns if "/" not in c and c not in NOT_SETTINGS]
    metrics = [c for c in table.columns if "/" in c and pd.api.types.is_numeric_dtype(table[c])]
    if not metrics:
        return None
    if not settings:
        table, settings = table.assign(setting="all"), ["setting"]
    wide = summarize(table, settings, metrics)  # columns (statistic, metric)
    return wide.stack(level=1, future_stack=True).rename_axis([*settings, "metric"]).reset_index()


def print_accounting(table: pd.DataFrame) -> None:
    """How many jobs ended how, and each job that did not complete with its reason."""
    counts = table["status"].value_counts()
    print(f"{len(table)} jobs: " + ", ".join(f"{n} {status}" for status, n in counts.items()))
    for _, row in table[table["status"] != "completed"].iterrows():
        name = row["job"] if isinstance(row["job"], str) else "(never started)"
        error = row.get("error")
        print(f"  {row['status']}: {name}" + (f": {error}" if isinstance(error, str) else ""))


def print_selection(sweep_dir: Path) -> None:
    """Write selection.csv (each job's pick by every model-selection rule) and print the rules side by
    side; say so when the test split was not evaluated during training."""
    if regression_sweep(sweep_dir):
        print("model selection: none for regression targets (its rules rank validation accuracies)")
        return
    table = selections(sweep_dir)
    if table.empty:
        return
    table.to_csv(sweep_dir / "selection.csv", index=False)
    if (table["test_evaluations"] <= 1).all():
        # Tested once, at the end: a rule's pick has test metrics only when it is the last step, and the
        # oracle has nothing to choose from.
        print(
            "model selection: none, the test split was evaluated only after training "
            "(run.eval_splits=[val,test] evaluates it at every validation)"
        )
    else:
        print("model selection (test metrics at the step each rule picks, mean over jobs):")
        print(side_by_side(table).to_string(float_format="{:.4f}".format))
    print(f"wrote selection.csv in {sweep_dir}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument(
        "--out", type=Path, default=None, help="where to write the figure (default: the sweep)"
    )
    args = parser.parse_args()
    if not job_dirs(args.sweep_dir):
        parser.error(f"{args.sweep_dir} holds no run directory with a metrics.json")
    table, logged = collect(args.sweep_dir), curves(args.sweep_dir)
    accounted = pd.concat([table, unfinished_jobs(args.sweep_dir)], ignore_index=True)
    print_accounting(accounted)
    for name, frame in (("results", accounted), ("curves", logged)):
        frame.to_csv(args.sweep_dir / f"{name}.csv", index=False)
        frame.to_parquet(args.sweep_dir / f"{name}.parquet", index=False)
    summary = summary_over_seeds(table[table["status"] == "completed"])
    if summary is not None:
        summary.to_csv(args.sweep_dir / "summary.csv", index=False)
    print(f"wrote results, curves (.csv, .parquet) and summary.csv in {args.sweep_dir}")
    print_selection(args.sweep_dir)
    for figure in declared_figures(args.sweep_dir):
        module, name = figure.rsplit(".", 1)
        try:
            fig = getattr(importlib.import_module(module), name)(args.sweep_dir)
        except ValueError as error:  # a sweep that cannot make this figure says why in one sentence
            parser.exit(1, f"cannot draw {figure}: {error}\n")
        out = (args.out or args.sweep_dir) / f"{module.rsplit('.', 1)[-1]}_{name}.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=130, bbox_inches="tight")
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
