"""What a user sees: the run directory and config at the start, the table and the run directory at the
end, and no library warnings or tips in between, for a run, a resumed run and a sweep."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

from conftest import ROOT, assert_quiet, run_cli

SMALL = ["data.n_train=600", "data.n_val=200", "data.n_test=200"]  # the default progress callback


def test_a_run_a_resumed_run_and_a_sweep_print_only_their_own_messages(tmp_path):
    run_dir = tmp_path / "run"
    args = [*SMALL, "trainer.max_epochs=6", f"hydra.run.dir={run_dir}"]
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), *args],
        cwd=ROOT,
        env={**os.environ, "WANDB_MODE": "offline"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    while not (run_dir / "checkpoints" / "last.ckpt").exists():
        assert process.poll() is None and time.sleep(0.02) is None
    process.send_signal(signal.SIGTERM)
    first = process.communicate(timeout=300)[0]
    assert_quiet(first)
    assert first.startswith(f"run directory: {run_dir}\n├── data: cmnist (")
    assert "resume it with: python train.py " in first and f"hydra.run.dir={run_dir}" in first
    resumed = run_cli(args)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert_quiet(resumed.stdout + resumed.stderr)
    assert "worst group" in resumed.stdout and f"run directory: {run_dir} (completed)" in resumed.stdout
    # Not a terminal: a line per epoch instead of a bar, with the objective and the selection metric.
    epochs = re.findall(
        r"^epoch (\d+)  step \d+  train/objective \S+  val/worst_group_acc \S+$", resumed.stdout, re.M
    )
    assert epochs and epochs[-1] == "5"
    assert "Restored all states" in (run_dir / "train.log").read_text()  # the log is in the run's file
    sweep = run_cli(
        ["-m", *SMALL, "trainer.max_epochs=1", "weighting=erm,gdro", f"hydra.sweep.dir={tmp_path / 's'}"]
    )
    assert sweep.returncode == 0, sweep.stderr[-2000:]
    assert_quiet(sweep.stdout + sweep.stderr)
    assert sweep.stdout.count("run directory: ") == 4  # each job says where it runs, at start and end
    assert re.search(r"^\[[^\]]*weighting=erm\] epoch 0  step \d+  train/objective", sweep.stdout, re.M)


def test_a_long_run_directory_is_printed_on_one_line(tmp_path, capsys):
    from conftest import compose_config
    from overparam.report import print_start

    long_dir = tmp_path / ("nested_" * 20) / "run"
    print_start(compose_config([], long_dir), long_dir)
    assert f"run directory: {long_dir}\n├── data: " in capsys.readouterr().out  # copyable as is
