"""The largest learning rate whose training loss decreases monotonically (seed 003 §2.0, App. D).

The paper trains AdaGrad and Adam with "the largest learning rate that still guarantees a monotonous
decay of the training loss". The search tries `grid` from the largest value down on one initialization
(`seed`, the spec's init_seed 0), each trial a full run (until the loss is below the stop threshold or
`trainer.max_steps`) that stops at the first rise of the full training loss: after every step in
full-batch runs, after every epoch with mini-batches. The first trial that never rises gives the rate.

A loss that one large step can drive towards zero (the logistic loss) never rises under any rate: its
trials train the loss's quadratic model at zero outputs instead (`on_quadratic_model`, the same gradient
and curvature there), on which too large a rate makes the loss rise as it does on the squared loss.

Every seed of a sweep reuses the answer: it is stored in `<cache_dir>/<key>.json`, keyed by the config
with the seed left out, and the trials' run directories are `<cache_dir>/<key>/lr=<value>/` (a file lock
keeps parallel jobs from searching twice).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from filelock import FileLock
from hydra.utils import get_method
from omegaconf import DictConfig, OmegaConf

from overparam.errors import ConfigError
from overparam.losses import quadratic_model
from overparam.procedures import derived_config, stop_loss
from overparam.run import run
from overparam.rundir import write_json
from overparam.settings import LrSearch


def stop_threshold(cfg: DictConfig) -> float:
    threshold = stop_loss(cfg)
    if threshold is None:
        raise ConfigError(
            "lr_search needs callbacks.stop with a stopping_threshold (the loss that ends a run)"
        )
    return threshold


def trial_loss(cfg: DictConfig, search: LrSearch) -> dict | None:
    """The loss node the trials train with when it is not the run's own (its quadratic model)."""
    model = quadratic_model(get_method(cfg.loss._target_)) if search.on_quadratic_model else None
    return None if model is None else {"_target_": f"{model.__module__}.{model.__name__}", "_partial_": True}


def trial_config(
    cfg: DictConfig, lr: float, run_dir: Path, seed: int, threshold: float, loss: dict | None
) -> DictConfig:
    full_batch = cfg.data.get("batch_size") is None and cfg.data.get("split") in (None, 1, 1.0)
    eval_splits = list(cfg.run.eval_splits) if full_batch else sorted({*cfg.run.eval_splits, "train"})
    callbacks = {"reweighting": cfg.callbacks.get("reweighting")}
    callbacks["monotone"] = {
        "_target_": "overparam.callbacks.monotone.MonotoneDecay",
        "dirpath": "${run_dir}",
        "threshold": threshold,
    }
    return derived_config(
        cfg,
        run_dir,
        seed=seed,
        lr_search=None,
        **{"run.lr_scale": None, "run.ensemble": 1, "run.eval_splits": eval_splits},
        callbacks=callbacks,
        logger={"csv": cfg.logger.get("csv")} if cfg.logger and cfg.logger.get("csv") else None,
        **{"optim.lr": lr},
        **({"loss": loss} if loss else {}),
        # Full batch: the step's objective is the check, so validate only at the end.
        **({"trainer.check_val_every_n_epoch": 10**9} if full_batch else {}),
    )


def search_key(cfg: DictConfig, search: LrSearch, loss: dict | None) -> str:
    probe = derived_config(cfg, Path("."), seed=search.seed, lr_search=None, **{"optim.lr": None})
    described = OmegaConf.to_container(probe, resolve=False)
    for cosmetic in ("run_dir", "name", "logger", "ckpt_path", "objective"):
        described.pop(cosmetic, None)
    described.pop("callbacks", None)
    keyed = {"config": described, "grid": search.grid, **({"trial_loss": loss} if loss else {})}
    text = json.dumps(keyed, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def monotone_learning_rate(cfg: DictConfig) -> dict:
    """{"lr": the chosen rate, "trials": [{"lr", "monotone", "converged", "steps"}, ...], "key"}."""
    search = OmegaConf.to_object(cfg.lr_search)
    if not search.grid or min(search.grid) <= 0:
        raise ConfigError(f"lr_search.grid must be a list of positive learning rates, got {search.grid}")
    threshold = stop_threshold(cfg)
    cache_dir = Path(search.cache_dir or Path(cfg.run_dir).parent / "lr_search")
    loss = trial_loss(cfg, search)
    key = search_key(cfg, search, loss)
    cache_dir.mkdir(parents=True, exist_ok=True)
    answer_path = cache_dir / f"{key}.json"
    with FileLock(str(cache_dir / f"{key}.lock")):
        if answer_path.exists():
            return json.loads(answer_path.read_text())
        trials = []
        for lr in sorted(search.grid, reverse=True):
            trial_dir = cache_dir / key / f"lr={lr:.6g}"
            trial = trial_config(cfg, lr, trial_dir, search.seed, threshold, loss)
            status = run(trial).status
            verdict_path = trial_dir / "monotone.json"
            verdict = json.loads(verdict_path.read_text()) if verdict_path.exists() else {}
            monotone = status == "completed" and verdict.get("monotone", False)
            trials.append(
                {"lr": lr, "monotone": monotone, **{k: verdict.get(k) for k in ("converged", "steps")}}
            )
            if monotone:
                answer = {"lr": lr, "trials": trials, "key": key}
                write_json(answer_path, answer)
                return answer
    raise ConfigError(
        f"lr_search: no learning rate in {sorted(search.grid, reverse=True)} kept the training loss "
        f"decreasing (trials in {cache_dir / key}); extend lr_search.grid downwards"
    )
