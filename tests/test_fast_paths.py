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


def test_matmul_precision_switch_sets_torch_and_bad_values_are_named(tmp_path):
    """`matmul_precision=high` is the TF32 switch (speed issue, target 4), set before training."""
    from overparam.errors import ConfigError

    before = torch.get_float32_matmul_precision()
    try:
        cfg = compose_config(
            [
                "+experiment=minimizer_gd",
                *QUIET_NO_CHECKPOINTS,
                "model.width=32",
                "matmul_precision=high",
                "trainer.max_steps=2",
            ],
            tmp_path,
        )
        run(cfg)
        assert torch.get_float32_matmul_precision() == "high"
    finally:
        torch.set_float32_matmul_precision(before)
    with pytest.raises(ConfigError, match=r"^matmul_precision must be one of highest, high, medium or null"):
        run(compose_config(["matmul_precision=fast"], tmp_path / "bad"))
