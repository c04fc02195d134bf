"""Seed 000 Thm 4 (E4) at CI scale: wide-network GRW and ERM predictions meet as the width grows."""

from __future__ import annotations

import pytest

from conftest import QUIET_NO_CHECKPOINTS as QUIET
from conftest import compose_config, record_overrides
from overparam.entry import execute
from overparam.results.figures.seed000 import fitted_slope, prediction_gaps


@pytest.fixture(scope="module")
def width_sweep(tmp_path_factory):
    sweep = tmp_path_factory.mktemp("grw_width")
    for width in (128, 512, 2048):
        for weighting in ("erm", "iw"):
            job = sweep / f"model.width={width},weighting={weighting}"
            overrides = ["+experiment=grw_width", f"model.width={width}", f"weighting={weighting}", *QUIET]
            execute(compose_config(overrides, job))
            record_overrides(job, [f"model.width={width}", f"weighting={weighting}"])
    return sweep


def test_thm4_grw_minus_erm_gap_shrinks_with_width_at_least_like_d_to_minus_quarter(width_sweep):
    gaps = prediction_gaps(width_sweep)
    iw = gaps[gaps["weighting"] == "iw"].sort_values("width")
    assert iw["gap"].is_monotonic_decreasing
    slope = fitted_slope(iw)
    print(f"fitted log-log slope of sup|f_IW − f_ERM| against width: {slope:.2f}")  # pilot: −1.38
    assert slope <= -0.25
