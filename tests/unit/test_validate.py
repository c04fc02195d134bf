"""Bad input fails before training with one sentence that names the key and what is expected."""

from __future__ import annotations

import pytest

from conftest import QUIET, compose_config, run_cli
from overparam.entry import execute
from overparam.errors import ConfigError

BAD_CONFIGS = [
    (["optim.lr=-0.1"], r"^optim\.lr must be > 0, got -0\.1$"),
    (["optim.lr=0"], r"^optim\.lr must be > 0"),
    (["optim.lr=fast"], r"^optim\.lr must be a number, got 'fast'$"),
    (["optim.weight_decay=-1"], r"^optim\.weight_decay must be ≥ 0"),
    (["model.width=0"], r"^model\.width must be an integer ≥ 1, got 0$"),
    (["model.width=abc"], r"^model\.width must be an integer, got 'abc'$"),
    (["+model.widht=3"], r"^model\.widht is not a setting of MLP; did you mean width\?$"),
    (
        ["+trainer.max_epoch=3"],
        r"^trainer\.max_epoch is not a setting of Trainer; did you mean max_epochs\?$",
    ),
    (["trainer.max_epochs=2.5"], r"^trainer\.max_epochs must be an integer or null, got 2\.5$"),
    (["+trainer.precision=16-mixd"], r"^trainer\.precision must be one of .*bf16-mixed.*, got '16-mixd'$"),
    (["+seeed=1"], r"^seeed is not a setting; did you mean seed\?$"),
    (["seed=1.5"], r"^seed must be an integer, got 1\.5$"),
    (["run.loss_reduction=avg"], r"^run\.loss_reduction must be one of mean, sum, got 'avg'$"),
    (
        ["run.eval_splits=[val,tset]"],
        r"^run\.eval_splits must be a list of val, test, train, got \['val', 'tset'\]$",
    ),
    (["data.batch_size=abc"], r"^data\.batch_size must be an integer or null, got 'abc'$"),
    (["weighting.eta=x"], r"^weighting\.eta must be a number, got 'x'$"),
    (
        ["data._target_=overparam.data.nope.X"],
        r"^data\._target_ 'overparam\.data\.nope\.X' cannot be imported",
    ),
    (
        ["+callbacks.checkpoint.monitr=x"],
        r"^callbacks\.checkpoint\.monitr is not a setting of ModelCheckpoint",
    ),
    (["callbacks.checkpoint.mode=maxx"], r"^callbacks\.checkpoint: `mode` can be min, max but got maxx$"),
    (
        ["callbacks.resume.every_n_epochs=0"],
        r"^callbacks\.resume\.every_n_epochs must be an integer ≥ 1, got 0$",
    ),
    (
        ["optim=adam", "+optim.betas=[0.9]"],
        r"^optim\.betas must be a list of 2 values, each a number, got \[0\.9\]$",
    ),
    (["model.activation=swish"], r"^model\.activation must be one of relu, tanh, gelu, softplus, sigmoid"),
    (["weighting.eta=0"], r"^weighting\.eta must be a number > 0 \(the group-weight step size η_q\), got 0$"),
    (["weighting.eta=-1"], r"^weighting\.eta must be a number > 0"),
    (["weighting=iw", "weighting.mode=both"], r"^weighting\.mode must be one of loss, sampler, got 'both'$"),
    (
        ["weighting=iw", "weighting.mode=sampler", "data.batch_size=null"],
        r"set data\.batch_size to an integer",
    ),
    (["data.batch_size=0"], r"^data\.batch_size must be a positive integer or null"),
    (["data.p_agree=1.5"], r"^data\.p_agree must be a probability in \[0, 1\], got 1\.5$"),
    (["data.labels=onehot"], r"^data\.labels must be one of index, pm1, 01, got 'onehot'$"),
    (["data.n_train=6000"], r"^data\.n_train \+ n_val \+ n_test must be ≤ 5000"),
    (["run.inner_steps=0"], r"^run\.inner_steps must be an integer ≥ 1 or auto, got 0$"),
    (["run.compile=sometimes"], r"^run\.compile must be true, false or auto, got 'sometimes'$"),
    (["run.compile_unroll=0"], r"^run\.compile_unroll must be an integer ≥ 1 or auto, got 0$"),
    (["run.inner_stepz=3"], r"^run\.inner_stepz is not a setting of run; did you mean inner_steps\?$"),
    (["+run.inner_stepz=3"], r"^run\.inner_stepz is not a setting of run; did you mean inner_steps\?$"),
    (["run.lr_scale=fast"], r"^run\.lr_scale must be a number, got 'fast'$"),
    (["run.ensemble=0"], r"^run\.ensemble must be an integer ≥ 1, got 0$"),
    (
        ["model=linear", "model.width=3"],
        r"^model\.width is not a setting of model; allowed: bias, init_scale$",
    ),
    (
        ["run.matmul_precision=fast"],
        r"^run\.matmul_precision must be one of highest, high, medium, null, got 'fast'$",
    ),
    (["weighting=gdr"], r"^weighting=gdr is not an option of weighting; did you mean gdro\?$"),
    (
        ["run.inner_steps=10"],
        r"^run.inner_steps=10 would take that many steps on every mini-batch; set run.inner_steps=1",
    ),
    (
        ["data=mnist_pairs", "model=linear", "loss=cross_entropy"],
        r"^loss=cross_entropy needs one output per class",
    ),
    (["data=celeba"], r"^data: Missing mandatory value: data\.root$"),
    (
        ["data=waterbirds", "data.root=/no/such/dir"],
        r"^data: Waterbirds not found: /no/such/dir/metadata\.csv",
    ),
    (["model=resnet18", "data=waterbirds", "data.root=/x"], r"^data: Waterbirds not found"),
    (["model=resnet18"], r"^model: resnet18 needs RGB images \(3 channels\)"),
]


@pytest.mark.parametrize(
    "overrides,message", BAD_CONFIGS, ids=lambda v: " ".join(v) if isinstance(v, list) else ""
)
def test_bad_config_gives_one_sentence_naming_the_key(overrides, message, tmp_path):
    with pytest.raises(ConfigError, match=message) as raised:
        execute(compose_config([*QUIET, *overrides], tmp_path))
    assert "\n" not in str(raised.value)
    assert not (tmp_path / "checkpoints").exists()  # nothing trained


def test_cli_prints_the_sentence_and_exits_nonzero(tmp_path):
    result = run_cli(["model.width=0", f"hydra.run.dir={tmp_path}"])
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1] == "error: model.width must be an integer ≥ 1, got 0"


def test_unknown_group_option_lists_the_available_ones(tmp_path):
    result = run_cli(["weighting=foo", f"hydra.run.dir={tmp_path}"])
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert (
        last.startswith("error: weighting=foo is not an option of weighting; available: ") and "gdro" in last
    )


@pytest.mark.parametrize("override", ["sigma_search.factor=0.5", "dfr={subsets:5}", "lr_search={seed:1}"])
def test_a_key_of_a_step_left_off_says_how_to_switch_it_on(override, tmp_path):
    name = override.split("=")[0].split(".")[0]
    result = run_cli([override, f"hydra.run.dir={tmp_path}"])
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: {name} is off (null) in this config: switch it on with +{name}=default, then set its keys "
        f"one by one ({name}.<key>=<value>)"
    )
    assert not any(tmp_path.iterdir())  # reported before anything is written


def test_a_step_switched_on_by_its_group_takes_keys_one_by_one():
    cfg = compose_config(["+sigma_search=default", "sigma_search.factor=0.5", "+lr_search=default"])
    assert cfg.sigma_search.factor == 0.5 and cfg.sigma_search.max_rounds == 8
    assert cfg.lr_search.grid[0] == 1.0 and cfg.lr_search.seed == 0


def test_a_recipes_search_is_removed_with_a_tilde_and_an_absent_one_is_named(tmp_path):
    base = ["+experiment=minimizer_gd", "recipe=adagrad"]
    assert compose_config(base).lr_search.grid[0] == 1.0
    assert compose_config([*base, "~lr_search"]).lr_search is None
    result = run_cli(["~lr_search", f"hydra.run.dir={tmp_path}"])
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "error: ~lr_search: this config does not choose lr_search, so there is nothing to remove"
    )
