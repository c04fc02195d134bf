"""Sweeps through a real SLURM scheduler (a one-node cluster started on localhost for these tests):
arrays, requeue and time-limit resubmission with exact resume, failures, and DDP over SLURM tasks.

Where SLURM is not installed or cannot start, every test here is skipped with the reason."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from cluster.local_slurm import ClusterUnavailable, LocalSlurm, free_port
from conftest import ROOT, assert_same_group_weights_on_both_ranks, ddp_probe_run, run_cli
from overparam.results.collect import collect

# The package's SLURM launcher (conf/hydra/launcher/slurm.yaml) on the test cluster: no GPU, 1 CPU.
SLURM = [
    "hydra/launcher=slurm",
    "hydra.launcher.partition=debug",
    "hydra.launcher.gpus_per_node=null",
    "hydra.launcher.cpus_per_task=1",
    "hydra.launcher.mem_gb=1",
]
SMALL = ["data.n_train=256", "data.n_val=64", "data.n_test=64", "~callbacks.progress"]
# Long enough to be interrupted after its first checkpoint (one per epoch).
LONGER = [
    "data.n_train=1000",
    "data.n_val=200",
    "data.n_test=200",
    "trainer.max_epochs=25",
    "~callbacks.progress",
]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    slurm = LocalSlurm(tmp_path_factory.mktemp("slurm"))
    try:
        slurm.start()
    except ClusterUnavailable as reason:
        pytest.skip(f"no local SLURM cluster: {reason}")
    yield slurm
    slurm.stop()


def sweep(cluster: LocalSlurm, args: list[str], sweep_dir) -> subprocess.Popen:
    """`python train.py -m hydra/launcher=slurm ...` started in the background (it waits for its jobs)."""
    return subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), "-m", *SLURM, *args, f"hydra.sweep.dir={sweep_dir}"],
        cwd=ROOT,
        env={**cluster.env, "WANDB_MODE": "offline"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(process: subprocess.Popen, cluster: LocalSlurm, timeout: float = 300) -> str:
    """Wait for a sweep, starting requeued jobs at once (SLURM holds them ~2 minutes by default)."""
    deadline = time.time() + timeout
    while process.poll() is None:
        assert time.time() < deadline, "the sweep did not finish"
        cluster.release_requeued()
        time.sleep(0.5)
    output = process.stdout.read()
    assert process.returncode == 0, output[-3000:]
    return output


def wait_for(path, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while not path.exists():
        assert process.poll() is None and time.time() < deadline, f"{path} never appeared"
        time.sleep(0.1)


def reference_curves(tmp_path, args: list[str]) -> bytes:
    """metrics.csv of the same config run locally without interruption."""
    result = run_cli([*args, f"hydra.run.dir={tmp_path / 'reference'}"])
    assert result.returncode == 0, result.stderr[-2000:]
    return (tmp_path / "reference" / "metrics.csv").read_bytes()


def test_a_four_job_sweep_runs_as_one_array_and_is_collected(cluster, tmp_path):
    output = finish(
        sweep(cluster, ["weighting=erm,gdro", "seed=0,1", "trainer.max_epochs=2", *SMALL], tmp_path), cluster
    )
    jobs = sorted(path.parent for path in tmp_path.glob("*/metrics.json"))
    assert len(jobs) == 4, output[-3000:]
    for job in jobs:
        assert json.loads((job / "metrics.json").read_text())["status"] == "completed"
        assert (job / "metrics.csv").exists() and (job / ".hydra" / "overrides.yaml").exists()
    tasks = [path.name.split("_") for path in (tmp_path / ".submitit").glob("[0-9]*_[0-9]*")]
    assert len(tasks) == 4 and len({array for array, _ in tasks}) == 1  # one sbatch array of four tasks
    table = collect(tmp_path)
    assert len(table) == 4 and set(table["weighting"]) == {"erm", "gdro"}


def test_a_requeued_job_resumes_in_its_directory_and_ends_as_an_uninterrupted_run(cluster, tmp_path):
    process = sweep(cluster, ["seed=3", *LONGER], tmp_path / "sweep")
    wait_for(tmp_path / "sweep" / "multirun.yaml", process)
    while not list((tmp_path / "sweep").glob("*/checkpoints/last.ckpt")):
        assert process.poll() is None, process.stdout.read()[-3000:]
        time.sleep(0.1)
    (job,) = [path.parents[1] for path in (tmp_path / "sweep").glob("*/checkpoints/last.ckpt")]
    (running,) = cluster.jobs()
    cluster.command("scontrol", "requeue", running["id"])
    finish(process, cluster)
    started = json.loads((job / "started.json").read_text())
    assert started["attempt"] == 2  # the same directory, a second attempt
    assert json.loads((job / "metrics.attempt1.json").read_text())["status"] == "stopped"
    assert json.loads((job / "metrics.json").read_text())["status"] == "completed"
    assert "Restored all states" in (job / "train.log").read_text()  # from checkpoints/last.ckpt
    assert (job / "metrics.csv").read_bytes() == reference_curves(tmp_path, ["seed=3", *LONGER])


@pytest.mark.slow
def test_a_job_at_its_time_limit_is_signalled_requeued_and_completes(cluster, tmp_path):
    """submitit asks for USR2 `signal_delay_s` before the limit, requeues the job (max_num_timeout) and
    the next attempt resumes from last.ckpt; SLURM checks limits every ~30 s, so this takes minutes."""
    limit = [
        "hydra.launcher.timeout_min=1",
        "hydra.launcher.signal_delay_s=45",
        "hydra.launcher.max_num_timeout=5",
    ]
    args = ["seed=4", "trainer.max_epochs=300", "~callbacks.progress"]  # about a minute of training
    finish(sweep(cluster, [*limit, *args], tmp_path / "sweep"), cluster, timeout=900)
    (job,) = [path.parent for path in (tmp_path / "sweep").glob("*/metrics.json")]
    assert json.loads((job / "started.json").read_text())["attempt"] >= 2
    assert json.loads((job / "metrics.json").read_text())["status"] == "completed"
    assert (job / "metrics.csv").read_bytes() == reference_curves(tmp_path, args)


def test_a_failing_job_is_recorded_while_its_siblings_complete_and_a_rerun_runs_only_what_is_missing(
    cluster, tmp_path
):
    args = ["run.inner_steps=0,1", "seed=0,1", "trainer.max_epochs=1", *SMALL]
    finish(sweep(cluster, args, tmp_path), cluster)
    statuses = {path.parent: json.loads(path.read_text()) for path in tmp_path.glob("*/metrics.json")}
    assert sorted(r["status"] for r in statuses.values()) == ["completed", "completed", "failed", "failed"]
    assert all("run.inner_steps" in r["error"] for r in statuses.values() if r["status"] == "failed")
    completed = {
        job: (job / "metrics.json").stat().st_mtime_ns
        for job, r in statuses.items()
        if r["status"] == "completed"
    }
    finish(sweep(cluster, args, tmp_path), cluster)
    assert {job: (job / "metrics.json").stat().st_mtime_ns for job in completed} == completed
    logs = "".join(path.read_text() for path in (tmp_path / ".submitit").glob("*/*_log.out"))
    assert logs.count("skipped:") == 2  # the completed jobs, in the second submission


def test_ddp_over_two_slurm_tasks_keeps_group_dro_weights_identical(cluster, tmp_path):
    """Lightning reads the ranks from SLURM (srun starts one process per task); gloo on the CPU."""
    train = " ".join([sys.executable, str(ROOT / "train.py"), *ddp_probe_run(tmp_path)])
    script = tmp_path / "ddp.sh"
    script.write_text(f"#!/bin/sh\ncd {ROOT}\nsrun {train}\n")
    result = subprocess.run(
        [
            "sbatch",
            "--wait",
            "--ntasks-per-node=2",
            "--cpus-per-task=1",
            "-J",
            "ddp",
            f"-o{tmp_path}/ddp.out",
            str(script),
        ],
        env={
            **cluster.env,
            "PYTHONPATH": str(ROOT / "tests"),
            "MASTER_ADDR": "127.0.0.1",  # the node's name is not in DNS
            "MASTER_PORT": str(free_port()),
            "WANDB_MODE": "offline",
        },
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, (tmp_path / "ddp.out").read_text()[-3000:]
    assert_same_group_weights_on_both_ranks(tmp_path)
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["status"] == "completed"
