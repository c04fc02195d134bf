"""The run directory: one holder at a time, and what a restart does in it."""

from __future__ import annotations

import json
import os

import pytest

from overparam.errors import ConfigError
from overparam.rundir import DirectoryInUse, RunLock, claimed, config_changes


def test_a_held_directory_is_refused_naming_its_holder_until_released(tmp_path):
    first, second = RunLock(tmp_path), RunLock(tmp_path)
    first.acquire()
    with pytest.raises(DirectoryInUse, match=rf"^{tmp_path} is in use by process {os.getpid()} on "):
        second.acquire()
    assert json.loads((tmp_path / "run.lock").read_text())["pid"] == os.getpid()  # the refusal kept it
    first.release()
    second.acquire()
    second.release()


def test_a_restart_skips_a_finished_run_and_refuses_another_config(tmp_path):
    config = {"seed": 0, "optim": {"lr": 0.1}, "logger": {"csv": {}}}
    with claimed(tmp_path, config) as plan:
        assert plan.action == "start"
    (tmp_path / "metrics.json").write_text(json.dumps({"status": "completed", "config": config}))
    with claimed(tmp_path, {**config, "logger": {"wandb": {}}}) as plan:  # the logger is not the run
        assert plan.action == "skip"
    with pytest.raises(
        ConfigError, match=r"already holds a run of another config \(optim\.lr: 0\.1 → 0\.05\)"
    ):
        with claimed(tmp_path, {**config, "optim": {"lr": 0.05}}):
            pass


def test_config_changes_ignore_what_does_not_change_the_result():
    before = {"seed": 0, "logger": {"csv": 1}, "data": {"cache_dir": "/a", "n": 1}}
    after = {"seed": 0, "logger": {"wandb": 1}, "data": {"cache_dir": "/b", "n": 2}}
    assert config_changes(before, after) == ["data.n: 1 → 2"]
