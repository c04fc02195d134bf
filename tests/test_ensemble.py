"""`run.ensemble=S`: S seeds trained as one batched model, each member equal to its single run."""

from __future__ import annotations

import copy
import json

import pandas as pd
import pytest
import torch
from torch import nn

from conftest import QUIET_NO_RESUME, compose_config
from overparam.ensemble import EnsembleNet
from overparam.entry import execute
from overparam.errors import ConfigError
from overparam.results.collect import collect

SETTINGS = [
    "data=mnist_pairs",
    "data.n_train=60",
    "model=mlp",
    "model.width=64",
    "model.depth=2",
    "loss=squared",
    "optim=gd",
    "optim.lr=0.5",
    "trainer=full_batch",
    "trainer.max_steps=200",
    "trainer.log_every_n_steps=1",
    "run.inner_steps=20",
    "run.eval_splits=[val,test]",
    *QUIET_NO_RESUME,
]


@pytest.mark.parametrize("weighting", ["erm", "gdro"])
def test_each_member_of_an_ensemble_equals_the_single_run_with_its_seed(tmp_path, weighting):
    sweep = tmp_path / "sweep"
    execute(
        compose_config([*SETTINGS, f"weighting={weighting}", "seed=3", "run.ensemble=3"], sweep / "ensemble")
    )
    for k in range(3):
        execute(
            compose_config([*SETTINGS, f"weighting={weighting}", f"seed={3 + k}"], tmp_path / f"single{k}")
        )
        member = json.loads((sweep / "ensemble" / f"member={k}" / "metrics.json").read_text())
        single = json.loads((tmp_path / f"single{k}" / "metrics.json").read_text())
        assert member["status"] == single["status"] == "completed" and member["steps"] == single["steps"]
        assert member["config"]["seed"] == 3 + k
        assert set(member["metrics"]) == set(single["metrics"])  # its own objective included
        for key, value in member["metrics"].items():
            assert value == pytest.approx(single["metrics"][key], rel=1e-9, abs=1e-12), key
        logged = pd.read_csv(sweep / "ensemble" / f"member={k}" / "metrics.csv")
        alone = pd.read_csv(tmp_path / f"single{k}" / "metrics.csv")
        curve = "val/worst_group_acc" if weighting == "erm" else "weights/group/digit0"
        assert logged[curve].dropna().tolist() == pytest.approx(alone[curve].dropna().tolist(), rel=1e-9)
    members = json.loads((sweep / "ensemble" / "member=1" / "metrics.json").read_text())["metrics"]
    assert members != json.loads((sweep / "ensemble" / "member=0" / "metrics.json").read_text())["metrics"]
    table = collect(sweep)  # the collector sees three runs, not the ensemble's own directory
    assert len(table) == 3 and sorted(table["seed"].astype(int)) == [3, 4, 5]


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["data.batch_size=16"], r"^ensemble members must see the same batches: set data\.batch_size=null"),
        (["data.seed=${seed}"], r"^ensemble members must share the data, but data\.seed follows seed"),
        (
            [
                "+callbacks.rise._target_=overparam.callbacks.monotone.MonotoneDecay",
                "+callbacks.rise.dirpath=${run_dir}",
                "+callbacks.rise.threshold=0.001",
            ],
            r"^callbacks\.rise does not support run\.ensemble>1",
        ),
    ],
)
def test_an_ensemble_that_cannot_match_its_single_runs_is_refused(tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message):
        execute(compose_config([*SETTINGS, "run.ensemble=2", *overrides], tmp_path))


def test_members_left_out_of_the_forward_keep_their_buffers_and_the_others_update_theirs():
    """With `training_rows`, the stacked forward runs only those members: their outputs and the running
    statistics their norms update are what each member alone gives; the others' outputs are zeros and
    their buffers stay as they were."""
    torch.manual_seed(0)
    members = [nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)) for _ in range(3)]
    stacked = EnsembleNet(copy.deepcopy(members))
    x = torch.randn(8, 3)
    stacked.training_rows = torch.tensor([0, 2])
    outputs = stacked(x)
    params, buffers = stacked.member_state()
    for k in (0, 2):
        torch.testing.assert_close(outputs[k], members[k](x))
        torch.testing.assert_close(buffers["1.running_mean"][k], members[k][1].running_mean)
    assert outputs[1].eq(0).all()
    torch.testing.assert_close(buffers["1.running_mean"][1], torch.zeros(4))
    assert buffers["1.num_batches_tracked"].tolist() == [1, 0, 1]
