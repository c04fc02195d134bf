"""Procedures that train several runs to make one: the monotone learning-rate search and the paper's
σ-shrinking remedy (seed 003). Each run they train is an ordinary run directory (it resumes and skips)."""

from __future__ import annotations

import copy
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict


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
