"""run(cfg): build data, model, reweighter and trainer from the config; fit, test, write metrics.json."""

from __future__ import annotations

import functools
import json
import math
import os
import sys
import time
import warnings
from pathlib import Path

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.loggers import WandbLogger
from omegaconf import DictConfig, OmegaConf

from overparam.data.base import whole
from overparam.errors import ConfigError
from overparam.module import Diverged, ReweightedModule
from overparam.report import print_report
from overparam.theory.bounds import stable_learning_rate
from overparam.theory.kernels import parameter_jacobian


def build(cfg: DictConfig, group: str, **facts):
    """Instantiate `cfg.<group>`, turning any failure into a ConfigError that names the offending key."""
    try:
        return instantiate(cfg[group], **facts)
    except Exception as error:  # noqa: BLE001 - every failure of a group becomes one sentence
        cause = error
        while cause.__cause__ is not None:
            cause = cause.__cause__
        message = str(cause).split("\n")[0]
        first_word = message.split(" ")[0]
        if first_word in (cfg[group] or {}):
            raise ConfigError(f"{group}.{message}") from error
        raise ConfigError(f"{group}: {message}") from error


def plain_partial(function):
    """Hydra 1.3.8's partials re-check its target policy on every call (≈0.5 ms, paid at every GD step)."""
    if isinstance(function, functools.partial):
        return functools.partial(function.func, *function.args, **function.keywords)
    return function


def scaled_learning_rate(cfg: DictConfig, data, net, reweighter) -> float:
    """`lr_scale` / (q_max · λ_max(JJᵀ)) on the full training set, with J the features at θ0."""
    if not isinstance(cfg.lr_scale, (int, float)) or not 0 < cfg.lr_scale < 2:
        raise ConfigError(f"lr_scale must be a number in (0, 2) (stable full-batch GD), got {cfg.lr_scale!r}")
    if data.n_outputs != 1:
        raise ConfigError("lr_scale needs a scalar-output model: set data.labels=pm1")
    train = whole(data.train)
    features = parameter_jacobian(net, train.x.to(next(net.parameters()).dtype))
    # A summed loss weights every sample n times more than the simplex weights q say.
    max_weight = reweighter.max_weight() * (data.n_train if cfg.loss_reduction == "sum" else 1)
    return stable_learning_rate(features.double(), max_weight, cfg.lr_scale)


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


def write_json(path: Path, payload: dict) -> None:
    """Write atomically: a reader never sees half a file."""
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True))
    os.replace(tmp, path)


def scalars(metrics: dict) -> dict[str, float]:
    return {key: float(value) for key, value in sorted(metrics.items())}


def run(cfg: DictConfig) -> dict[str, float]:
    """Train one configuration and write `metrics.json` into `cfg.run_dir`.

    Args:
        cfg: the composed Hydra config (`conf/train.yaml` plus overrides).

    Returns:
        The final metrics (`test/...`, `val/...`, `train/...`) and `best/...` at the best validation
        worst-group accuracy.
    """
    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    check_optimizer(cfg)
    data = build(cfg, "data")
    data.setup("fit")
    net = build(cfg, "model", in_shape=data.in_shape, out_features=data.n_outputs)
    reweighter = build(
        cfg, "weighting", n_groups=data.n_groups, group_counts=data.group_counts, n_train=data.n_train
    )
    data.sample_weights = reweighter.sample_weights(data.train.group)
    data.eval_splits = list(cfg.eval_splits)
    if data.sample_weights is not None and data.batch_size is None:
        raise ConfigError("weighting.mode=sampler draws mini-batches: set data.batch_size to an integer")
    optimizer = instantiate(cfg.optim)
    if cfg.get("lr_scale") is not None:
        optimizer = instantiate(cfg.optim, lr=scaled_learning_rate(cfg, data, net, reweighter))
    loss_fn = plain_partial(instantiate(cfg.loss))
    try:
        loss_fn(torch.zeros(2, data.n_outputs), data.train[[0, 1]].y)  # the loss accepts this data's targets
        module = ReweightedModule(
            net,
            loss_fn,
            reweighter,
            optimizer,
            data.group_names,
            data.group_counts,
            data.label_threshold,
            inner_steps=cfg.inner_steps,
            l2_to_init=cfg.l2_to_init,
            log_grid_per_decade=cfg.log_grid_per_decade,
            eval_splits=tuple(cfg.eval_splits),
            loss_reduction=cfg.loss_reduction,
        )
    except ValueError as error:
        raise ConfigError(str(error)) from error
    callbacks = [c for c in instantiate(cfg.callbacks or {}).values() if c]
    loggers = [lg for lg in instantiate(cfg.logger or {}).values() if lg]
    trainer = build(cfg, "trainer", callbacks=callbacks, logger=loggers)
    for logger in loggers:  # every config key becomes a column (W&B, CSV hparams, TensorBoard)
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))

    started, result = time.time(), {"status": "completed"}
    try:
        trainer.fit(module, datamodule=data, ckpt_path=cfg.get("ckpt_path"))
        final = scalars({k: v for k, v in trainer.callback_metrics.items() if k.startswith("train/")})
        for evaluate in (
            trainer.validate,
            trainer.test,
        ):  # the final weights, even when fit stopped mid-epoch
            final.update(scalars(evaluate(module, datamodule=data, verbose=False)[0]))
        best = {}
        checkpoint = trainer.checkpoint_callback
        if checkpoint is not None and checkpoint.monitor and checkpoint.best_model_score is not None:
            best_test = trainer.test(
                module, datamodule=data, ckpt_path=checkpoint.best_model_path, verbose=False
            )[0]
            best = {f"best/{k}": v for k, v in scalars(best_test).items()}
            best[f"best/{checkpoint.monitor}"] = float(checkpoint.best_model_score)
            best["best/checkpoint"] = Path(checkpoint.best_model_path).name
        result.update(metrics=final, best=best)
    except Diverged as error:
        result.update(status="diverged", error=str(error), last_finite_loss=error.last_finite)
        print(f"diverged: {error}", file=sys.stderr)
    except BaseException as error:
        result.update(
            status="failed" if not isinstance(error, KeyboardInterrupt) else "stopped", error=str(error)
        )
        raise
    finally:
        result.update(
            steps=trainer.global_step,
            seconds=round(time.time() - started, 3),
            lr=optimizer.keywords.get("lr"),
            config=OmegaConf.to_container(cfg, resolve=False),
        )
        write_json(run_dir / "metrics.json", result)
        for logger in loggers:
            logger.finalize("success" if result["status"] == "completed" else result["status"])
            if isinstance(logger, WandbLogger):  # close the run so the next job of a sweep starts its own
                logger.experiment.finish(exit_code=int(result["status"] != "completed"))
    if result["status"] == "completed":
        print_report(result["metrics"], data.group_names, result["best"])
    return {
        **result.get("metrics", {}),
        **{k: v for k, v in result.get("best", {}).items() if k != "best/checkpoint"},
    }


def main(cfg: DictConfig) -> float | None:
    """The Hydra job: run, print one sentence on a config error, return the value a sweeper optimizes."""
    # The CSV logger shares the run directory with Hydra's files and the checkpoints on purpose.
    warnings.filterwarnings("ignore", message="Experiment logs directory .* exists and is not empty")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*is deprecated")
    try:
        metrics = run(cfg)
    except ConfigError as error:
        sys.exit(f"error: {error}")
    return metrics.get(cfg.get("objective", ""))
