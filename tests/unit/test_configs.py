"""Every config option composes and instantiates; every experiment composes with CI overrides."""

from __future__ import annotations

import json

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from conftest import CONF, TrainingFacts, compose_config
from overparam.components import build_reweighter

OPTIONS = sorted(p for p in CONF.glob("*/*.yaml") if p.parent.name not in ("experiment", "hydra"))
EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
NEEDS_FILES = {"celeba", "waterbirds", "metadata_images", "civilcomments", "multinli"}
# Groups whose options set keys elsewhere in the config (`@package _global_` or `model`), added with `+`.
# Groups outside train.yaml's defaults list: an option is added with `+` (`+dfr=default`).
APPENDED_GROUPS = {"dfr", "sigma_search", "lr_search"}
SETTING_GROUPS = {"recipe": "optim", "node_scaling": "model", "debug": "trainer"}


@pytest.mark.parametrize("option", OPTIONS, ids=lambda p: f"{p.parent.name}={p.stem}")
def test_every_option_composes_and_instantiates(option, tmp_path):
    group, name = option.parent.name, option.stem
    if group in SETTING_GROUPS:
        base = ["+experiment=asym_sim"] if group != "recipe" else ["+experiment=minimizer_gd"]
        prefix = ""  # recipe, node_scaling and debug are in the defaults lists
        plain, chosen = compose_config(base), compose_config([*base, f"{prefix}{group}={name}"])
        assert chosen[SETTING_GROUPS[group]]._target_  # the option composes onto its experiment
        assert chosen != plain or name in ("gd", "iid", "code")  # and changes it (but for the defaults)
        return
    # ${hydra:...} values only exist inside a launched job (tested end to end in test_loggers.py).
    job_only = (
        ["logger.wandb.name=n", "logger.wandb.group=g", "logger.wandb.tags=[t]"] if name == "wandb" else []
    )
    plus = "+" if group in APPENDED_GROUPS else ""
    cfg = compose_config([f"{plus}{group}={name}", *job_only], run_dir=tmp_path)
    node = cfg[group] if group != "optim" else cfg.optim
    if group == "data" and name in NEEDS_FILES:
        assert OmegaConf.is_missing(node, "root")  # instantiated against fixtures in test_image_data.py
    elif group == "data" and name == "feature_file":
        assert OmegaConf.is_missing(
            node, "path"
        )  # instantiated against a generated .npz in test_asymmetric.py
    elif group == "data" and name == "fashion_pairs":  # reads the IDX files you supply (test_minimizer_*)
        with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
            instantiate(node).setup("fit")
    elif group == "data":
        data = instantiate(node)
        data.setup("fit")
        batch = next(iter(data.train_dataloader()))
        assert batch.x.shape[0] == batch.y.shape[0] == batch.group.shape[0] == batch.index.shape[0]
    elif group == "model" and name == "bert":
        assert OmegaConf.is_missing(node, "path")  # built from a saved tiny BERT in test_text_data.py
    elif group == "model":
        in_shape = (3, 32, 32)
        net = instantiate(node, in_shape=in_shape, out_features=1)  # every family has a scalar-output form
        assert net(torch.randn(2, *in_shape)).shape == (2, 1)
    elif group == "weighting":
        groups = torch.tensor([0] * 5 + [1] * 3 + [2] * 2 + [3] * 6)
        reweighter = build_reweighter(
            compose_config([f"weighting={name}"]), TrainingFacts(groups, groups // 2)
        )
        q = reweighter(torch.rand(8), torch.tensor([0, 1, 2, 3, 0, 1, 2, 3]), torch.arange(8))
        assert torch.isclose(q.sum(), torch.tensor(1.0))
    elif group == "optim":
        optimizer = instantiate(node)([torch.nn.Parameter(torch.zeros(2))])
        assert optimizer.param_groups[0]["lr"] == node.lr
    elif group == "loss":
        classes = name in ("cross_entropy", "class_balanced")  # the latter's base: the cross-entropy
        outputs = torch.randn(3, 2) if classes else torch.randn(3, 1)
        targets = torch.tensor([0, 1, 1]) if classes else torch.tensor([-1.0, 1.0, 1.0])
        facts = {"class_counts": torch.tensor([1, 2])} if name == "class_balanced" else {}
        losses = instantiate(node, **facts)(outputs, targets)
        assert losses.shape == (3,) and bool((losses >= 0).all())
    elif group == "trainer" and node.accelerator == "gpu" and not torch.cuda.is_available():
        assert node.precision == "bf16-mixed"  # composes; building it needs a GPU
    else:
        built = instantiate(node)
        assert built is not None and (
            group != "logger" or all(logger is not None for logger in built.values())
        )


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes_with_ci_overrides(experiment):
    files = ["data.root=/x"] if any(name in experiment for name in NEEDS_FILES) else []
    cfg = compose_config(
        [f"+experiment={experiment}", "trainer.accelerator=cpu", "trainer.max_epochs=1", *files]
    )
    assert cfg.data._target_ and cfg.model._target_ and cfg.weighting._target_


def test_real_data_experiments_use_the_papers_settings():
    celeba = compose_config(["+experiment=gdro_celeba"])
    assert (celeba.optim.lr, celeba.optim.momentum, celeba.data.batch_size) == (1e-3, 0.9, 400)
    assert celeba.trainer.max_epochs == 250 and celeba.model.pretrained is False
    assert (celeba.data.target, celeba.data.spurious) == ("Blond_Hair", "Male")
    assert celeba.weighting.missing_groups == "drop"  # the authors' code: an absent group leaves the step
    birds = compose_config(["+experiment=iw_waterbirds"])
    assert (birds.optim.lr, birds.data.batch_size, birds.trainer.max_epochs) == (1e-4, 128, 500)
    assert birds.model.pretrained is True and birds.weighting.mode == "sampler"
    assert compose_config(["+experiment=erm_waterbirds"]).weighting._target_.endswith("ERM")


def sweep_of(experiment: str) -> dict[str, list[str]]:
    """The experiment's `hydra.sweeper.params` (what `-m` sweeps): each key's values as override strings."""
    from hydra import compose, initialize_config_dir
    from hydra.core.override_parser.overrides_parser import OverridesParser

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=[f"+experiment={experiment}"], return_hydra_config=True)
    params = cfg.hydra.sweeper.params or {}
    parsed = OverridesParser.create().parse_overrides([f"{key}={value}" for key, value in params.items()])
    values = {}
    for item in parsed:
        if not item.is_sweep_override():
            values[item.key_or_group] = [item.get_value_element_as_str()]
        elif "INTERVAL" not in item.value_type.name:  # Optuna's interval(a, b) has no list of values
            values[item.key_or_group] = list(item.sweep_string_iterator())
    return values


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_swept_config_groups_give_distinct_runs(experiment):
    """A swept group (recipe, node_scaling, model …) whose keys other swept keys override would run the
    same job once per option: each option must change the config."""
    files = ["data.root=/x"] if any(name in experiment for name in NEEDS_FILES) else []
    sweep = sweep_of(experiment)
    for group, options in sweep.items():
        if "." in group or len(options) < 2:
            continue
        others = [f"{key}={values[0]}" for key, values in sweep.items() if key != group]
        configs = {
            json.dumps(
                OmegaConf.to_container(
                    compose_config([f"+experiment={experiment}", *files, *others, f"{group}={option}"])
                ),
                sort_keys=True,
            )
            for option in options
        }
        assert len(configs) == len(options), f"{experiment}: sweeping {group} over {options} repeats runs"


def test_sigma_search_and_the_grid_sweep_what_their_headers_say():
    assert sweep_of("minimizer_sigma_search")["recipe"] == ["gd"]
    assert sweep_of("asym_grid")["node_scaling"] == ["iid"] and len(sweep_of("asym_grid")["model.gamma"]) == 6


def composed_with_hydra(overrides: list[str]):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("train", overrides=overrides, return_hydra_config=True)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_an_experiment_sweeps_what_its_own_file_says(experiment):
    """No experiment inherits a sweep: the bases it builds on (conf/experiment/base/) hold none, so what
    `-m` sweeps is exactly the file's own `hydra.sweeper.params`."""
    own = OmegaConf.load(CONF / "experiment" / f"{experiment}.yaml")
    stated = OmegaConf.select(own, "hydra.sweeper.params", default=None) or {}
    files = ["data.root=/x"] if any(name in experiment for name in NEEDS_FILES) else []
    composed = composed_with_hydra([f"+experiment={experiment}", *files]).hydra.sweeper.get("params") or {}
    assert dict(composed) == dict(stated), experiment


def test_bases_hold_no_sweep_and_no_name():
    bases = sorted((CONF / "experiment" / "base").glob("*.yaml"))
    assert bases
    for base in bases:
        assert "hydra" not in OmegaConf.load(base), base.name
    for path in (CONF / "experiment").rglob("*.yaml"):
        assert "name" not in OmegaConf.load(path), f"{path.name}: the name is the experiment's option"


def test_the_run_directory_is_named_after_the_chosen_experiment():
    import overparam  # noqa: F401 - registers the experiment_name resolver

    chosen = composed_with_hydra(["+experiment=grw_fig1"]).hydra
    assert chosen.run.dir.startswith("outputs/grw_fig1/") and chosen.sweep.dir.startswith(
        "multirun/grw_fig1/"
    )
    default = composed_with_hydra([]).hydra
    assert default.run.dir.startswith("outputs/cmnist/")


def test_the_readme_config_group_table_lists_every_option():
    """The config-group table (docs/configuration.md) cannot drift from conf/: every option is in its row."""
    import re

    readme = (CONF.parent / "docs" / "configuration.md").read_text()
    rows = dict(re.findall(r"^\| `(\w+)` \| (.+?) \|", readme, flags=re.M))
    for group in sorted(p for p in CONF.iterdir() if p.is_dir() and p.name not in ("experiment", "hydra")):
        named = set(re.findall(r"`(\w+)`", rows.get(group.name, "")))
        missing = sorted(option.stem for option in group.glob("*.yaml") if option.stem not in named)
        assert not missing, f"docs/configuration.md config-group table, row {group.name}: {missing}"


def test_every_option_says_what_it_is_for_and_help_lists_it():
    """`python train.py --help` lists each group's options with the first line of their header comment."""
    from conftest import run_cli

    result = run_cli(["--help"])
    assert result.returncode == 0, result.stderr[-2000:]
    for option in OPTIONS + sorted((CONF / "experiment").glob("*.yaml")):
        lines = [line for line in option.read_text().splitlines() if "@package" not in line]
        assert lines[0].startswith("# "), f"{option.parent.name}/{option.name} has no header comment"
        listed = f"  {option.stem:<34} {lines[0][2:].strip()}"
        assert listed in result.stdout, listed
    assert "python train.py --cfg job -p weighting" in result.stdout and "debug=default" in result.stdout


def test_debug_is_a_one_batch_smoke_run(tmp_path):
    from conftest import QUIET
    from overparam.entry import execute

    result = execute(compose_config(["debug=default", *QUIET], tmp_path))
    assert result.status == "completed" and result.steps == 1


GALLERY = [line.split() for line in (CONF.parent / "docs" / "gallery.txt").read_text().splitlines()]


@pytest.mark.parametrize("line", [g for g in GALLERY if g and not g[0].startswith("#")], ids=lambda g: g[0])
def test_every_gallery_line_composes_and_validates(line):
    """`make figures` runs these lines: each composes (first value of every sweep) and passes validation."""
    import re

    from overparam.validate import validate

    experiment, *overrides = line
    first_values = [o if "[" in o else re.sub(r"=([^,]+),.*$", r"=\1", o) for o in overrides]
    validate(compose_config([f"+experiment={experiment}", *first_values, "callbacks.checkpoint=null"]))
