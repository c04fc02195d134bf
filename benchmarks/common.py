"""What every benchmark shares: composing and running the framework quietly, timing it, and reporting."""

from __future__ import annotations

import contextlib
import io
import resource
import tempfile
import time
from pathlib import Path

import lightning as L
import torch
from hydra import compose, initialize_config_dir

import overparam  # noqa: F401 - registers the config schema (train_schema) compose needs

ROOT = Path(__file__).resolve().parents[1]
QUIET = [
    "~callbacks.progress",
    "+trainer.enable_progress_bar=false",
    "~callbacks.checkpoint",
    "~callbacks.resume",
]
TIMER = ["+callbacks.timer._target_=common.FitTimer"]


class FitTimer(L.Callback):
    """Wall time and optimizer steps of `trainer.fit`'s training (start to end of the training loop)."""

    last: dict = {}

    def on_train_start(self, trainer, pl_module) -> None:
        sync_any()
        FitTimer.last = {"start": time.perf_counter(), "step0": trainer.global_step}

    def on_train_end(self, trainer, pl_module) -> None:
        sync_any()
        FitTimer.last.update(seconds=time.perf_counter() - FitTimer.last["start"], steps=trainer.global_step)


def quietly(function, *args):
    """Run the framework without its per-run report tables on stdout."""
    with contextlib.redirect_stdout(io.StringIO()):
        return function(*args)


def config(overrides: list[str], run_dir: Path):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(config_name="train", overrides=[*overrides, f"run_dir='{run_dir}'"])


def framework_steps_per_second(overrides: list[str]) -> float:
    from overparam.entry import execute as run

    with tempfile.TemporaryDirectory() as run_dir:
        quietly(run, config([*overrides, *QUIET, *TIMER], Path(run_dir)))
    return (FitTimer.last["steps"] - FitTimer.last["step0"]) / FitTimer.last["seconds"]


def bare_steps_per_second(step, steps: int, device: str) -> float:
    for _ in range(min(20, steps)):  # warm-up
        step()
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return steps / (time.perf_counter() - start)


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def sync_any() -> None:
    """Wait for the GPU, if there is one (a callback does not know the benchmark's device)."""
    sync("cuda" if torch.cuda.is_available() else "cpu")


def peak_memory(device: str) -> str:
    if device == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20
        torch.cuda.reset_peak_memory_stats()
        return f"peak GPU memory {peak:,.0f} MiB"
    return f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10:,.0f} MiB"


def report(name: str, ratio: float, target: str, detail: str, device: str) -> dict:
    print(f"{name:<46} {ratio:6.2f}×   target {target:<8} {detail}   {peak_memory(device)}", flush=True)
    return {"benchmark": name, "ratio": ratio, "target": target, "detail": detail}


class StepTimer(L.Callback):
    """Wall time of the optimizer steps after the first `warmup` (cuDNN autotuning, allocator growth)."""

    last: dict = {}
    stackable = True  # it times the run as a whole

    def __init__(self, warmup: int) -> None:
        self.warmup = warmup

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.warmup:
            sync_any()
            StepTimer.last = {"start": time.perf_counter(), "step0": trainer.global_step}

    def on_train_end(self, trainer, pl_module) -> None:
        sync_any()
        last = StepTimer.last
        last.update(seconds=time.perf_counter() - last["start"], steps=trainer.global_step - last["step0"])
