"""The table printed at the end of a run: average, worst-group and per-group accuracy on each split (the
mean and per-group loss for regression data)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table


def print_report(
    metrics: dict[str, float], group_names: tuple[str, ...], best: dict[str, float], regression: bool = False
) -> None:
    splits = [s for s in ("train", "val", "test") if f"{s}/avg_acc" in metrics]
    table = Table(title="loss (final model)" if regression else "accuracy (final model)")
    table.add_column("")
    for split in splits:
        table.add_column(split, justify="right")
    if regression:
        rows = [("mean", "loss")]
        if len(group_names) > 1:
            rows += [(name, f"group_loss/{name}") for name in group_names]
        formatter = fmt_loss
    else:
        rows = [("average", "avg_acc"), ("worst group", "worst_group_acc")]
        rows += [(name, f"group_acc/{name}") for name in group_names]
        formatter = fmt
    for label, key in rows:
        values = [metrics.get(f"{split}_eval/{key}", metrics.get(f"{split}/{key}")) for split in splits]
        table.add_row(label, *(formatter(value) for value in values))
    console = Console()
    console.print(table)
    if "best/test/worst_group_acc" in best:
        console.print(
            f"best validation worst-group accuracy {fmt(best.get('best/val/worst_group_acc'))} "
            f"({best['best/checkpoint']}): test worst-group {fmt(best['best/test/worst_group_acc'])}, "
            f"test average {fmt(best['best/test/avg_acc'])}"
        )


def fmt(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def fmt_loss(value: float | None) -> str:
    return "–" if value is None else f"{value:.4g}"
