"""Target 2: seed-batched training (`run.ensemble=S`) against S sequential runs."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from common import QUIET, config, quietly, report


def ensemble(device: str, steps: int, width: int, members: int = 32) -> dict:
    """Target 2: 32 members of a one-hidden-layer MLP on n = 100 as one run (run.ensemble=32) vs 32 sequential
    runs, each the same number of full-batch GD steps."""
    from overparam.entry import execute as run

    overrides = [
        "data=mnist_pairs",
        "model=mlp",
        f"model.width={width}",
        "model.depth=1",
        "loss=squared",
        "optim=gd",
        "optim.lr=0.1",
        "weighting=erm",
        "trainer=full_batch",
        "trainer.precision=32-true",
        f"trainer.max_steps={steps}",
        f"run.inner_steps={steps}",
        f"trainer.accelerator={'gpu' if device == 'cuda' else 'cpu'}",
        *QUIET,
    ]
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        for seed in range(members):
            quietly(run, config([*overrides, f"seed={seed}"], Path(tmp) / f"single{seed}"))
        sequential = time.perf_counter() - start
        start = time.perf_counter()
        quietly(run, config([*overrides, "seed=0", f"run.ensemble={members}"], Path(tmp) / "ensemble"))
        batched = time.perf_counter() - start
        same = json.loads((Path(tmp) / "ensemble" / "member=5" / "metrics.json").read_text())["metrics"]
        alone = json.loads((Path(tmp) / "single5" / "metrics.json").read_text())["metrics"]
        gap = max(abs(same[k] - alone[k]) for k in same)
    target = "≥ 10" if device == "cuda" else "≥ 2"
    detail = f"{members} runs {sequential:.1f} s, ensemble {batched:.1f} s ({steps} steps each)"
    detail += f"; member 5 vs its single run: max metric gap {gap:.1e}"
    return report(
        f"2  run.ensemble={members}, MLP width {width}, n=100", sequential / batched, target, detail, device
    )
