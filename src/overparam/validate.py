"""Check a composed config before any work: every key of every group against the signature of the class
its `_target_` names (the constructors are the schema), and the top-level keys against `RunSettings`.

A typo, a wrong type or a value outside a `Literal` stops the run with one sentence naming the key, the
value and what is allowed. Ranges (a width ≥ 1, a probability in [0, 1]) are checked by the constructors
themselves, which run before any data is loaded.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import importlib
import inspect
import math
import os
import types
import typing
from collections.abc import Sequence
from typing import Literal

from omegaconf import DictConfig, ListConfig, OmegaConf

from overparam.errors import ConfigError


@dataclasses.dataclass
class RunSettings:
    """The top-level keys of `conf/train.yaml`."""

    name: str
    seed: int
    inner_steps: int | Literal["auto"]
    lr_scale: float | None
    loss_reduction: Literal["mean", "sum"]
    l2_to_init: float
    eval_splits: list[Literal["val", "test", "train"]]
    log_grid_per_decade: int | None
    ensemble: int
    lr_search: dict | None
    sigma_search: dict | None
    matmul_precision: Literal["highest", "high", "medium"] | None
    mitigation: Literal["none", "center", "asi"]
    ckpt_path: str | None
    objective: str
    figure: str | list[str] | None
    run_dir: str


GROUPS = ("data", "model", "loss", "weighting", "optim", "trainer")
NAMED_GROUPS = ("callbacks", "logger")  # dicts of name -> component (null disables one)


def validate(cfg: DictConfig) -> None:
    """Raise ConfigError on the first key of `cfg` that its consumer would not accept."""
    settings = {f.name: f.type for f in dataclasses.fields(RunSettings)}
    hints = typing.get_type_hints(RunSettings)
    for key in cfg:
        if key in (*GROUPS, *NAMED_GROUPS, "hydra"):
            continue
        if key not in settings:
            raise ConfigError(unknown_key(key, "", list(settings)))
        check_value(key, cfg[key], hints[key])
    for group in GROUPS:
        check_component(group, cfg[group])
    check_optimizer(cfg)
    for group in NAMED_GROUPS:
        for name, node in (cfg[group] or {}).items():
            if node is not None:
                check_component(f"{group}.{name}", node)


def check_optimizer(cfg: DictConfig) -> None:
    """Optimizers are torch classes built lazily; check their common settings before any work."""
    for key in ("lr", "weight_decay", "momentum"):
        value = cfg.optim.get(key)
        if value is None:
            continue
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ConfigError(f"optim.{key} must be a number, got {value!r}")
        if value < 0 or (key == "lr" and value == 0) or not math.isfinite(value):
            raise ConfigError(f"optim.{key} must be {'> 0' if key == 'lr' else '≥ 0'}, got {value!r}")


def unknown_key(key: str, owner: str, allowed: list[str]) -> str:
    close = difflib.get_close_matches(key.split(".")[-1], allowed, n=1)
    where = f" of {owner}" if owner else ""
    if close:
        return f"{key} is not a setting{where}; did you mean {close[0]}?"
    return f"{key} is not a setting{where}; allowed: {', '.join(sorted(allowed))}"


def check_component(path: str, node) -> None:
    if not isinstance(node, DictConfig) or "_target_" not in node:
        return
    target_name = node._target_
    module, _, attribute = str(target_name).rpartition(".")
    try:
        target = getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError, ValueError) as error:
        raise ConfigError(f"{path}._target_ {target_name!r} cannot be imported ({error})") from error
    signature, hints = parameters_of(target)
    if signature is None:
        return
    accepts_any = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
    named = [n for n, p in signature.parameters.items() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
    for key in node:
        if key.startswith("_"):
            continue
        if key not in named:
            if accepts_any:
                continue
            raise ConfigError(unknown_key(f"{path}.{key}", target.__name__, named))
        if OmegaConf.is_missing(node, key):
            continue  # instantiate names the missing mandatory value
        value = node[key]
        if isinstance(value, DictConfig) and "_target_" in value:
            check_component(f"{path}.{key}", value)
        elif key in hints:
            check_value(f"{path}.{key}", value, hints[key])


def parameters_of(target) -> tuple[inspect.Signature | None, dict]:
    function = target.__init__ if inspect.isclass(target) else target
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):
        return None, {}
    try:
        hints = typing.get_type_hints(function)
    except Exception:  # noqa: BLE001 - unresolvable annotations: check names only
        hints = {}
    return signature, hints


def check_value(key: str, value, annotation) -> None:
    if isinstance(value, (DictConfig, ListConfig)):
        value = OmegaConf.to_container(value, resolve=True)
    if not accepts(annotation, value):
        raise ConfigError(f"{key} must be {describe(annotation)}, got {value!r}")


def accepts(annotation, value) -> bool:
    """Whether `value` (a plain YAML value) fits `annotation`; unknown annotations accept anything."""
    if annotation is typing.Any or annotation is inspect.Parameter.empty:
        return True
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(accepts(option, value) for option in args)
    if origin is Literal:
        return value in args
    if annotation is type(None):
        return value is None
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    if origin in (list, tuple, Sequence) or annotation in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(map(accepts, args, value))
        return not args or all(accepts(args[0], item) for item in value)
    if origin is dict or annotation is dict:
        return isinstance(value, dict)
    if inspect.isclass(annotation):
        if annotation.__module__ == "builtins":
            return isinstance(value, annotation)
        if issubclass(annotation, (os.PathLike, enum.Enum)):
            return True  # built from a string by the constructor
        return not isinstance(value, (str, int, float, bool))  # a YAML scalar is never a Tensor, a Module...
    return True  # callables, protocols...: left to the constructor


def is_object_type(annotation) -> bool:
    return inspect.isclass(annotation) and annotation.__module__ != "builtins"


def describe(annotation) -> str:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        plain = [a for a in args if a is not type(None) and not is_object_type(a)]
        options = [describe(a) for a in plain or args if a is not type(None)]
        text = " or ".join(dict.fromkeys(options))
        return f"{text} or null" if type(None) in args else text
    if origin is Literal:
        return "one of " + ", ".join(str(a) for a in args)
    if origin is tuple and len(args) > 1 and args[-1] is not Ellipsis:
        return f"a list of {len(args)} values, each {describe(args[0])}"
    if origin in (list, tuple, Sequence) or annotation in (list, tuple):
        return f"a list of {describe(args[0])}" if args else "a list"
    names = {int: "an integer", float: "a number", bool: "true or false", str: "a string", dict: "a mapping"}
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))
