"""Target 5b: a sweep of seed 000 Fig. 1's shape (methods × seeds × step sizes), end to end, through the
batched launcher against Hydra's basic launcher (both whole `python train.py -m` commands)."""

from __future__ import annotations

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
    command = [
        sys.executable,
        str(ROOT / "train.py"),
        "-m",
        f"hydra/launcher={launcher}",
        "+experiment=grw_fig1",
        "callbacks=default",  # the theory probes read one network: not stacked yet
        "~callbacks.checkpoint",
        "~callbacks.progress",
        "+trainer.enable_progress_bar=false",
        f"trainer.max_steps={steps}",
        f"weighting={','.join(METHODS)}",
        f"optim.lr={','.join(RATES)}",
        f"seed={seeds}",
        f"hydra.sweep.dir={sweep_dir}",
    ]
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
