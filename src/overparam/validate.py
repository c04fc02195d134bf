"""Check a composed config before any work. Hydra has checked the run settings' names and types against
their structured config (`overparam.settings`) while composing; this adds what a schema cannot say:
every key of every component group against the signature of the class its `_target_` names (the
constructors are the schema), keys appended with `+`, and the run settings' choices and ranges.

A typo, a wrong type or a value outside a `Literal` stops the run with one sentence naming the key, the
value and what is allowed. Ranges of a component (a width ≥ 1, a probability in [0, 1]) are checked by
its constructor, which runs before any data is loaded.
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
from overparam.settings import CHOICES, TrainConfig

GROUPS = ("data", "model", "loss", "weighting", "optim", "trainer")
NAMED_GROUPS = ("callbacks", "logger")  # dicts of name -> component (null disables one)


def validate(cfg: DictConfig) -> None:
    """Raise ConfigError on the first key of `cfg` that its consumer would not accept."""
    check_schema_keys(cfg, TrainConfig, "")
    check_run_settings(cfg.run)
    for group in GROUPS:
        check_component(group, cfg[group])
    check_optimizer(cfg)
    for group in NAMED_GROUPS:
        for name, node in (cfg[group] or {}).items():
            if node is not None:
                check_component(f"{group}.{name}", node)


def check_schema_keys(node: DictConfig, schema: type, path: str) -> None:
    """Keys appended with `+` get past Hydra's schema (an append opens the node): name them here."""
    hints = typing.get_type_hints(schema)
    for key in node:
        if key == "hydra" and not path:
            continue
        if key not in hints:
            raise ConfigError(unknown_key(f"{path}{key}", path.rstrip("."), list(hints)))
        nested = [t for t in (hints[key], *typing.get_args(hints[key])) if dataclasses.is_dataclass(t)]
        if nested and isinstance(node[key], DictConfig):
            check_schema_keys(node[key], nested[0], f"{path}{key}.")


def check_run_settings(run: DictConfig) -> None:
    """What the types of `RunSettings` leave open: choices and ranges."""
    for key, allowed in CHOICES.items():
        values = run[key] if key == "eval_splits" else [run[key]]
        if any(value not in allowed for value in values):
            shown = ", ".join("null" if a is None else a for a in allowed)
            what = f"a list of {shown}" if key == "eval_splits" else f"one of {shown}"
            got = list(values) if key == "eval_splits" else values[0]
            raise ConfigError(f"run.{key} must be {what}, got {got!r}")
    if "val" not in run.eval_splits:
        raise ConfigError(f"run.eval_splits must include val (model selection), got {list(run.eval_splits)}")
    for key in ("inner_steps", "compile_unroll"):
        steps = run[key]
        if steps != "auto" and (not isinstance(steps, int) or isinstance(steps, bool) or steps < 1):
            raise ConfigError(f"run.{key} must be an integer ≥ 1 or auto, got {steps!r}")
    if run.compile not in (True, False, "auto"):
        raise ConfigError(f"run.compile must be true, false or auto, got {run.compile!r}")
    for key, minimum in (("ensemble", 1), ("log_grid_per_decade", 1)):
        if run[key] is not None and run[key] < minimum:
            raise ConfigError(f"run.{key} must be an integer ≥ {minimum}, got {run[key]}")
    if run.l2_to_init < 0:
        raise ConfigError(f"run.l2_to_init must be ≥ 0 (μ of μ/2‖θ − θ0‖²), got {run.l2_to_init}")


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
