"""The batched launcher composes a sweep's jobs once per shape of their overrides (`ValueOverrides`): every
job's config, its `hydra` node included, equals the one Hydra composes for it alone."""

from __future__ import annotations

import pytest
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.types import RunMode
from omegaconf import OmegaConf

import overparam.settings  # noqa: F401 - registers the schema `conf/train.yaml` extends
from conftest import CONF
from hydra_plugins.overparam_launcher.batched_launcher import ValueOverrides

JOBS = [
    # config groups × plain values: one composition per weighting, the rest filled in
    *(
        ["+experiment=grw_fig1", f"weighting={weighting}", f"optim.lr={lr}", f"seed={seed}"]
        for weighting in ("erm", "gdro_nu1", "chi2")
        for lr in (0.01, 0.005)
        for seed in (0, 1)
    ),
    # the same keys in another order, a value that is a list, an addition and a deletion: Hydra's own
    ["+experiment=grw_fig1", "seed=2", "optim.lr=0.02", "weighting=erm"],
    ["+experiment=grw_fig1", "weighting=erm", "run.eval_splits=[val,test]", "seed=3"],
    ["+experiment=grw_fig1", "weighting=erm", "+trainer.enable_progress_bar=false", "seed=4"],
    ["+experiment=grw_fig1", "weighting=erm", "~callbacks.checkpoint", "seed=5"],
    ["+experiment=grw_fig1", "weighting=erm", "~callbacks.checkpoint", "seed=6"],
]


@pytest.fixture(scope="module")
def loader_and_master():
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        master = loader.load_configuration("train", ["hydra.sweep.dir=/tmp/sweep"], RunMode.MULTIRUN)
        yield loader, master


def test_each_job_composed_from_its_shape_equals_hydras_own_composition(loader_and_master):
    loader, master = loader_and_master
    fast = ValueOverrides(loader)
    ours = [fast(master, job) for job in JOBS]
    assert len(fast.composed) == 7  # a shape per weighting and per line below, but seeds 5 and 6 share one
    for job, config in zip(JOBS, ours):
        theirs = loader.load_sweep_config(master, job)
        assert OmegaConf.to_yaml(config) == OmegaConf.to_yaml(theirs), job
    assert ours[0].optim.lr == 0.01 and ours[1].seed == 1  # not the first job's values
    assert ours[1].hydra.job.override_dirname == "optim.lr=0.01,seed=1,weighting=erm"
    ours[0].optim.lr = 1.0  # each job's config is its own
    assert fast(master, JOBS[0]).optim.lr == 0.01
