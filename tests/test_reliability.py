"""Resume after a real kill, never redo or overwrite a finished run, atomic checkpoints, determinism, and a
run that keeps going when W&B cannot reach its server."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import pandas as pd
import pytest
import torch
from hydra.utils import instantiate

from conftest import NO_PROGRESS, QUIET, QUIET_NO_CHECKPOINTS, ROOT, compose_config, run_cli
from overparam.callbacks.resume import AtomicCheckpointIO
from overparam.entry import execute
from overparam.errors import ConfigError
from overparam.module import ReweightedModule

SMALL = ["data.n_train=600", "data.n_val=200", "data.n_test=200", "trainer.max_epochs=6"]


def start(args: list[str], env: dict | None = None) -> subprocess.Popen:
    env = {**os.environ, "WANDB_MODE": "offline", **(env or {})}
    return subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while not path.exists():
        assert process.poll() is None, (
            f"the run ended before {path} appeared: {process.stderr.read()[-2000:]}"
        )
        assert time.time() < deadline
        time.sleep(0.02)


def same_run(a: Path, b: Path) -> None:
    """Identical final and best metrics, steps and logged curves."""
    first, second = (json.loads((d / "metrics.json").read_text()) for d in (a, b))
    assert second["status"] == first["status"] == "completed"
    assert second["metrics"] == first["metrics"] and second["best"] == first["best"]
    assert second["steps"] == first["steps"]
    pd.testing.assert_frame_equal(pd.read_csv(a / "metrics.csv"), pd.read_csv(b / "metrics.csv"))
    assert (a / "metrics.csv").read_bytes() == (b / "metrics.csv").read_bytes()


@pytest.mark.parametrize(
    "sig,overrides",
    [
        (signal.SIGKILL, ["trainer.log_every_n_steps=3"]),  # Group DRO's q; a throttled logging schedule
        (
            signal.SIGTERM,
            ["weighting=jtt", "weighting.identification_steps=10"],
        ),  # JTT's stage and sampler
        (signal.SIGKILL, ["weighting=iw_sampler", "data.batch_size=64"]),  # the sampler's draws
    ],
    ids=["sigkill-gdro", "sigterm-jtt", "sigkill-iw-sampler"],
)
def test_a_killed_run_restarted_with_the_same_command_ends_exactly_as_an_uninterrupted_run(
    tmp_path, sig, overrides
):
    args = [*SMALL, "~callbacks.progress", *overrides]
    reference = run_cli([*args, f"hydra.run.dir={tmp_path / 'a'}"])
    assert reference.returncode == 0, reference.stderr[-2000:]
    interrupted = tmp_path / "b"
    process = start([*args, f"hydra.run.dir={interrupted}"])
    wait_for(interrupted / "checkpoints" / "last.ckpt", process)  # mid-training: epoch 1 has begun
    process.send_signal(sig)
    process.wait(timeout=120)
    assert process.returncode != 0
    if sig == signal.SIGTERM:  # Lightning stops after the batch; the run records that it was stopped
        assert json.loads((interrupted / "metrics.json").read_text())["status"] == "stopped"
    else:
        assert not (interrupted / "metrics.json").exists()
    before = torch.load(interrupted / "checkpoints" / "last.ckpt", weights_only=False)["seconds"]
    resumed = run_cli([*args, f"hydra.run.dir={interrupted}"])
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "Restored all states from the checkpoint" in (interrupted / "train.log").read_text()
    assert (
        json.loads((interrupted / "metrics.json").read_text())["seconds"] > before > 0
    )  # every attempt counts
    same_run(tmp_path / "a", interrupted)


def test_a_full_batch_run_resumes_exactly_on_its_log_grid(tmp_path, monkeypatch):
    """Full-batch float64 GD with inner steps on a log-spaced grid, interrupted in-process in epoch 3."""
    overrides = ["+experiment=grw_fig1", "weighting=gdro_nu1", *NO_PROGRESS, "trainer.max_steps=300"]
    overrides.append("trainer.log_every_n_steps=3")
    execute(compose_config(overrides, tmp_path / "a"))

    def interrupt(self):
        original(self)
        if self.current_epoch == 3:
            raise KeyboardInterrupt

    original = ReweightedModule.on_train_epoch_end
    monkeypatch.setattr(ReweightedModule, "on_train_epoch_end", interrupt)
    with pytest.raises(SystemExit):  # Lightning turns the interrupt into exit(1) after writing our record
        execute(compose_config(overrides, tmp_path / "b"))
    assert json.loads((tmp_path / "b" / "metrics.json").read_text())["status"] == "stopped"
    monkeypatch.setattr(ReweightedModule, "on_train_epoch_end", original)
    execute(compose_config(overrides, tmp_path / "b"))
    same_run(tmp_path / "a", tmp_path / "b")
    assert (tmp_path / "b" / "metrics.attempt1.json").exists()  # the stopped attempt's record is kept


def test_a_finished_run_is_skipped_and_never_overwritten(tmp_path):
    cfg = compose_config([*QUIET, *SMALL, "trainer.max_epochs=1"], tmp_path)
    first = execute(cfg)
    written = (tmp_path / "metrics.json").stat().st_mtime_ns
    assert execute(cfg) == first
    assert (tmp_path / "metrics.json").stat().st_mtime_ns == written
    changed = compose_config([*QUIET, *SMALL, "trainer.max_epochs=1", "optim.lr=0.05"], tmp_path)
    with pytest.raises(
        ConfigError, match=r"already holds a run of another config \(optim\.lr: 0\.1 → 0\.05\)"
    ):
        execute(changed)
    assert (tmp_path / "metrics.json").stat().st_mtime_ns == written


def test_rerunning_a_command_without_a_run_dir_writes_a_new_directory(tmp_path):
    for _ in range(2):
        result = run_cli([*SMALL, "trainer.max_epochs=1", "name=again", "~callbacks.progress"], cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-2000:]
        time.sleep(1.1)  # run directories are named by the second
    assert len(list((tmp_path / "outputs" / "again").glob("*/metrics.json"))) == 2


def test_a_checkpoint_write_interrupted_midway_leaves_the_previous_one_intact(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"step": 1}, path)

    def dies_midway(obj, file):
        file.write(b"partial")
        raise KeyboardInterrupt  # the process is killed during the write

    monkeypatch.setattr(torch, "save", dies_midway)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"step": 2}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True) == {"step": 1}


def test_the_same_config_and_seed_give_bit_identical_metrics_and_curves(tmp_path):
    overrides = [*QUIET, *SMALL, "trainer.max_epochs=2", "trainer.log_every_n_steps=1"]
    for name in ("a", "b"):
        execute(compose_config(overrides, tmp_path / name))
    same_run(tmp_path / "a", tmp_path / "b")


def test_wandb_online_without_a_key_logs_offline_and_the_run_finishes(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    no_key_no_server = {
        "WANDB_MODE": "online",
        "HOME": str(home),  # no ~/.netrc
        "WANDB_CONFIG_DIR": str(home),
        "WANDB_BASE_URL": "http://127.0.0.1:9",  # nothing listens there
    }
    result = run_cli(
        ["logger=wandb", *SMALL, "trainer.max_epochs=1", *NO_PROGRESS, f"hydra.run.dir={tmp_path / 'run'}"],
        env=no_key_no_server,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "no W&B API key is set" in result.stderr
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["status"] == "completed"
    assert list((tmp_path / "run" / "wandb").glob("offline-run-*/run-*.wandb"))


def test_a_step_size_beyond_the_quadratic_stability_bound_ends_as_diverged_at_step_zero(tmp_path):
    """Full-batch GD on a linear model with the squared loss diverges iff η·λ_max(H) ≥ 2: the run says so
    before any step, with the bound, and the bound is the true one (bare GD on the same data)."""
    base = [
        "+experiment=grw_fig1",
        "weighting=iw",
        *NO_PROGRESS,
        "~callbacks.checkpoint",
        "~callbacks.resume",
    ]
    execute(compose_config([*base, "optim.lr=10"], tmp_path / "too_large"))
    written = json.loads((tmp_path / "too_large" / "metrics.json").read_text())
    assert written["status"] == "diverged" and written["steps"] == 0
    match = re.fullmatch(
        r"optim\.lr=10 gives η·λ_max\(H\) = \S+ ≥ 2 for this quadratic objective, so full-batch gradient "
        r"descent diverges; use optim\.lr < (\S+)",
        written["error"],
    )
    assert match, written["error"]
    bound = float(match.group(1))

    cfg = compose_config([*base, "trainer.max_steps=2000", f"optim.lr={0.97 * bound}"], tmp_path / "stable")
    assert execute(cfg).metrics["train/loss"] < 1e-6  # just below the bound GD converges

    x = torch.load(tmp_path / "stable" / "snapshots.pt", weights_only=True)["theta"]  # θ0 of the same data
    data = instantiate(cfg.data)  # the same six images, trained by a bare loop
    data.setup("fit")
    features, y, groups = data.train.x.flatten(1).double(), data.train.y.double(), data.train.group
    q = (1.0 / torch.bincount(groups).double())[groups] / 2  # IW: each of the two groups weighs ½
    for scale, grows in ((1.03, True), (0.97, False)):
        theta = x[0].clone()
        for _ in range(3000):
            residual = features @ theta - y
            theta = theta - scale * bound * features.T @ (q * residual)
        assert (float((q * (features @ theta - y) ** 2).sum()) > 1.0) == grows


def test_a_run_without_the_best_checkpoint_still_resumes_and_completes(tmp_path):
    """`~callbacks.checkpoint` keeps the resume checkpoint (which has no monitor): the run completes, with
    final metrics and no best/ ones."""
    execute(compose_config([*QUIET, "trainer.max_epochs=1", "~callbacks.checkpoint"], tmp_path))
    result = json.loads((tmp_path / "metrics.json").read_text())
    assert result["status"] == "completed" and result["best"] == {}
    assert (tmp_path / "checkpoints" / "last.ckpt").exists()


class WaitForFile(L.Callback):
    """Holds a run at the start of its second epoch (its first checkpoint written) until `path` exists,
    so a test knows the run is still alive."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        deadline = time.time() + 300 if trainer.current_epoch == 1 else 0
        while not self.path.exists() and time.time() < deadline:
            time.sleep(0.05)


def test_a_second_process_on_a_directory_in_use_is_refused_and_the_first_run_is_untouched(tmp_path):
    """One process per run directory: the second exits at once with one sentence naming the holder and
    writes nothing; the first ends exactly as a solo run."""
    gate = tmp_path / "go"
    args = ["data.n_train=600", "data.n_val=200", "data.n_test=200", "trainer.max_epochs=3", *NO_PROGRESS]
    args += ["+callbacks.gate._target_=test_reliability.WaitForFile", f"+callbacks.gate.path={gate}"]
    busy = tmp_path / "busy"
    first = start([*args, f"hydra.run.dir={busy}"], env={"PYTHONPATH": str(ROOT / "tests")})
    wait_for(busy / "checkpoints" / "last.ckpt", first)  # after epoch 0, held at the gate
    second = run_cli([*args, f"hydra.run.dir={busy}"], env={"PYTHONPATH": str(ROOT / "tests")})
    gate.touch()
    assert second.returncode != 0 and "Traceback" not in second.stderr
    assert (
        second.stderr.strip()
        .splitlines()[-1]
        .startswith(f"error: {busy} is in use by process {first.pid} on ")
    )
    assert first.wait(timeout=600) == 0, first.stderr.read()[-2000:]
    assert json.loads((busy / "started.json").read_text())["attempt"] == 1
    solo = run_cli([*args, f"hydra.run.dir={tmp_path / 'solo'}"], env={"PYTHONPATH": str(ROOT / "tests")})
    assert solo.returncode == 0, solo.stderr[-2000:]
    same_run(tmp_path / "solo", busy)


def test_two_copies_of_a_sweep_never_run_a_job_twice(tmp_path):
    """Started twice into one sweep directory (as on a cluster), every job is run by exactly one copy; the
    other skips it (finished) or is refused (running) and goes on."""
    args = ["-m", "+experiment=grw_fig1", "trainer.max_steps=300", *QUIET_NO_CHECKPOINTS]
    args.append(f"hydra.sweep.dir={tmp_path}")
    copies = [start(args), start(args)]
    outputs = [copy.communicate(timeout=600)[1] for copy in copies]
    assert [copy.returncode for copy in copies] == [0, 0], outputs
    jobs = sorted(path.parent for path in tmp_path.glob("*/metrics.json"))
    assert len(jobs) == 3
    for job in jobs:
        assert json.loads((job / "metrics.json").read_text())["status"] == "completed"
        assert json.loads((job / "started.json").read_text())["attempt"] == 1, job.name
        mentions = sum(text.count(f"{job} is in use") for text in outputs)
        assert mentions <= 1, job.name  # a refusal names the job once, from the copy that did not run it


def test_a_run_that_fails_before_training_still_writes_its_metrics_json(tmp_path):
    """A data error ends the run with the one sentence, recorded as `failed` in metrics.json (the
    collector then lists the job instead of losing it)."""
    cfg = compose_config(["+experiment=gdro_celeba", "data.root=/nonexistent/celeba", *QUIET], tmp_path)
    with pytest.raises(ConfigError) as error:
        execute(cfg)
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written["status"] == "failed" and written["error"] == str(error.value)
    assert "/nonexistent/celeba" in written["error"]
