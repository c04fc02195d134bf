"""Which jobs of a sweep can share one stacked model: those whose configs differ only in batchable keys.

Batchable: the seed (initial draws), the model's settings that change its parameters' values but not
its structure (σ, init scale, κ; checked when the networks are built), the optimizer's hyperparameters
(its class must agree), the weighting and its parameters, the loss and its parameters, `run.lr_scale`,
`run.l2_to_init` and `trainer.max_steps` (a member ends at its own). Everything else (data, callbacks,
the rest of the trainer) must agree within a group.
"""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from overparam.errors import ConfigError
from overparam.rundir import COSMETIC_PREFIXES, flatten

SHARED_WITHIN = ("optim._target_", "model._target_")


class StructureDiffers(ConfigError):
    """A model setting of a group that changes the network's structure (a width), found when the members'
    networks are built: the group splits by `key`."""

    def __init__(self, key: str) -> None:
        super().__init__(f"{key} changes the network beyond its parameters' values: no stacking")
        self.key = key


def batchable(key: str) -> bool:
    if key in SHARED_WITHIN:
        return False
    return key in ("seed", "run.lr_scale", "run.l2_to_init", "trainer.max_steps") or key.startswith(
        ("optim.", "model.", "weighting.", "loss.")
    )


def shared_settings(cfg: DictConfig) -> dict:
    """The settings every member of a group must share, resolved (so `data.seed: ${seed}` differs). The
    job's own directory (`run_dir`, and what `${run_dir}` names) reads as "" meanwhile; a sweep job's
    `hydra` node, which differs by job, is not read."""
    tree = {}
    run_dir = cfg._get_node("run_dir")._value() if "run_dir" in cfg else None
    with read_write(cfg), open_dict(cfg):
        cfg.run_dir = ""
        try:
            for key in cfg:
                if not key.startswith(COSMETIC_PREFIXES):
                    value = OmegaConf.select(cfg, key, throw_on_missing=False)
                    is_node = OmegaConf.is_config(value)
                    tree[key] = OmegaConf.to_container(value, resolve=True) if is_node else value
        finally:
            if run_dir is None:
                del cfg["run_dir"]
            else:
                cfg.run_dir = run_dir
    return {
        key: repr(value)
        for key, value in flatten(tree).items()
        if not batchable(key) and not key.startswith(COSMETIC_PREFIXES)
    }


def group_jobs(settings: list[dict], max_members: int) -> tuple[list[list[int]], list[str]]:
    """Jobs (by index) grouped by their shared settings, in sweep order, each group at most
    `max_members` long; and the keys whose values split the sweep into several groups."""
    by_settings: dict[tuple, list[int]] = {}
    for index, shared in enumerate(settings):
        by_settings.setdefault(tuple(sorted(shared.items())), []).append(index)
    groups = [
        indices[start : start + max_members]
        for indices in by_settings.values()
        for start in range(0, len(indices), max_members)
    ]
    keys = sorted({key for shared in settings for key in shared})
    splitting = [key for key in keys if len({shared.get(key) for shared in settings}) > 1]
    return groups, splitting


def stacking_refusal(cfg: DictConfig) -> str | None:
    """Why the launcher's promise (each job's directory as its single run writes it) fails for a stacked
    group of this config, or None: W&B or TensorBoard log one run per process."""
    for name, node in sorted((cfg.logger or {}).items()):
        if node is not None and name != "csv":
            return f"logger.{name} logs one run per process"
    return None
