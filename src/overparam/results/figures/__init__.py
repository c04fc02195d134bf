"""One module per paper, one function per figure: `fig(sweep_dir) -> matplotlib Figure`."""

from __future__ import annotations


def mean_std_line(ax, x, summary, label: str) -> None:
    """One line of means with ± std bars (`summary` has `mean` and `std` columns, std NaN for one run)."""
    ax.errorbar(x, summary["mean"], yerr=summary["std"].fillna(0), marker="o", capsize=3, label=label)


def ticks_at(ax, values) -> None:
    """Label a log x-axis at the swept values only (σ, widths, N, splits)."""
    values = sorted(set(values))
    ax.set_xticks(values, [str(int(v)) if float(v).is_integer() else f"{v:.3g}" for v in values])
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


def band_line(ax, per_step, label: str, color: str | None = None) -> None:
    """The mean over seeds at every step, with a band from the lowest to the highest seed."""
    stats = per_step.agg(["mean", "min", "max"])
    stats = stats[stats.index > 0]
    (line,) = ax.plot(stats.index, stats["mean"], label=label, color=color)
    ax.fill_between(stats.index, stats["min"], stats["max"], color=line.get_color(), alpha=0.2, linewidth=0)


def merged_keys(table, by: list[str], settings=None) -> list[str]:
    """The swept settings (the seed aside) that take more than one value inside a group of `by`: a figure
    that split its lines by `by` alone would merge them. `settings` names the candidate columns where
    the table holds more than overrides and metrics (a figure's own derived columns)."""
    candidates = [k for k in swept_keys(table) if settings is None or k in settings]
    if not by:
        return candidates
    inside = table.groupby(by, dropna=False)
    return [k for k in candidates if k not in by and (inside[k].nunique(dropna=False) > 1).any()]


def lines(table, by: list[str], along: str | None = None, settings=None):
    """Group `table` into a figure's lines: by `by` and by every other swept setting that varies inside
    those groups at one point `along` the x-axis (so the override behind the x column is not split
    again). Yields (the value of `by`, a scalar when `by` has one key; a label of the other settings, ""
    when there are none; the rows, every seed and x of that setting)."""
    extra = [k for k in merged_keys(table, [*by, *([along] if along else [])], settings) if k != along]
    keys = [*by, *extra]
    if not keys:
        yield (), "", table
        return
    for values, part in table.groupby(keys, dropna=False, sort=True):
        values = values if isinstance(values, tuple) else (values,)
        suffix = setting_label(extra, values[len(by) :])
        yield (values[0] if len(by) == 1 else values[: len(by)]), suffix, part


def setting_label(keys, values) -> str:
    """ "key=value, key=value" for the settings of one line or row."""
    return ", ".join(f"{k}={v}" for k, v in zip(keys, values))


def joined(*parts: str) -> str:
    """A line's label from its parts, the empty ones left out."""
    return ", ".join(part for part in parts if part)


def override_keys(jobs) -> set[str]:
    """Every key any of these run directories overrides: the candidate settings of a figure whose own
    table also holds columns derived from each run's config."""
    from overparam.results.collect import overrides

    return {key for job in jobs for key in overrides(job)}
