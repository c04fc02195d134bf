"""One module per paper, one function per figure: `fig(sweep_dir) -> matplotlib Figure`."""

from __future__ import annotations


def mean_std_line(ax, x, summary, label: str) -> None:
    """One line of means with ± std bars (`summary` has `mean` and `std` columns, std NaN for one run)."""
    ax.errorbar(x, summary["mean"], yerr=summary["std"].fillna(0), marker="o", capsize=3, label=label)


def ticks_at(ax, values) -> None:
    """Label a log x-axis at the swept values only (σ, widths, N, splits)."""
    values = sorted(set(values))
    ax.set_xticks(values, [f"{v:.3g}" for v in values])
    ax.minorticks_off()


# Columns of `collect`/`curves` that are not settings a sweep varies.
NOT_SETTINGS = {"job", "seed", "step", "epoch", "status", "steps", "seconds", "error"}


def swept_keys(frame) -> list[str]:
    """The overrides that take more than one value across a sweep's jobs, the seed left out (a figure
    draws one line per setting of these and spreads the seeds around it)."""
    return [
        c
        for c in frame.columns
        if "/" not in c and c not in NOT_SETTINGS and frame[c].nunique(dropna=False) > 1
    ]


def by_setting(frame, keys: list[str], labels: dict | None = None):
    """(label, part) for every setting of `keys` ("weighting=gdro, optim.weight_decay=0.001")."""
    if not keys:
        yield "all runs", frame
        return
    for values, part in frame.groupby(keys):
        values = values if isinstance(values, tuple) else (values,)
        shown = [f"{k}={(labels or {}).get(v, v)}" for k, v in zip(keys, values)]
        yield ", ".join(shown), part


def band_line(ax, per_step, label: str) -> None:
    """The mean over seeds at every step, with a band from the lowest to the highest seed."""
    stats = per_step.agg(["mean", "min", "max"])
    stats = stats[stats.index > 0]
    (line,) = ax.plot(stats.index, stats["mean"], label=label)
    ax.fill_between(stats.index, stats["min"], stats["max"], color=line.get_color(), alpha=0.2, linewidth=0)
