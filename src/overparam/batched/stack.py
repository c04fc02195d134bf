"""Several single-run configs trained as one stacked model, from Python (the batched launcher's groups,
a notebook's or a test's own list of runs)."""

from __future__ import annotations

import copy
from pathlib import Path

from omegaconf import DictConfig, open_dict

from overparam.batched.grouping import group_jobs, shared_settings
from overparam.ensemble import Member
from overparam.errors import ConfigError
from overparam.run import RunResult, run


def run_stacked(
    configs: list[DictConfig],
    group_dir: Path | str,
    overrides: list[list[str]] | None = None,
    memory_budget: int | None = None,
) -> RunResult:
    """Train `configs` (each a single run's config with its own `run_dir`) as one stacked model in
    `group_dir`; every run's directory gets what its single run writes (and `overrides[k]`, where given,
    as its `.hydra/overrides.yaml`). Configs that differ beyond the batchable keys are refused with the
    keys named."""
    groups, splitting = group_jobs([shared_settings(cfg) for cfg in configs], max_members=len(configs))
    if len(groups) > 1:
        raise ConfigError(f"these runs cannot share one stacked model: {', '.join(splitting)} differs")
    members = [Member(cfg, overrides[k] if overrides else None) for k, cfg in enumerate(configs)]
    group_cfg = copy.deepcopy(configs[0])
    budgets = [cfg.trainer.get("max_steps") for cfg in configs]
    with open_dict(group_cfg):
        group_cfg.run_dir = str(group_dir)
        if len(set(budgets)) > 1 and all(isinstance(b, int) for b in budgets):
            group_cfg.trainer.max_steps = max(budgets)  # the others end at theirs
    return run(group_cfg, members=members, memory_budget=memory_budget)
