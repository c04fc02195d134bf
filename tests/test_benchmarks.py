"""The GPU benchmarks (image pipeline, paper-scale seed 002 step) run end to end at CPU smoke scale, so a
session lent a GPU measures instead of debugging."""

from __future__ import annotations

import json
import math
import subprocess
import sys

from conftest import ROOT


def bench(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, str(ROOT / "benchmarks" / "run.py"), *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)


def smoke_run(tmp_path, only: str, targets: list[str]) -> tuple[list[dict], str]:
    """`benchmarks/run.py --quick --only <only>`: each benchmark's row, in order, with its target and a
    finite positive ratio; and what it printed."""
    out = tmp_path / "bench.json"
    result = bench("--quick", "--only", only, "--out", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    rows = json.loads(out.read_text())
    assert [row["target"] for row in rows] == targets
    assert all(math.isfinite(row["ratio"]) and row["ratio"] > 0 for row in rows)
    return rows, result.stdout


def test_gpu_benchmarks_run_at_smoke_scale_and_report_each_ratio(tmp_path):
    rows, printed = smoke_run(tmp_path, "3,4", ["≥ 2", "≥ 0.8", "≤ 1.3"])
    for row in rows:
        assert f"{row['ratio']:6.2f}×   target {row['target']}" in printed
    assert "JPEGs written" in rows[0]["detail"] and "its two matmuls" in rows[2]["detail"]


def test_the_compiled_step_benchmarks_run_at_smoke_scale(tmp_path):
    rows, _ = smoke_run(tmp_path, "5a,5c,5d", ["≥ 0.8", "≥ 0.7", "≥ 1"])
    assert all("bare compiled loop" in row["detail"] for row in rows[:2])
    assert "10^7 steps ≈" in rows[2]["detail"]


def test_an_unknown_benchmark_name_is_named():
    result = bench("--only", "1a,9")
    assert (
        result.returncode != 0
        and "--only names unknown benchmarks 9; choose among 1a, 1b, 2, 3, 4, 5a, 5b, 5c, 5d"
        in (result.stderr)
    )
