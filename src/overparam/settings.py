"""The schema of `conf/train.yaml`: Hydra structured configs (dataclasses in the ConfigStore) for the run
settings and the procedures. Hydra checks names and types when it composes; `sentence` turns its errors
into the one sentence a bad config gets everywhere else."""

from __future__ import annotations

import difflib
import itertools
import re
import typing
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, List  # noqa: UP035 - OmegaConf reads these annotations at runtime

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


@dataclass
class RunSettings:
    """How one run trains and measures (the `run` node)."""

    inner_steps: Any = 1  # optimizer steps per training_step: an integer ≥ 1, or auto
    lr_scale: float | None = None  # optim.lr = lr_scale / (q_max · c · λ_max(JJᵀ)) at θ0
    loss_reduction: str = "mean"  # mean: Σ q_i ℓ_i; sum: n·Σ q_i ℓ_i
    l2_to_init: float = 0.0  # μ of μ/2‖θ − θ0‖²
    eval_splits: List[str] = field(default_factory=lambda: ["val"])  # noqa: UP006
    extra_metrics: List[str] = field(default_factory=list)  # noqa: UP006 - balanced_acc, macro_f1, ece, auroc
    log_grid_per_decade: int | None = None
    ensemble: int = 1
    matmul_precision: str | None = None
    mitigation: str = "none"
    compile: Any = "auto"  # true | false | auto: compile full-batch steps (auto: ≥ 100,000 steps)
    compile_unroll: Any = "auto"  # compiled steps per graph: an integer ≥ 1, or auto (16 from 10^6 steps)


# The values a run setting may take, where its type alone does not say.
CHOICES = {
    "loss_reduction": ("mean", "sum"),
    "eval_splits": ("val", "test", "train"),
    "matmul_precision": ("highest", "high", "medium", None),
    "mitigation": ("none", "center", "asi"),
}


@dataclass
class LrSearch:
    """The largest learning rate on `grid` whose training loss never rises (procedures.lr_search)."""

    grid: List[float] = field(default_factory=lambda: [10 ** (-k / 2) for k in range(11)])  # noqa: UP006
    seed: int = 0
    cache_dir: str | None = None  # default: next to the run directory (the sweep directory in a multirun)
    on_quadratic_model: bool = True  # a loss with a quadratic model at zero outputs searches on that model


@dataclass
class SigmaSearch:
    """Seed 003's σ-shrinking remedy (procedures.sigma_search)."""

    factor: float = 0.7
    tolerance: float = 0.05
    max_rounds: int = 8
    min_sigma: float = 0.1
    max_step_ratio: float = 10.0
    monitor: str = "val/loss"


@dataclass
class DeepFeatureReweighting:
    """DFR's last-layer retraining after the run (procedures.dfr)."""

    c_grid: List[float] = field(default_factory=lambda: [1.0, 0.7, 0.3, 0.1, 0.07, 0.03, 0.01])  # noqa: UP006
    subsets: int = 20
    seed: int = 0
    cache_dir: str | None = None  # stage 1's features (default ~/.cache/overparam/features)


@dataclass
class TrainConfig:
    """`conf/train.yaml`: the component groups (checked against their constructors by `validate`) and the
    run's own settings."""

    data: Any = MISSING
    model: Any = MISSING
    loss: Any = MISSING
    weighting: Any = MISSING
    optim: Any = MISSING
    trainer: Any = MISSING
    callbacks: Any = None
    logger: Any = None
    name: str = MISSING
    seed: int = 0
    run: RunSettings = field(default_factory=RunSettings)
    lr_search: LrSearch | None = None
    sigma_search: SigmaSearch | None = None
    dfr: DeepFeatureReweighting | None = None
    ckpt_path: str | None = None
    objective: str = "best/val/worst_group_acc"
    figure: Any = None
    run_dir: str = MISSING


ConfigStore.instance().store(name="train_schema", node=TrainConfig)

TYPE_NAMES = {"Integer": "an integer", "Float": "a number", "Boolean": "true or false", "String": "a string"}


def sentence(error: BaseException) -> str | None:
    """One sentence for an error Hydra or OmegaConf raised while composing the config, or None."""
    cause = error
    while cause.__cause__ is not None and not hasattr(cause, "full_key"):
        cause = cause.__cause__
    message = str(getattr(cause, "msg", None) or cause).split("\n")[0]
    key = getattr(cause, "full_key", None) or quoted_key(str(error))
    missing = re.match(r"Key '(\w+)' (?:is )?not in", message)
    if missing and key:
        return unknown_setting(key, getattr(cause, "object_type", None), getattr(cause, "parent_node", None))
    converted = re.search(r"Value '(.*)' of type '\w+' could not be converted to (\w+)", message)
    if converted and key:
        expected = TYPE_NAMES.get(converted.group(2), converted.group(2))
        return f"{key} must be {expected}, got {literal(converted.group(1))}"
    absent = re.search(r"Could not delete '([\w/]+)'\. No match in the defaults list", str(error))
    if absent:
        name = absent.group(1)
        return f"~{name}: this config does not choose {name}, so there is nothing to remove"
    option = re.search(r"Could not find '([\w/]+)'", str(error))
    if option:
        group, _, name = option.group(1).rpartition("/")
        listed = str(error).partition("Available options in")[2].split("\n")[1:]
        names = [line.strip() for line in itertools.takewhile(lambda line: line.startswith("\t"), listed)]
        close = difflib.get_close_matches(name, names, n=1)
        hint = f"did you mean {close[0]}?" if close else f"available: {', '.join(names)}"
        return f"{group}={name} is not an option of {group}; {hint}"
    return None


def switched_off(error: BaseException, overrides: list[str]) -> str | None:
    """One sentence for an override that sets keys of an optional step that is off (null) in the composed
    config (`sigma_search.factor=0.5`, `dfr={subsets:5}`): OmegaConf cannot merge into a null node and
    fails with a traceback; the step's group switches it on first."""
    chain, cause = [], error
    while cause is not None:
        chain.append(str(cause))
        cause = cause.__cause__ or cause.__context__
    if not any("NoneType" in text for text in chain):
        return None
    hints = typing.get_type_hints(TrainConfig)
    steps = {
        f.name for f in fields(TrainConfig) if any(is_dataclass(a) for a in typing.get_args(hints[f.name]))
    }
    for override in overrides:
        key, assigns, _ = override.lstrip("+~").partition("=")
        name = key.split(".")[0]
        if assigns and name in steps and not override.startswith(f"+{name}="):
            return (
                f"{name} is off (null) in this config: switch it on with +{name}=default, then set its keys "
                f"one by one ({name}.<key>=<value>)"
            )
    return None


def unknown_setting(key: str, owner: type | None, node=None) -> str:
    name = key.rsplit(".", 1)[-1]
    parent = key.rpartition(".")[0]
    if owner is not None and is_dataclass(owner):
        allowed = [f.name for f in fields(owner)]
    else:  # a plain YAML node (a config group's option): the keys it has
        allowed = [
            str(k) for k in (node.keys() if hasattr(node, "keys") else []) if not str(k).startswith("_")
        ]
    close = difflib.get_close_matches(name, allowed, n=1)
    where = f" of {parent}" if parent else ""
    if close:
        return f"{key} is not a setting{where}; did you mean {close[0]}?"
    return f"{key} is not a setting{where}; allowed: {', '.join(sorted(allowed))}"


def quoted_key(text: str) -> str | None:
    found = re.search(r"override '([^']+)'", text)
    return found.group(1).lstrip("+~") if found else None


def literal(value: str) -> str:
    """How the value was written: numbers as numbers, anything else quoted."""
    try:
        float(value)
        return value
    except ValueError:
        return repr(value)
