"""`run.compile=true`: full-batch steps as compiled graphs equal the eager run to 1e-12 in float64, every
step-indexed event included; what cannot be compiled runs eagerly with one sentence saying why."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from hydra.utils import instantiate

from conftest import NO_PROGRESS, compose_config, execute_stacked, run_cli
from overparam.components import compile_steps, unrolled_steps
from overparam.entry import execute
from overparam.errors import ConfigError

SMALL = [
    "data=mnist_pairs",
    "data.n_train=60",
    "model=mlp",
    "model.width=32",
    "model.depth=2",
    "loss=squared",
    "optim=gd",
    "optim.lr=0.3",
    "trainer=full_batch",
    "trainer.max_steps=150",
    "trainer.log_every_n_steps=1",
    "run.inner_steps=40",
    "run.eval_splits=[val,test,train]",
    "~callbacks.checkpoint",
    *NO_PROGRESS,
]
# run.compile_unroll=k > 1: k steps as one graph (the network on the parameters' values, the optimizer's
# update in its functional form); 1: each step's gradient and update as two graphs.
CASES = {
    "group DRO, momentum": ["weighting=gdro", "optim.momentum=0.9", "run.compile_unroll=2"],
    "adam, penalty to θ0": ["optim=adam", "optim.lr=0.003", "run.l2_to_init=0.1", "run.compile_unroll=2"],
    "adagrad, sum loss": ["optim=adagrad", "optim.lr=0.01", "run.loss_reduction=sum", "run.compile_unroll=1"],
    # The stop loss ends the run at its exact step, inside a chunk: inside 4 steps taken at once, which are
    # then undone and taken one by one.
    "stop loss": [
        "run.compile_unroll=4",
        "weighting=erm",  # the objective is the training loss, so the first step below the threshold ends it
        "trainer.max_steps=1000",
        "+callbacks.stop._target_=lightning.pytorch.callbacks.EarlyStopping",
        "+callbacks.stop.monitor=train_eval/loss",
        "+callbacks.stop.stopping_threshold=0.01",
        "+callbacks.stop.patience=1000000",
    ],
    # Three seeds stacked in one model: each member's gradient and update in the same graphs.
    "stacked members": ["weighting=gdro", "run.ensemble=3", "run.compile_unroll=2"],
    # χ²-DRO's dual solved in closed form (a sort and prefix sums), so the whole step is one graph.
    "chi-square DRO": ["weighting=chi2", "run.compile_unroll=1"],
}


def assert_same(compiled_dir, eager_dir) -> dict:
    compiled, eager = (json.loads((d / "metrics.json").read_text()) for d in (compiled_dir, eager_dir))
    assert compiled["status"] == eager["status"] == "completed"
    assert compiled["steps"] == eager["steps"]
    assert set(compiled["metrics"]) == set(eager["metrics"])
    for key, value in eager["metrics"].items():
        assert compiled["metrics"][key] == pytest.approx(value, rel=1e-12, abs=1e-12), key
    logged, alone = pd.read_csv(compiled_dir / "metrics.csv"), pd.read_csv(eager_dir / "metrics.csv")
    pd.testing.assert_frame_equal(logged[alone.columns], alone, rtol=1e-12, atol=1e-12)
    return compiled


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_compiled_run_equals_the_eager_run(tmp_path, case):
    overrides = [*SMALL, *CASES[case]]
    execute(compose_config([*overrides, "run.compile=false"], tmp_path / "eager"))
    execute(compose_config([*overrides, "run.compile=true"], tmp_path / "compiled"))
    record = assert_same(tmp_path / "compiled", tmp_path / "eager")
    assert record["compile"]["fallback"] is None
    unrolled = "run.compile_unroll=1" not in CASES[case]
    assert set(record["compile"]["seconds"]) == {"gradients", "update"} | (
        {"unrolled"} if unrolled else set()
    )
    if case == "stop loss":
        assert record["steps"] % 40 != 0  # stopped by the threshold inside a chunk, where the eager run did


def test_a_stacked_group_unrolled_equals_its_eager_group_member_by_member(tmp_path):
    """Members that diverge and members whose own budgets end inside a chunk: events inside 4 unrolled
    steps of a stacked group, each undone and retaken one by one, land where the eager group's do."""
    group = [*SMALL, "weighting=gdro", "optim.momentum=0.9"]
    jobs = [
        [*group, f"optim.lr={lr}", f"trainer.max_steps={steps}"] for lr in (0.3, 30) for steps in (50, 150)
    ]
    for mode in ("eager", "compiled"):
        switches = ["run.compile=false"] if mode == "eager" else ["run.compile=true", "run.compile_unroll=4"]
        execute_stacked(
            {tmp_path / mode / f"job{k}": [*job, *switches] for k, job in enumerate(jobs)},
            tmp_path / mode / "group",
        )
    for k in range(len(jobs)):
        compiled, eager = (
            json.loads((tmp_path / mode / f"job{k}" / "metrics.json").read_text())
            for mode in ("compiled", "eager")
        )
        assert (compiled["status"], compiled["steps"]) == (eager["status"], eager["steps"])
        assert compiled.get("diverged_at_step") == eager.get("diverged_at_step")
        for key, value in eager.get("metrics", {}).items():
            assert compiled["metrics"][key] == pytest.approx(value, rel=1e-12, abs=1e-12), key
        logged, alone = (
            pd.read_csv(tmp_path / mode / f"job{k}" / "metrics.csv") for mode in ("compiled", "eager")
        )
        pd.testing.assert_frame_equal(logged[alone.columns], alone, rtol=1e-12, atol=1e-12)
    statuses = [
        json.loads((tmp_path / "eager" / f"job{k}" / "metrics.json").read_text())["status"] for k in range(4)
    ]
    assert statuses == ["completed", "completed", "completed", "diverged"]  # lr 30 diverges after step 50
    group_record = json.loads((tmp_path / "compiled" / "group" / "metrics.json").read_text())
    assert "unrolled" in group_record["compile"]["seconds"]


ONE_TRACE = {
    # ERM's kept q, built in float32 before the first step, once made the second step trace the gradients
    # again (seconds per group).
    "seed 000 Fig. 1, float64": [
        "+experiment=grw_fig1",
        "callbacks=default",
        "~callbacks.checkpoint",
        *NO_PROGRESS,
    ],
    # The optimizer's state filling at the first compiled update once made the second trace it again.
    "a small MLP, the step-size rule": [*SMALL, "optim.lr=null", "run.lr_scale=0.5"],
}


@pytest.mark.parametrize("case", sorted(ONE_TRACE))
def test_a_compiled_stacked_group_traces_each_step_graph_once(tmp_path, case):
    """A stacked group of ERM, importance weighting and Group DRO members: the gradients and the update are
    traced once each, not again at the second step."""
    import torch._dynamo

    group = [*ONE_TRACE[case], "trainer.max_steps=50", "run.compile=true", "run.compile_unroll=1"]
    jobs = [[*group, f"weighting={name}"] for name in ("erm", "iw", "gdro")]
    torch._dynamo.utils.counters.clear()  # (kept across runs in the process)
    execute_stacked({tmp_path / f"job{k}": job for k, job in enumerate(jobs)}, tmp_path / "group")
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 2


@pytest.mark.parametrize(
    "budgets, graphs",
    [
        ((40, 40, 40, 150), 4),  # one member of four still trains: both graphs compiled again, for it
        ((40, 150, 150, 150), 2),  # three of four: they are not worth compiling again for
    ],
)
def test_a_compiled_group_compiles_again_only_when_the_members_still_training_halve(
    tmp_path, budgets, graphs
):
    """Ended members leave a compiled group's forward once those still training are at most half the rows
    it computes; each member still equals its eager run."""
    import torch._dynamo

    jobs = [[*SMALL, "weighting=gdro", f"trainer.max_steps={steps}"] for steps in budgets]
    torch._dynamo.utils.counters.clear()  # (kept across runs in the process)
    compiled = ["run.compile=true", "run.compile_unroll=1"]
    execute_stacked(
        {tmp_path / "compiled" / f"job{k}": [*job, *compiled] for k, job in enumerate(jobs)},
        tmp_path / "compiled" / "group",
    )
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == graphs
    execute_stacked(
        {tmp_path / "eager" / f"job{k}": [*job, "run.compile=false"] for k, job in enumerate(jobs)},
        tmp_path / "eager" / "group",
    )
    for k in range(len(jobs)):
        assert_same(tmp_path / "compiled" / f"job{k}", tmp_path / "eager" / f"job{k}")


def test_what_cannot_be_compiled_runs_eagerly_with_one_sentence(tmp_path):
    # JTT branches on its stage (a tensor) at every step: no single graph holds it, nor 4 steps of it; and
    # its restart drops the optimizer's state, which steps taken 4 at once then gather again.
    jtt = ["weighting=jtt", "weighting.identification_steps=30", "run.compile_unroll=4"]
    overrides = [*SMALL, *jtt, "trainer.max_steps=60", f"run_dir={tmp_path / 'compiled'}"]
    result = run_cli([*overrides, "run.compile=true"])
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [line for line in result.stdout.splitlines() if line.startswith("run.compile:")]
    assert len(lines) == 1 and "could not be compiled" in lines[0] and "runs eagerly" in lines[0]
    assert "Traceback" not in result.stdout + result.stderr
    execute(compose_config([*overrides[:-1], "run.compile=false"], tmp_path / "eager"))
    record = assert_same(tmp_path / "compiled", tmp_path / "eager")
    assert record["compile"]["fallback"] == lines[0]


def test_compiling_mini_batch_steps_is_refused_in_one_sentence(tmp_path):
    cfg = compose_config([*SMALL, "data.batch_size=16", "run.inner_steps=1", "run.compile=true"], tmp_path)
    with pytest.raises(ConfigError, match=r"run.compile=true compiles full-batch steps: set data.batch_size"):
        execute(cfg)


@pytest.mark.parametrize(
    ("steps", "members", "unroll"), [(1_000_000, 1, 16), (999_999, 1, 1), (100_000, 10, 16), (100_000, 9, 1)]
)
def test_auto_unrolls_only_runs_long_enough_to_repay_the_longer_compilation(steps, members, unroll):
    cfg = compose_config([*SMALL, "run.compile=true", f"trainer.max_steps={steps}"])
    assert unrolled_steps(cfg, members) == unroll


@pytest.mark.parametrize(
    ("overrides", "members", "compiled"),
    [
        (["trainer.max_steps=100000"], 1, True),
        (["trainer.max_steps=99999"], 1, False),  # seconds of compilation would not pay
        (["trainer.max_steps=10000"], 10, True),  # a stacked group: steps × members
        (["trainer.max_steps=10000"], 9, False),
        (["trainer.max_steps=100000", "data.batch_size=16", "run.inner_steps=1"], 1, False),  # mini-batches
    ],
)
def test_auto_compiles_long_full_batch_runs(overrides, members, compiled):
    cfg = compose_config([*SMALL, "run.compile=auto", *overrides])
    data = instantiate(cfg.data)
    assert compile_steps(cfg, data, members) is compiled


def test_compiled_kernels_are_kept_in_the_documented_folder_unless_the_user_chose_another(
    monkeypatch, tmp_path
):
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    from overparam.full_batch_step import compile_cache_dir

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", default_cache_dir())  # what importing torch sets
    assert compile_cache_dir() == tmp_path / "overparam" / "inductor"
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "mine"))
    assert compile_cache_dir() == tmp_path / "mine"
