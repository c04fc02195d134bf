"""Procedures that train several runs to make one: the monotone learning-rate search and the paper's
σ-shrinking remedy (seed 003). Each run they train is an ordinary run directory (it resumes and skips)."""

from __future__ import annotations

import copy
import dataclasses
import typing
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from overparam.errors import ConfigError
from overparam.validate import check_value, unknown_key


def settings_from(cfg: DictConfig, key: str, schema):
    """`cfg.<key>` as the dataclass `schema`, with one sentence for an unknown key or a wrong type."""
    node = OmegaConf.to_container(cfg[key], resolve=True)
    fields = {f.name for f in dataclasses.fields(schema)}
    hints = typing.get_type_hints(schema)
    for name, value in node.items():
        if name not in fields:
            raise ConfigError(unknown_key(name, key, sorted(fields)))
        check_value(f"{key}.{name}", value, hints[name])
    return schema(**node)


def derived_config(cfg: DictConfig, run_dir: Path, **changes) -> DictConfig:
    """A copy of `cfg` that runs in `run_dir` with dotted keys changed (None removes a named component)."""
    derived = copy.deepcopy(cfg)
    with open_dict(derived):
        derived.run_dir = str(run_dir)
        derived.figure = None
        for key, value in changes.items():
            OmegaConf.update(derived, key, value, merge=False)
    return derived


def stop_loss(cfg: DictConfig) -> float | None:
    """The training loss that ends a run (callbacks.stop's stopping_threshold), if the run has one."""
    stop = (cfg.callbacks or {}).get("stop")
    threshold = stop.get("stopping_threshold") if stop is not None else None
    return None if threshold is None else float(threshold)
