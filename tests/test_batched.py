"""`hydra/launcher=batched`: jobs that differ only in batchable keys train as one stacked model, and each
job's directory holds what its single run writes, to 1e-9 in float64."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest
import torch
import yaml
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser

from conftest import NO_PROGRESS, compose_config, execute_stacked, run_cli
from overparam.ensemble import EnsembleNet
from overparam.entry import execute
from overparam.results.collect import collect

SMALL = [
    "data=mnist_pairs",
    "data.n_train=60",
    "loss=squared",
    "optim=gd",
    "optim.lr=0.3",
    "trainer=full_batch",
    "trainer.max_steps=120",
    "trainer.log_every_n_steps=1",
    "run.inner_steps=20",
    "run.eval_splits=[val,test]",
    "~callbacks.checkpoint",  # a best checkpoint per job (tested below)
    *NO_PROGRESS,
]
MLP = ["model=mlp", "model.width=32", "model.depth=2"]  # unless the case chooses its model
# One sweep per batchable key: its two values make one stacked group of two jobs.
KEYS = {
    "seed": ["seed=1,2"],
    "optim.lr": ["optim.lr=0.3,0.1"],
    "optim.weight_decay": ["optim.weight_decay=0,0.01"],
    "optim.momentum": ["optim.momentum=0,0.9"],
    "weighting": ["weighting=erm,gdro"],
    "weighting.eta": ["weighting=gdro", "weighting.eta=0.1,1.0"],
    "weighting.rho": ["weighting=chi2", "weighting.rho=0.5,2.0"],  # χ²-DRO solves its members at once
    "init scale": ["model=linear", "model.init_scale=0.1,1.0"],
    "model.sigma": ["model=deep_relu", "model.width=64", "model.sigma=1.0,2.0"],  # seed 003's σ
    "run.lr_scale": ["optim.lr=null", "run.lr_scale=0.5,0.9"],
    "run.l2_to_init": ["run.l2_to_init=0,0.05"],  # a member without the penalty beside one with it
    "loss": ["loss=squared,logistic"],
    # A member that ends inside the group's chunk (50), and one that ends at a chunk's end (60).
    "trainer.max_steps": ["trainer.max_steps=50,120"],
    "trainer.max_steps at a chunk end": ["trainer.max_steps=60,120", "weighting=gdro"],
    "loss.alpha": ["loss=polynomial_tail", "loss.alpha=1.0,2.0"],
    # Each member switches stage at its own step and restarts alone (its rows, its optimizer's rows).
    "JTT's stages": ["weighting=jtt", "weighting.identification_steps=30,70", "weighting.upweight=5"],
    "JTT's stages with momentum": [
        "weighting=jtt",
        "weighting.identification_steps=30,70",
        "weighting.upweight=5",
        "optim.momentum=0.9",
        "+optim.dampening=0.5",
    ],
    "JTT's stages with Adam": [
        "weighting=jtt",
        "weighting.identification_steps=30,70",
        "weighting.upweight=5",
        "optim=adam",
        "optim.lr=0.01",
    ],
}


def job_overrides(job) -> list[str]:
    return [line[2:] for line in (job / ".hydra" / "overrides.yaml").read_text().splitlines()]


def assert_same_run(member, single) -> None:
    ours, theirs = (json.loads((d / "metrics.json").read_text()) for d in (member, single))
    assert ours["status"] == theirs["status"] == "completed" and ours["steps"] == theirs["steps"]
    assert set(ours["metrics"]) == set(theirs["metrics"])
    for key, value in theirs["metrics"].items():
        assert ours["metrics"][key] == pytest.approx(value, rel=1e-9, abs=1e-12), key
    assert ours["lr"] == pytest.approx(theirs["lr"], rel=1e-12)
    assert set(ours["best"]) == set(theirs["best"])
    for key, value in theirs["best"].items():
        assert ours["best"][key] == (
            value if isinstance(value, str) else pytest.approx(value, rel=1e-9, abs=1e-12)
        )
    logged, alone = pd.read_csv(member / "metrics.csv"), pd.read_csv(single / "metrics.csv")
    assert set(logged.columns) == set(alone.columns)
    pd.testing.assert_frame_equal(logged[alone.columns], alone, rtol=1e-9, atol=1e-12)


def stacked_pair_and_single_runs(tmp_path, overrides: list[str], launcher: bool = True) -> list[tuple]:
    """A two-job batched sweep that must run as one stacked group (through `python train.py -m
    hydra/launcher=batched`, or in this process through `run_stacked`, which the launcher calls); each job
    and its single run (the same overrides, run alone), checked equal."""
    sweep = tmp_path / "sweep"
    if launcher:
        result = run_cli(["-m", "hydra/launcher=batched", *overrides, f"hydra.sweep.dir={sweep}"])
        assert result.returncode == 0, result.stderr[-3000:]
        assert "2 jobs as one stacked model" in result.stdout, result.stdout[-2000:]
    else:
        (jobs,) = BasicSweeper.split_arguments(OverridesParser.create().parse_overrides(overrides), None)
        execute_stacked(
            {sweep / f"job{k}": list(job) for k, job in enumerate(jobs)}, sweep / ".batched" / "group"
        )
    jobs = sorted(path.parent for path in sweep.glob("*/metrics.json"))
    assert len(jobs) == 2
    assert len(collect(sweep)) == 2  # the group's own directory is not a run
    pairs = []
    for k, job in enumerate(jobs):
        single = tmp_path / f"single{k}"
        execute(compose_config(job_overrides(job), single))
        assert_same_run(job, single)
        pairs.append((job, single))
    return pairs


@pytest.mark.parametrize("key", sorted(KEYS))
def test_each_job_of_a_stacked_group_equals_its_single_run(tmp_path, key):
    model = [] if any(o.startswith("model=") for o in KEYS[key]) else MLP
    stacked_pair_and_single_runs(tmp_path, [*SMALL, *model, *KEYS[key]], launcher=False)


def test_a_member_that_has_ended_is_left_out_of_the_groups_forward(tmp_path, monkeypatch):
    """Once the 50-step member has ended, each of the other's steps 50–119 runs the network on its rows
    alone (what the group costs falls to what its members still training cost); evaluation still sees
    both. Each job still equals its single run."""
    rows_per_call = []
    forward = EnsembleNet.forward

    def counted(net, x):
        rows_per_call.append(net.members if net.training_rows is None else len(net.training_rows))
        return forward(net, x)

    monkeypatch.setattr(EnsembleNet, "forward", counted)
    stacked_pair_and_single_runs(tmp_path, [*SMALL, *MLP, "trainer.max_steps=50,120"], launcher=False)
    assert rows_per_call.count(1) == 70
    assert rows_per_call[-1] == 2  # the final evaluation


def test_jobs_whose_data_follow_one_shared_seed_stack(tmp_path):
    """`data.seed: ${seed}` only splits a group whose seeds differ (then the data do)."""
    overrides = [*SMALL, *MLP, "seed=3", "data.seed=${seed}", "optim.lr=0.3,0.1"]
    stacked_pair_and_single_runs(tmp_path, overrides, launcher=False)


def test_a_stacked_jobs_hydra_files_load_to_what_the_basic_launcher_writes(tmp_path):
    """Each stacked job's `.hydra/` files hold what Hydra's basic launcher writes for the same job: only the
    launcher, the sweep directory and the job's directory in it differ."""
    sweep = [*SMALL, *MLP, "trainer.max_steps=20", "optim.lr=0.3,0.1"]
    for launcher in ("basic", "batched"):
        args = ["-m", f"hydra/launcher={launcher}", *sweep, f"hydra.sweep.dir={tmp_path / launcher}"]
        result = run_cli(args)
        assert result.returncode == 0, result.stderr[-3000:]
    assert "2 jobs as one stacked model" in result.stdout, result.stdout[-2000:]
    jobs = sorted(path.parent.parent for path in (tmp_path / "basic").glob("*/.hydra/config.yaml"))
    assert len(jobs) == 2

    def hydra_node(job) -> dict:
        hydra = yaml.safe_load((job / ".hydra" / "hydra.yaml").read_text())["hydra"]
        del hydra["launcher"], hydra["sweep"]["dir"], hydra["runtime"]["output_dir"]
        del hydra["runtime"]["choices"]["hydra/launcher"]
        launching = ("hydra/launcher=", "hydra.sweep.dir=")
        hydra["overrides"]["hydra"] = [o for o in hydra["overrides"]["hydra"] if not o.startswith(launching)]
        return hydra

    for job in jobs:
        stacked = tmp_path / "batched" / job.name
        for name in ("config.yaml", "overrides.yaml"):
            ours, theirs = (yaml.safe_load((d / ".hydra" / name).read_text()) for d in (stacked, job))
            assert ours == theirs, name
        assert hydra_node(stacked) == hydra_node(job)


BEST = {
    "step sizes, Group DRO": ["optim.lr=0.3,0.1", "weighting=gdro"],
    "own step budgets": ["trainer.max_steps=50,120"],  # the shorter member's checkpoints end with it
}


@pytest.mark.parametrize("case", sorted(BEST))
def test_each_member_keeps_the_best_checkpoint_its_single_run_keeps(tmp_path, case):
    with_checkpoint = [o for o in SMALL if o != "~callbacks.checkpoint"]
    for job, single in stacked_pair_and_single_runs(
        tmp_path, [*with_checkpoint, *MLP, *BEST[case]], launcher=False
    ):
        (name,) = {
            json.loads((d / "metrics.json").read_text())["best"]["best/checkpoint"] for d in (job, single)
        }
        ours, theirs = (torch.load(d / "checkpoints" / name, weights_only=False) for d in (job, single))
        assert (ours["epoch"], ours["global_step"]) == (theirs["epoch"], theirs["global_step"])
        assert set(ours["state_dict"]) == set(theirs["state_dict"])
        for key, value in theirs["state_dict"].items():
            torch.testing.assert_close(ours["state_dict"][key], value, rtol=1e-9, atol=1e-12)


PROBED = {
    # Seed 000 Fig. 1 with its theory probe and parameter snapshots, as `make figures` runs it.
    "theory": (
        ["+experiment=grw_fig1", "trainer.max_steps=300", "weighting=erm,gdro_nu1", "~callbacks.checkpoint"],
        "theory/dist_to_interpolator",
        ["snapshots.pt"],
    ),
    # The same with step budgets of their own: the shorter member's probes end with it.
    "theory, own step budgets": (
        ["+experiment=grw_fig1", "trainer.max_steps=150,300", "weighting=gdro_nu1", "~callbacks.checkpoint"],
        "theory/dist_to_interpolator",
        ["snapshots.pt"],
    ),
    # Seed 004's node-scaling probe and its pruning and transfer protocols, over node scalings.
    "node scaling": (
        [
            "+experiment=asym_regression",
            "model.width=100",
            "trainer.max_steps=200",
            "callbacks.protocols.transfer_ks=[10]",
            "callbacks.protocols.transfer_steps=50",
            "node_scaling=iid,g05_a07",
            "seed=0",
            "trainer.precision=64-true",  # float32 rounds stacked and single matmuls apart
        ],
        "probe/ntg_change",
        ["node_scaling.pt", "pruning.csv", "transfer.csv"],
    ),
    # Seed 002 Fig. 1's kernel probe (each member's own step size) on sklearn's digits.
    "kernel": (
        [
            "+experiment=arora_fig1",
            "data.source=digits",
            "data.n_train=100",
            "data.n_test=62",
            "data.targets=clean",
            "data.digits=[0,1]",
            "trainer.max_steps=200",
            "trainer.precision=64-true",  # the paper's float32 rounds stacked and single matmuls apart
            "run.lr_scale=0.5,0.9",
            "~callbacks.checkpoint",
        ],
        "theory/predicted_residual",
        ["snapshots.pt", "kernel_spectrum.pt"],
    ),
}


@pytest.mark.parametrize("probe", sorted(PROBED))
def test_probes_that_read_one_network_run_once_per_member_and_equal_the_single_runs(tmp_path, probe):
    overrides, column, artifacts = PROBED[probe]
    for job, single in stacked_pair_and_single_runs(tmp_path, [*overrides, *NO_PROGRESS]):
        assert column in pd.read_csv(job / "metrics.csv").columns
        for artifact in artifacts:
            if artifact.endswith(".csv"):
                ours, theirs = (pd.read_csv(d / artifact) for d in (job, single))
                pd.testing.assert_frame_equal(ours, theirs, rtol=1e-9, atol=1e-12)
                continue
            ours, theirs = (torch.load(d / artifact) for d in (job, single))
            assert ours.keys() == theirs.keys()
            for key, value in theirs.items():
                torch.testing.assert_close(ours[key], value, rtol=1e-9, atol=1e-12, msg=f"{artifact}: {key}")


def batched_sweep(sweep, *overrides: str):
    """`python train.py -m hydra/launcher=batched` on the small MLP setting into `sweep`."""
    result = run_cli(["-m", "hydra/launcher=batched", *SMALL, *MLP, *overrides, f"hydra.sweep.dir={sweep}"])
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_jobs_that_cannot_share_a_model_run_one_after_another_with_the_reason(tmp_path):
    result = batched_sweep(tmp_path, "data.n_train=40,60", "seed=1,2")
    assert "batched launcher: 4 jobs, 4 of them in 2 group(s) (data.n_train differs)" in result.stdout
    assert result.stdout.count("2 jobs as one stacked model") == 2
    again = batched_sweep(tmp_path, "data.n_train=40,60", "seed=1,2")  # finished: every job is skipped
    assert again.stdout.count("skipped:") == 4


def test_a_group_whose_widths_differ_splits_by_width_and_leaves_no_group_run_behind(tmp_path):
    """A width is a model setting like σ until the networks are built: the group then splits by it, each
    part stacked, and the sweep's results see exactly its four jobs."""
    result = batched_sweep(tmp_path, "model.width=16,32", "seed=1,2")
    assert "model.width changes the network's structure, so those 4 jobs split into 2 groups" in result.stdout
    assert result.stdout.count("2 jobs as one stacked model") == 2
    runs = collect(tmp_path)  # as `overparam.results` sees the sweep
    assert sorted(runs["status"]) == ["completed"] * 4


STOP_AT = [
    "run.eval_splits=[val,test,train]",
    "+callbacks.stop._target_=lightning.pytorch.callbacks.EarlyStopping",
    "+callbacks.stop.monitor=train_eval/loss",
    "+callbacks.stop.stopping_threshold=0.02",
    "+callbacks.stop.patience=1000000",
    "optim.lr=0.3,0.1",
]


@pytest.mark.parametrize(
    "weighting",
    # ERM's objective is the training loss: a run stops at the first step below the threshold, inside a
    # chunk. Group DRO's is not: its stop rule is checked at chunk ends.
    ["erm", "gdro"],
)
def test_each_member_stops_at_its_own_step_and_the_others_go_on(tmp_path, weighting):
    pairs = stacked_pair_and_single_runs(tmp_path, [*SMALL, *MLP, *STOP_AT, f"weighting={weighting}"])
    steps = sorted(json.loads((job / "metrics.json").read_text())["steps"] for job, _ in pairs)
    assert steps[0] < steps[1] < 120
    if weighting == "erm":
        assert steps[0] % 20 != 0  # stopped inside the group's chunk


def test_a_group_too_large_for_the_memory_is_split_into_groups_that_fit(tmp_path):
    nothing_fits = batched_sweep(tmp_path / "tiny", "seed=1,2,3,4", "hydra.launcher.memory_gib=1e-9")
    found = re.search(r"needs about [\d.]+ [MG]iB \(([\d.]+) MiB per member\)", nothing_fits.stdout)
    assert found, nothing_fits.stdout[-2000:]
    assert "its 4 jobs run one after another" in nothing_fits.stdout
    per_member_gib = float(found.group(1)) / 1024
    two_fit = batched_sweep(
        tmp_path / "two", "seed=1,2,3,4", f"hydra.launcher.memory_gib={2.5 * per_member_gib}"
    )
    assert "split into groups of 2" in two_fit.stdout, two_fit.stdout[-2000:]
    assert two_fit.stdout.count("2 jobs as one stacked model") == 2
    for sweep in ("tiny", "two"):
        statuses = [json.loads(p.read_text())["status"] for p in (tmp_path / sweep).glob("*/metrics.json")]
        assert statuses == ["completed"] * 4


@pytest.mark.parametrize(
    "overrides,reason",
    [
        (
            [
                "+callbacks.rise._target_=overparam.callbacks.monotone.MonotoneDecay",
                "+callbacks.rise.dirpath=${run_dir}",
                "+callbacks.rise.threshold=0.001",
            ],
            "callbacks.rise does not support run.ensemble>1",
        ),
        (["logger=tensorboard"], "logger.tensorboard logs one run per process"),
    ],
)
def test_a_group_that_cannot_be_stacked_says_why_and_runs_its_jobs_alone(tmp_path, overrides, reason):
    result = batched_sweep(tmp_path, *overrides, "seed=1,2")
    assert f"not stacked ({reason}" in result.stdout, result.stdout[-2000:]
    statuses = [json.loads(p.read_text())["status"] for p in tmp_path.glob("*/metrics.json")]
    assert statuses == ["completed", "completed"]


def test_a_diverging_member_is_frozen_at_its_step_and_the_others_go_on(tmp_path):
    result = batched_sweep(tmp_path / "sweep", "optim.lr=0.3,30", "optim.momentum=0.9", "weighting=gdro")
    assert "2 jobs as one stacked model" in result.stdout and "one after another" not in result.stdout
    jobs = {
        json.loads((p / "metrics.json").read_text())["config"]["optim"]["lr"]: p for p in job_dirs(tmp_path)
    }
    single = {}
    for lr, job in jobs.items():
        single[lr] = tmp_path / f"single{lr}"
        execute(compose_config(job_overrides(job), single[lr]))
    assert_same_run(jobs[0.3], single[0.3])
    ours, theirs = (json.loads((d / "metrics.json").read_text()) for d in (jobs[30], single[30]))
    assert ours["status"] == theirs["status"] == "diverged"
    assert 0 < ours["diverged_at_step"] == theirs["diverged_at_step"] == ours["steps"] < 120
    assert ours["steps"] == theirs["steps"]
    assert ours["error"].split(" (")[0] == theirs["error"].split(" (")[0]  # "…became nan at step t"
    assert ours["last_finite_loss"] == pytest.approx(theirs["last_finite_loss"], rel=1e-9)
    assert "metrics" not in ours and "metrics" not in theirs
    logged, alone = pd.read_csv(jobs[30] / "metrics.csv"), pd.read_csv(single[30] / "metrics.csv")
    pd.testing.assert_frame_equal(logged[alone.columns], alone, rtol=1e-9, atol=1e-12)


def job_dirs(tmp_path):
    return sorted(path.parent for path in (tmp_path / "sweep").glob("*/metrics.json"))


@pytest.mark.parametrize("budgets", ["1500", "25,1500"], ids=["one budget", "a member ends first"])
def test_an_interrupted_group_resumes_and_its_jobs_still_equal_their_single_runs(tmp_path, budgets):
    import signal
    import subprocess
    import sys
    import time

    from conftest import ROOT

    sweep = tmp_path / "sweep"
    longer = [*SMALL, *MLP, f"trainer.max_steps={budgets}", "seed=1,2"]
    command = [sys.executable, str(ROOT / "train.py"), "-m", "hydra/launcher=batched", *longer]
    process = subprocess.Popen(
        [*command, f"hydra.sweep.dir={sweep}"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    while not list(sweep.glob(".batched/*/checkpoints/last.ckpt")):
        assert process.poll() is None, process.stdout.read().decode()[-2000:]
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=300)
    (group,) = sweep.glob(".batched/*")
    assert json.loads((group / "metrics.json").read_text())["status"] == "stopped"
    assert not list(sweep.glob("*/metrics.json"))  # no job claims a result it did not reach
    batched_sweep(sweep, f"trainer.max_steps={budgets}", "seed=1,2")
    assert "Restored all states" in (group / "train.log").read_text()
    for k, job in enumerate(sorted(path.parent for path in sweep.glob("*/metrics.json"))):
        execute(compose_config(job_overrides(job), tmp_path / f"single{k}"))
        assert_same_run(job, tmp_path / f"single{k}")


def test_a_member_with_a_bad_value_sends_its_group_to_run_alone_where_it_fails_by_itself(tmp_path):
    result = batched_sweep(tmp_path, "optim.lr=0.3,-1")
    assert "not stacked (optim.lr must be > 0, got -1)" in result.stdout, result.stdout[-2000:]
    outcomes = {
        json.loads(path.read_text())["config"]["optim"]["lr"]: json.loads(path.read_text())["status"]
        for path in tmp_path.glob("*/metrics.json")
    }
    assert outcomes == {0.3: "completed", -1: "failed"}
