"""The fast paths give what the plain ones give: optimizer steps chunked inside one training_step (skipping
Lightning's per-step hooks) against one step per training_step through Lightning's optimizer wrapper."""

from __future__ import annotations

import json

import lightning as L
import pandas as pd
import pytest
import torch

from conftest import QUIET_NO_CHECKPOINTS, compose_config
from overparam.entry import execute


@pytest.mark.parametrize("weighting", ["erm", "gdro_nu1"])
def test_chunked_inner_steps_match_one_step_per_training_step(tmp_path, weighting):
    base = ["+experiment=grw_fig1", f"weighting={weighting}", *QUIET_NO_CHECKPOINTS, "trainer.max_steps=120"]
    base.append("run.log_grid_per_decade=null")
    for name, inner in (("chunked", 100), ("plain", 1)):
        execute(compose_config([*base, f"run.inner_steps={inner}"], tmp_path / name))
    chunked, plain = (json.loads((tmp_path / n / "metrics.json").read_text()) for n in ("chunked", "plain"))
    assert chunked["steps"] == plain["steps"] == 120
    for key in ("test/loss", "train/loss", "val/loss"):
        assert chunked["metrics"][key] == pytest.approx(plain["metrics"][key], rel=1e-12), key
    thetas = [
        torch.load(tmp_path / n / "snapshots.pt", weights_only=True)["theta"][-1]
        for n in ("chunked", "plain")
    ]
    torch.testing.assert_close(thetas[0], thetas[1], rtol=1e-12, atol=1e-15)


def test_matmul_precision_switch_sets_torch_and_bad_values_are_named(tmp_path):
    """`run.matmul_precision=high` is the TF32 switch (speed issue, target 4), set before training."""
    from overparam.errors import ConfigError

    before = torch.get_float32_matmul_precision()
    try:
        cfg = compose_config(
            [
                "+experiment=minimizer_gd",
                *QUIET_NO_CHECKPOINTS,
                "model.width=32",
                "run.matmul_precision=high",
                "trainer.max_steps=2",
                "+callbacks.probe._target_=test_fast_paths.PrecisionProbe",
            ],
            tmp_path,
        )
        execute(cfg)
        assert PrecisionProbe.seen == "high"  # in effect while training, not only afterwards
    finally:
        torch.set_float32_matmul_precision(before)
    with pytest.raises(
        ConfigError, match=r"^run\.matmul_precision must be one of highest, high, medium, null, got 'fast'$"
    ):
        execute(compose_config(["run.matmul_precision=fast"], tmp_path / "bad"))


def test_auto_inner_steps_chunk_a_batch_split_of_one_and_give_the_plain_run(tmp_path):
    """Seed 003's SGD at split 1 is GD: `run.inner_steps=auto` runs it in chunks of 100 (one evaluation per
    chunk, not per step) and reaches the same weights as one step per epoch."""
    from overparam.components import chunk_length
    from overparam.errors import ConfigError

    base = ["+experiment=minimizer_gd", "recipe=sgd", "data.split=1.0", "model.width=32"]
    base += [*QUIET_NO_CHECKPOINTS, "trainer.max_steps=150"]
    for name, inner in (("auto", "auto"), ("plain", 1)):
        execute(compose_config([*base, f"run.inner_steps={inner}"], tmp_path / name))
    auto, plain = (json.loads((tmp_path / n / "metrics.json").read_text()) for n in ("auto", "plain"))
    assert auto["steps"] == plain["steps"] == 150
    for key in ("test/loss", "train_eval/loss", "val/loss"):
        assert auto["metrics"][key] == pytest.approx(plain["metrics"][key], rel=1e-9), key
    evaluations = {
        n: pd.read_csv(tmp_path / n / "metrics.csv")["val/loss"].notna().sum() for n in ("auto", "plain")
    }
    assert evaluations["plain"] >= 150 and evaluations["auto"] <= 3
    assert chunk_length("auto", None) == 100 and chunk_length("auto", 10) == 1
    with pytest.raises(
        ConfigError, match=r"^run.inner_steps=5 would take that many steps on every mini-batch"
    ):
        chunk_length(5, 10)


class PrecisionProbe(L.Callback):
    """Records the float32 matmul precision in effect when training starts."""

    seen: str | None = None

    def on_train_start(self, trainer, pl_module) -> None:
        PrecisionProbe.seen = torch.get_float32_matmul_precision()
