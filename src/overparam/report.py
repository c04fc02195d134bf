"""What a run prints: where it runs and what it runs at the start; at the end the table of average,
worst-group and per-group accuracy on each split (the mean and per-group loss for regression data), and
where its files are (with the command that resumes it, when it stopped)."""

from __future__ import annotations

import shlex
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Table
from rich.tree import Tree

from overparam.module import EVAL_PREFIXES
from overparam.rundir import LAST_CHECKPOINT

# Train metrics measured in eval mode carry the module's evaluation prefix; `train/` ones are the running
# training-mode averages of the last epoch.
FINAL_TRAIN = EVAL_PREFIXES["train"]


def print_start(cfg: DictConfig, run_dir: Path) -> None:
    """The run directory and the composed config as a compact tree: one line per group, its option and
    its scalar settings."""
    choices = HydraConfig.get().runtime.choices if HydraConfig.initialized() else {}
    label = f"run directory: {run_dir}"
    tree = Tree(label)
    for group in ("data", "model", "loss", "weighting", "optim", "trainer", "run"):
        node = OmegaConf.to_container(cfg[group], resolve=True) if cfg[group] is not None else {}
        settings = ", ".join(
            f"{key}={value}"
            for key, value in node.items()
            if not key.startswith("_") and not isinstance(value, dict)
        )
        option = choices.get(group) or ""
        line = f"{group}: {option} ({settings})" if option else f"{group}: {settings}"
        tree.add(line)
    console = Console()
    # The settings wrap at the console's width; the directory, which users copy, never does.
    Console(width=max(console.width, len(label) + 1)).print(tree)


def print_end(run_dir: Path, status: str) -> None:
    """Where the run's files are; for a run that stopped (or failed after a checkpoint), the command that
    resumes it."""
    console = Console()
    console.print(f"run directory: {run_dir} ({status})", soft_wrap=True)
    resumable = status == "stopped" or (status == "failed" and (run_dir / LAST_CHECKPOINT).exists())
    if resumable and HydraConfig.initialized():
        overrides = [o for o in HydraConfig.get().overrides.task if not o.startswith("hydra.run.dir=")]
        command = shlex.join(["python", "train.py", *overrides, f"hydra.run.dir={run_dir}"])
        console.print(f"resume it with: {command}", soft_wrap=True)


def print_report(
    metrics: dict[str, float], group_names: tuple[str, ...], best: dict[str, float], regression: bool = False
) -> None:
    splits = [s for s in ("train", "val", "test") if f"{s}/avg_acc" in metrics]
    table = Table(title="loss (final model)" if regression else "accuracy (final model)")
    table.add_column("")
    running_train = "train" in splits and f"{FINAL_TRAIN}/avg_acc" not in metrics
    for split in splits:
        table.add_column("train (running)" if split == "train" and running_train else split, justify="right")
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
    if running_train:
        console.print(
            "train (running): the last epoch's average in training mode, as the weights moved; add train to "
            "run.eval_splits for the final model on the training set"
        )
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
