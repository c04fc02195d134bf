"""DDP on two CPU processes: Group DRO's group weights stay identical on both ranks."""

from __future__ import annotations

import json

from conftest import ROOT, assert_same_group_weights_on_both_ranks, ddp_probe_run, run_cli


def test_group_dro_weights_are_identical_on_both_ranks_of_a_two_process_ddp_run(tmp_path):
    result = run_cli(ddp_probe_run(tmp_path), env={"PYTHONPATH": str(ROOT / "tests")})
    assert result.returncode == 0, result.stderr[-3000:]
    assert_same_group_weights_on_both_ranks(tmp_path)
    written = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert written["status"] == "completed" and written["steps"] == 2 * 2  # 256 per rank: 2 batches/epoch
