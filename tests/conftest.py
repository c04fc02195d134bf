"""Shared helpers: compose the real Hydra config in-process, run the entry point in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from overparam.batched.stack import run_stacked
from overparam.errors import ConfigError
from overparam.settings import sentence  # (importing overparam registers the schema and resolvers)

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
# The one set of quiet settings every in-process run starts from: no progress bar (and on the CPU, or
# without the checkpoints a test does not need).
NO_PROGRESS = ["~callbacks.progress", "+trainer.enable_progress_bar=false"]
QUIET = ["trainer.accelerator=cpu", *NO_PROGRESS]
# The reproduction runs keep their own trainer and need no checkpoints.
QUIET_NO_CHECKPOINTS = [*NO_PROGRESS, "~callbacks.checkpoint", "~callbacks.resume"]
# asym_* experiments and ensembles keep no best checkpoint; their tests drop the resume one too.
QUIET_NO_RESUME = [*NO_PROGRESS, "~callbacks.resume"]
QUIET_ASYM = QUIET_NO_RESUME
# Seed 001's synthetic study at CI scale (80 training points, d = 320; the experiment runs the spec's n = 200,
# d = 1020 for 3·10^5 steps).
SYNTHETIC_CI_DATA = ["data.train_group_sizes=[38,2,2,38]", "data.d_noise=300", "data.eval_group_size=500"]


def ddp_probe_run(probe_dir: Path) -> list[str]:
    """Overrides of a two-process DDP run on the CPU whose ranks save Group DRO's weights (ddp_probe.py)."""
    return [
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "trainer.max_epochs=2",
        "data.n_train=512",
        "data.n_val=128",
        "data.n_test=128",
        "weighting.eta=0.5",
        "~callbacks.progress",
        "+callbacks.probe._target_=ddp_probe.SaveGroupWeights",
        f"+callbacks.probe.dirpath={probe_dir}",
        f"hydra.run.dir={probe_dir / 'run'}",
    ]


def assert_same_group_weights_on_both_ranks(probe_dir: Path) -> None:
    ranks = [torch.load(probe_dir / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert ranks[0]["world"] == ranks[1]["world"] == 2
    assert not set(ranks[0]["seen"]) & set(ranks[1]["seen"])  # each rank trained on its own shard
    assert len(ranks[0]["seen"]) + len(ranks[1]["seen"]) == 512
    torch.testing.assert_close(ranks[0]["g"], ranks[1]["g"], rtol=0, atol=0)  # the very same q
    assert not torch.allclose(ranks[0]["g"], torch.full((4,), 0.25), atol=1e-3)  # and it moved


# What a library prints when it is not quiet: warnings, tips, INFO lines, plugin setup, W&B's summary.
CONSOLE_NOISE = ("warn", "Tip", "💡", "INFO", "deprecated", "alembic", "Run history")


def assert_quiet(output: str) -> None:
    for word in CONSOLE_NOISE:
        assert word.lower() not in output.lower(), f"{word!r} in the console output:\n{output[-3000:]}"


def record_overrides(job: Path, overrides: list[str]) -> None:
    """Write `.hydra/overrides.yaml` as Hydra would, so in-process runs can be collected as one sweep."""
    (job / ".hydra").mkdir(exist_ok=True)
    (job / ".hydra" / "overrides.yaml").write_text("".join(f"- {item}\n" for item in overrides))


def execute_stacked(jobs: dict[Path, list[str]], group_dir: Path) -> None:
    """Each job (its directory: its overrides) trained as one member of a stacked model, as
    `hydra/launcher=batched` trains a group; each directory then holds what the job's single run writes,
    its overrides recorded as Hydra would."""
    configs = [compose_config(overrides, job) for job, overrides in jobs.items()]
    result = run_stacked(configs, group_dir, overrides=list(jobs.values()))
    assert result.status == "completed", result.error


def compose_config(overrides: list[str], run_dir: Path | None = None) -> DictConfig:
    """The composed `conf/train.yaml` with overrides, as `python train.py ...` would see it."""
    extra = [f"run_dir='{run_dir}'"] if run_dir is not None else ["run_dir=/tmp/overparam-compose-only"]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        try:
            return compose(config_name="train", overrides=[*overrides, *extra])
        except (HydraException, OmegaConfBaseException) as error:  # as train.py reports it
            message = sentence(error)
            if message is None:
                raise
            raise ConfigError(message) from error


def run_cli(args: list[str], cwd: Path = ROOT, env: dict | None = None, timeout: int = 600):
    """Run `python train.py <args>` as a user would; returns the CompletedProcess."""
    full_env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", **(env or {})}
    return subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def gallery_sweep(experiment: str, sweep_dir: Path) -> None:
    """Every line of docs/gallery.txt for `experiment`, run as `make figures` runs it, into `sweep_dir`: a
    slow test then asserts the paper's claim at exactly the gallery's scale."""
    lines = (ROOT / "docs" / "gallery.txt").read_text().splitlines()
    sweeps = [line.split()[1:] for line in lines if line.split()[:1] == [experiment]]
    assert sweeps, f"docs/gallery.txt has no line for {experiment}"
    for overrides in sweeps:
        named = any(o.startswith("hydra/launcher=") for o in overrides)
        launcher = [] if named else ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]
        keeps = any(o.startswith("callbacks.checkpoint") for o in overrides)
        checkpoint = [] if keeps else ["callbacks.checkpoint=null"]
        args = ["-m", f"+experiment={experiment}", *overrides, *checkpoint, *launcher]
        result = run_cli([*args, f"hydra.sweep.dir={sweep_dir}"], timeout=4 * 3600)
        assert result.returncode == 0, result.stderr[-2000:]


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return tmp_path / "run"


def sphere(n: int, d: int, seed: int = 0) -> torch.Tensor:
    """n points uniform on the unit sphere S^{d−1} in float64 (seed 004's Assumption 2.1)."""
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return x / x.norm(dim=1, keepdim=True)


class TrainingFacts:
    """The facts of a training set as `components.build_reweighter` reads them from a datamodule."""

    def __init__(self, groups: torch.Tensor, classes: torch.Tensor, batch_size: int | None = 32) -> None:
        self.train = type("Split", (), {"group": groups})()
        self.train_classes, self.batch_size = classes, batch_size
        self.n_groups, self.n_train = int(groups.max()) + 1, len(groups)
        self.group_counts = torch.bincount(groups, minlength=self.n_groups)
        per_class = self.n_groups // (int(classes.max()) + 1)
        class_major = bool((groups // per_class == classes).all())
        self.group_attributes = torch.arange(self.n_groups) % per_class if class_major else None
