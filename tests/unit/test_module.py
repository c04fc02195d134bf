"""ReweightedModule: full-batch chunks of inner steps end at every step-indexed event, so a run with
`run.inner_steps=k` equals the run with one step per `training_step` (design: "Step-indexed events")."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from conftest import QUIET_NO_CHECKPOINTS, SYNTHETIC_CI_DATA, compose_config
from overparam.entry import execute

CHUNKS = (7, 100, "auto")
# Seed 001's synthetic study in float64 with JTT's switch at step 150 of 300.
JTT_RUN = [
    "+experiment=overfit_synthetic",
    *SYNTHETIC_CI_DATA,
    "weighting=jtt",
    "weighting.identification_steps=150",
    "run.log_grid_per_decade=null",
    "trainer.max_steps=300",
    *QUIET_NO_CHECKPOINTS,
]


def train(tmp_path: Path, overrides: list[str], inner) -> tuple[dict, pd.DataFrame]:
    run_dir = tmp_path / f"inner={inner}"
    execute(compose_config([*overrides, f"run.inner_steps={inner}"], run_dir))
    logged = run_dir / "metrics.csv"  # none when the first chunk diverged
    curves = pd.read_csv(logged).groupby("step").first() if logged.exists() else pd.DataFrame()
    return json.loads((run_dir / "metrics.json").read_text()), curves


def assert_same_run(chunked: tuple[dict, pd.DataFrame], plain: tuple[dict, pd.DataFrame], rel: float) -> None:
    """metrics.json alike, and every curve value the chunked run logged equal to the plain run's (but the
    epoch: a full-batch chunk is one epoch)."""
    (result, curves), (reference, reference_curves) = chunked, plain
    assert (result["status"], result["steps"]) == (reference["status"], reference["steps"])
    assert result["metrics"].keys() == reference["metrics"].keys()
    for key, value in reference["metrics"].items():
        if key == "epoch":
            continue
        assert result["metrics"][key] == pytest.approx(value, rel=rel, abs=1e-12), key
    assert set(curves.index) <= set(reference_curves.index)
    for column in curves.columns.intersection(reference_curves.columns).drop("epoch"):
        both = curves[column].notna() & reference_curves[column].reindex(curves.index).notna()
        expected = reference_curves.loc[curves.index[both], column]
        assert curves.loc[both, column].to_numpy() == pytest.approx(
            expected.to_numpy(), rel=rel, abs=1e-12
        ), column


def test_jtt_switches_at_exactly_its_step_for_every_chunk_length(tmp_path):
    plain = train(tmp_path, JTT_RUN, 1)
    switch = plain[1]["weights/jtt_error_set_size"].dropna()
    assert list(switch.index) == [150] and switch.iloc[0] > 0  # stage 1 left some points wrong
    for inner in CHUNKS:
        chunked = train(tmp_path, JTT_RUN, inner)
        assert list(chunked[1]["weights/jtt_error_set_size"].dropna().index) == [150], inner
        assert_same_run(chunked, plain, rel=1e-9)


def test_jtt_switch_needs_no_logging_callback(tmp_path):
    """The switch is JTT's own hook: without the reweighting callback the run is the same."""
    with_callback = train(tmp_path / "with", JTT_RUN, 100)
    without = train(tmp_path / "without", [*JTT_RUN, "~callbacks.reweighting"], 100)
    assert_same_run(without, with_callback, rel=0)
    erm = [item for item in JTT_RUN if not item.startswith("weighting")]
    assert without[0]["metrics"] != train(tmp_path / "erm", [*erm, "weighting=erm"], 100)[0]["metrics"]


def test_divergence_is_reported_at_the_same_step_for_every_chunk_length(tmp_path):
    """A non-finite objective ends the chunk where it appears; metrics.json names that step and the last
    finite value whatever the chunk length."""
    overrides = [
        "+experiment=overfit_synthetic",
        *SYNTHETIC_CI_DATA,
        "weighting=gdro",
        "run.lr_scale=null",
        "optim.lr=1e6",
        "run.log_grid_per_decade=null",
        "trainer.max_steps=3000",
        *QUIET_NO_CHECKPOINTS,
    ]
    results = {inner: train(tmp_path, overrides, inner)[0] for inner in (1, 1000, "auto")}
    steps = {inner: result["steps"] for inner, result in results.items()}
    assert all(result["status"] == "diverged" for result in results.values())
    assert len(set(steps.values())) == 1 and 0 < steps[1] < 100, steps
    assert results[1000]["diverged_at_step"] == steps[1]
    assert results[1000]["last_finite_loss"] == pytest.approx(results[1]["last_finite_loss"], rel=1e-9)
    assert f"at step {steps[1]} " in results[1000]["error"]


def test_the_stop_loss_ends_the_run_at_the_same_step_for_every_chunk_length(tmp_path):
    """Seed 003's rule (stop once the full training loss is below a threshold) in chunks of GD steps."""
    overrides = ["+experiment=minimizer_gd", "model.width=32", "callbacks.stop.stopping_threshold=5e-2"]
    overrides += ["trainer.max_steps=3000", "data.n_train=50", *QUIET_NO_CHECKPOINTS]
    plain = train(tmp_path, overrides, 1)
    assert 0 < plain[0]["steps"] < 3000  # it stopped on the threshold
    for inner in (100, "auto"):
        chunked = train(tmp_path, overrides, inner)
        assert chunked[0]["steps"] == plain[0]["steps"], inner
        assert chunked[0]["metrics"]["train_eval/loss"] == pytest.approx(
            plain[0]["metrics"]["train_eval/loss"], rel=1e-9
        )


def test_the_rise_test_of_the_learning_rate_search_sees_every_step_in_chunks(tmp_path):
    """MonotoneDecay asks for a chunk end after every full-batch step: its record is the same for any
    chunk length (a rise is caught at its step, not at a chunk's end)."""
    monotone = [
        "+callbacks.monotone._target_=overparam.callbacks.monotone.MonotoneDecay",
        f"+callbacks.monotone.dirpath={tmp_path}/${{run.inner_steps}}",
        "+callbacks.monotone.threshold=1e-9",
    ]
    overrides = ["+experiment=minimizer_gd", "recipe=adagrad", "model.width=32", "optim.lr=1.0"]
    overrides += ["~lr_search", "trainer.max_steps=60", *QUIET_NO_CHECKPOINTS, *monotone]
    records = {}
    for inner in (1, 100):
        train(tmp_path, overrides, inner)
        records[inner] = json.loads((tmp_path / str(inner) / "monotone.json").read_text())
    assert (
        records[1]["steps"] == records[100]["steps"] and len(records[100]["losses"]) == records[100]["steps"]
    )
    assert records[100]["losses"] == pytest.approx(records[1]["losses"], rel=1e-9)
