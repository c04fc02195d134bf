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


def check_width_claims(sweep_dir) -> None:
    """Thm 4 with the linearization beside the network: every network gap falls with the width at least
    like d^(−1/4) (mean over inits), and the linearized model's gap, whose GRW limit is ERM's kernel
    interpolator, stays ≤ 10% of the network's at the same width. It is the residue of 2,000 unconverged
    steps (at width 1024: 5.5e-6 after 2,000 steps, 1e-15 after 8,000), which falls more slowly with the
    width than the network's gap: 0.2–2% of it at widths 128–512, up to 8.8% at 4096 (IW)."""
    gaps = prediction_gaps(sweep_dir)
    gaps = gaps[gaps["weighting"] != "erm"]
    mean = gaps.groupby(["model", "weighting", "width"])["gap"].mean()
    for weighting in ("iw", "gdro_nu1"):
        network = mean.loc["ntk_mlp", weighting]
        assert network.is_monotonic_decreasing
        assert fitted_slope(network.reset_index()) <= -0.25  # measured −1.29 (IW), −1.31 (Group DRO)
        linearized = mean.loc["linearized", weighting]
        assert (linearized <= 0.1 * network.loc[linearized.index]).all(), (weighting, linearized, network)


@pytest.mark.slow
def test_width_study_at_the_gallery_scale(tmp_path):
    """`make figures ONLY=grw_width`: widths 128–4096 × 3 inits, the networks and their linearizations."""
    from conftest import gallery_sweep

    gallery_sweep("grw_width", tmp_path)
    check_width_claims(tmp_path)
