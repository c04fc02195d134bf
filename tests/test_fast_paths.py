"""The fast paths give what the plain ones give: optimizer steps chunked inside one training_step (skipping
Lightning's per-step hooks) against one step per training_step through Lightning's optimizer wrapper."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import QUIET_NO_CHECKPOINTS, compose_config
from overparam.train import run


@pytest.mark.parametrize("weighting", ["erm", "gdro_nu1"])
def test_chunked_inner_steps_match_one_step_per_training_step(tmp_path, weighting):
    base = ["+experiment=grw_fig1", f"weighting={weighting}", *QUIET_NO_CHECKPOINTS, "trainer.max_steps=300"]
    base.append("log_grid_per_decade=null")
    for name, inner in (("chunked", 100), ("plain", 1)):
        run(compose_config([*base, f"inner_steps={inner}"], tmp_path / name))
    chunked, plain = (json.loads((tmp_path / n / "metrics.json").read_text()) for n in ("chunked", "plain"))
    assert chunked["steps"] == plain["steps"] == 300
    for key in ("test/loss", "train/loss", "val/loss"):
        assert chunked["metrics"][key] == pytest.approx(plain["metrics"][key], rel=1e-12), key
    thetas = [
        torch.load(tmp_path / n / "snapshots.pt", weights_only=True)["theta"][-1]
        for n in ("chunked", "plain")
    ]
    torch.testing.assert_close(thetas[0], thetas[1], rtol=1e-12, atol=1e-15)
