"""One module per paper, one function per figure: `fig(sweep_dir) -> matplotlib Figure`."""

from __future__ import annotations


def mean_std_line(ax, x, summary, label: str) -> None:
    """One line of means with ± std bars (`summary` has `mean` and `std` columns, std NaN for one run)."""
    ax.errorbar(x, summary["mean"], yerr=summary["std"].fillna(0), marker="o", capsize=3, label=label)
