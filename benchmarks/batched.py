"""Target 5b: a sweep of seed 000 Fig. 1's shape (methods × seeds × step sizes), end to end, through the
batched launcher against Hydra's basic launcher (both whole `python train.py -m` commands)."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, report

METHODS = ("erm", "iw", "gdro_nu1", "chi2")
RATES = ("0.01", "0.005", "0.0025", "0.00125")


def sweep_seconds(launcher: str, jobs: int, steps: int, sweep_dir: Path) -> float:
    seeds = ",".join(str(s) for s in range(max(1, jobs // (len(METHODS) * len(RATES)))))
    return command_seconds(
        f"hydra/launcher={launcher}",
        "+experiment=grw_fig1",
        "callbacks=default",  # without the theory probes, as every earlier measurement of 5b
        "~callbacks.checkpoint",
        f"trainer.max_steps={steps}",
        f"weighting={','.join(METHODS)}",
        f"optim.lr={','.join(RATES)}",
        f"seed={seeds}",
        f"hydra.sweep.dir={sweep_dir}",
    )


def command_seconds(*overrides: str) -> float:
    """Wall time of `python train.py -m <overrides>` (quiet), imports and all."""
    quiet = ["~callbacks.progress", "+trainer.enable_progress_bar=false"]
    command = [sys.executable, str(ROOT / "train.py"), "-m", *overrides, *quiet]
    start = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-2000:])
    return time.perf_counter() - start


def batched_sweep(device: str, jobs: int, steps: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        basic = sweep_seconds("basic", jobs, steps, Path(tmp) / "basic")
        batched = sweep_seconds("batched", jobs, steps, Path(tmp) / "batched")
    detail = f"{jobs} jobs × {steps} GD steps: basic launcher {basic:.1f} s, batched {batched:.1f} s"
    return report(
        f"5b batched launcher, {jobs} jobs of Fig. 1's shape", basic / batched, "≥ 30", detail, device
    )


PAPER_STEPS = 10**7


def fig3_at_paper_scale(device: str, steps: int, unroll: int = 16) -> dict:
    """Target 5d: seed 000 Fig. 3's six runs (3 weightings × 2 losses) at the paper's 10^7 steps, as
    `make figures` runs them (one stacked group, compiled). The whole command runs at `steps` and at a
    tenth of it; the group's training seconds without compilation (its metrics.json) give the seconds per
    step, from which the wall time of the whole command at 10^7 steps is projected."""

    def run(budget: int, sweep_dir: Path) -> tuple[float, float]:
        """The whole command's seconds, and the group's own seconds less its compilation."""
        wall = command_seconds(
            "hydra/launcher=batched",
            "+experiment=grw_fig3",
            "callbacks.checkpoint=null",  # as `make figures` runs it (no best checkpoint per run)
            f"trainer.max_steps={budget}",
            "run.compile=true",
            f"run.compile_unroll={unroll}",  # 16: what auto chooses at 10^7 steps
            f"hydra.sweep.dir={sweep_dir}",
        )
        (record,) = [json.loads(p.read_text()) for p in sweep_dir.glob(".batched/*/metrics.json")]
        return wall, record["seconds"] - sum(record["compile"]["seconds"].values())

    with tempfile.TemporaryDirectory() as tmp:
        short, short_training = run(steps // 10, Path(tmp) / "short")
        long, long_training = run(steps, Path(tmp) / "long")
    per_step = (long_training - short_training) / (steps - steps // 10)
    if per_step <= 0:  # at smoke scale the difference is within the runs' noise: the long run's own rate
        per_step = long_training / steps
    projected = long + per_step * (PAPER_STEPS - steps)
    detail = (
        f"6 runs, one stacked compiled group: {steps // 10} steps {short:.1f} s, {steps} steps {long:.1f} s "
        f"→ 10^7 steps ≈ {projected / 60:.1f} min ({per_step * 1e6:.0f} µs per step of the group)"
    )
    return report("5d seed 000 Fig. 3 at 10^7 steps (≤ 15 min)", 15 * 60 / projected, "≥ 1", detail, device)
