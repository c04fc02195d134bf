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
