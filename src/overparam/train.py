"""run(cfg): build data, model, reweighter and trainer from the config; fit, test, write metrics.json."""

from __future__ import annotations

import functools
import math
import signal
import sys
import time
import warnings
from pathlib import Path

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

from overparam import resume
from overparam.data.base import whole
from overparam.ensemble import EnsembleLoss, EnsembleNet, EnsembleReweighter, write_members
from overparam.errors import ConfigError, Diverged
from overparam.losses import logistic, squared
from overparam.models.mitigation import mitigate
from overparam.module import ReweightedModule
from overparam.procedures.lr_search import monotone_learning_rate
from overparam.procedures.sigma_search import shrink_sigma
from overparam.report import print_report
from overparam.theory.bounds import stable_learning_rate
from overparam.theory.kernels import parameter_jacobian
from overparam.validate import validate
from overparam.weighting.erm import ERM


def build(cfg: DictConfig, group: str, **facts):
    """Instantiate `cfg.<group>` (a dotted path), turning any failure into a ConfigError naming the key."""
    node = OmegaConf.select(cfg, group)
    try:
        return instantiate(node, **facts)
    except Exception as error:  # noqa: BLE001 - every failure of a group becomes one sentence
        cause = error
        while cause.__cause__ is not None:
            cause = cause.__cause__
        message = str(cause).split("\n")[0]
        first_word = message.split(" ")[0]
        if first_word in (node or {}):
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
    # A summed loss weights every sample n times more than the simplex weights q say; the logistic loss
    # curves at most a quarter as much as the squared one (ℓ'' ≤ 1/4, reached at zero margin).
    max_weight = reweighter.max_weight() * (data.n_train if cfg.loss_reduction == "sum" else 1)
    if getattr(instantiate(cfg.loss), "func", None) is logistic:
        max_weight /= 4
    return stable_learning_rate(training_kernel(data, net), max_weight, cfg.lr_scale)


def training_kernel(data, net) -> torch.Tensor:
    """JJᵀ in float64 with J = ∇θ f(X; θ0) on the whole training set (the NTK Gram matrix), from the
    network's own kernel when it has one (no P-wide Jacobian)."""
    x = whole(data.train).x.to(next(net.parameters()).dtype)
    if hasattr(net, "ntk"):
        return net.ntk(x, x).double()
    features = parameter_jacobian(net, x).double()
    return features @ features.T


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


def scalars(metrics: dict) -> dict[str, float]:
    return {key: float(value) for key, value in sorted(metrics.items())}


def quadratic_stability_error(cfg: DictConfig, data, net, reweighter, loss_fn, optimizer) -> str | None:
    """Full-batch GD on a quadratic objective (a model linear in θ, the squared loss, fixed weights q)
    diverges exactly when η·λ_max(H) ≥ 2; say so before the first step. Elsewhere the bound is not known."""
    settings = optimizer.keywords
    if not (
        data.batch_size is None
        and optimizer.func is torch.optim.SGD
        and not settings.get("momentum")
        and getattr(loss_fn, "func", loss_fn) is squared
        and getattr(net, "linear_in_parameters", False)
        and reweighter.static
        and data.n_outputs == 1
    ):
        return None
    train = whole(data.train)
    q = reweighter(torch.zeros(len(train.y)), train.group, train.index).double()
    q = q * (len(q) if cfg.loss_reduction == "sum" else 1)
    weights = q.sqrt()
    curvature = float(torch.linalg.eigvalsh(weights[:, None] * training_kernel(data, net) * weights).max())
    curvature += cfg.l2_to_init + settings.get("weight_decay", 0.0)
    lr = settings["lr"]
    if lr * curvature < 2:
        return None
    return (
        f"optim.lr={lr:g} gives η·λ_max(H) = {lr * curvature:.4g} ≥ 2 for this quadratic objective, so "
        f"full-batch gradient descent diverges; use optim.lr < {2 / curvature:.4g}"
    )


def build_named(cfg: DictConfig, group: str, **facts_by_name: dict) -> list:
    """The enabled components of a name -> component group (callbacks, logger)."""
    built = []
    for name, node in (cfg[group] or {}).items():
        if node is not None:
            built.append(build(cfg, f"{group}.{name}", **facts_by_name.get(name, {})))
    return built


def wandb_settings(cfg: DictConfig) -> dict:
    """W&B never blocks a run: online mode without credentials logs offline instead (sync it later)."""
    node = (cfg.logger or {}).get("wandb")
    if node is None or node.get("mode") != "online":
        return {}
    import wandb

    if wandb.login(prompt=False, verify=False):
        return {}
    print(
        "warning: logger.wandb.mode=online but no W&B API key is set (WANDB_API_KEY or `wandb login`); "
        f"logging offline to {cfg.run_dir}/wandb, upload later with `wandb sync`",
        file=sys.stderr,
    )
    return {"mode": "offline"}


def run(cfg: DictConfig) -> dict[str, float]:
    """Train one configuration and write `metrics.json` into `cfg.run_dir`.

    A run directory that already holds this config's run is resumed from its last checkpoint, or skipped
    when that run finished (see `overparam.resume`).

    Args:
        cfg: the composed Hydra config (`conf/train.yaml` plus overrides).

    Returns:
        The final metrics (`test/...`, `val/...`, `train/...`) and `best/...` at the best validation
        worst-group accuracy.
    """
    validate(cfg)
    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    config = OmegaConf.to_container(cfg, resolve=False)
    plan = resume.prepare(run_dir, config)
    if plan.action == "skip":
        print(f"skipped: {run_dir} already holds a {plan.previous['status']} run of this config")
        return flat_result(plan.previous)
    if cfg.get("sigma_search"):
        return run_procedure(cfg, run_dir, config, shrink_sigma)
    searched = None
    if cfg.get("lr_search"):
        if cfg.get("lr_scale") is not None:
            raise ConfigError("lr_search chooses optim.lr itself: set lr_scale=null")
        searched = monotone_learning_rate(cfg)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    if cfg.get("matmul_precision"):  # the TF32 switch: "high" lets float32 matmuls use TF32 tensor cores
        torch.set_float32_matmul_precision(cfg.matmul_precision)
    check_optimizer(cfg)
    if cfg.ensemble != 1:
        check_ensemble(cfg)
    data = build(cfg, "data")
    inner_steps = chunk_length(cfg.inner_steps, data.batch_size)
    callbacks = build_named(cfg, "callbacks")
    if cfg.ensemble > 1:  # no per-member best checkpoint: an ensemble's members report final metrics
        callbacks = [c for c in callbacks if not (isinstance(c, ModelCheckpoint) and c.monitor)]
    loggers = build_named(cfg, "logger", wandb=wandb_settings(cfg))
    # A resumed run skips the sanity check (as Lightning does mid-run): it would draw from the restored RNG.
    no_sanity_check = {"num_sanity_val_steps": 0} if plan.action == "resume" else {}
    trainer = build(
        cfg,
        "trainer",
        callbacks=callbacks,
        logger=loggers,
        plugins=[resume.AtomicCheckpointIO()],
        **no_sanity_check,
    )
    data.setup("fit")
    nets = member_networks(cfg, data)
    reweighters = [
        build(cfg, "weighting", n_groups=data.n_groups, group_counts=data.group_counts, n_train=data.n_train)
        for _ in nets
    ]
    if trainer.precision == "64-true":  # before a checkpoint is restored into them, not after (rounding)
        nets, reweighters = [n.double() for n in nets], [r.double() for r in reweighters]
    data.sample_weights = reweighters[0].sample_weights(data.train.group)
    data.eval_splits = list(cfg.eval_splits)
    if data.sample_weights is not None and data.batch_size is None:
        raise ConfigError("weighting.mode=sampler draws mini-batches: set data.batch_size to an integer")
    optimizer = instantiate(cfg.optim, **({"lr": searched["lr"]} if searched else {}))
    if cfg.get("lr_scale") is not None:
        rates = [scaled_learning_rate(cfg, data, n, r) for n, r in zip(nets, reweighters)]
        if max(rates) - min(rates) > 1e-9 * max(rates):
            raise ConfigError("lr_scale gives the ensemble's members different step sizes; set optim.lr")
        optimizer = instantiate(cfg.optim, lr=rates[0])
    loss_fn = plain_partial(instantiate(cfg.loss))
    unstable = quadratic_stability_error(cfg, data, nets[0], reweighters[0], loss_fn, optimizer)
    net, reweighter = nets[0], reweighters[0]
    try:
        loss_fn(torch.zeros(2, data.n_outputs), data.train[[0, 1]].y)  # the loss accepts these targets
        if len(nets) > 1:
            net, reweighter, loss_fn = (
                EnsembleNet(nets),
                EnsembleReweighter(reweighters),
                EnsembleLoss(loss_fn),
            )
        module = ReweightedModule(
            net,
            loss_fn,
            reweighter,
            optimizer,
            data.group_names,
            data.group_counts,
            data.label_threshold,
            inner_steps=inner_steps,
            l2_to_init=cfg.l2_to_init,
            log_grid_per_decade=cfg.log_grid_per_decade,
            eval_splits=tuple(cfg.eval_splits),
            loss_reduction=cfg.loss_reduction,
            stop_loss=chunk_stop_loss(cfg, callbacks, reweighter),
        )
    except ValueError as error:
        raise ConfigError(str(error)) from error
    if plan.action == "start":  # every config key becomes a column (W&B, CSV hparams, TensorBoard)
        for logger in loggers:
            logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))

    started, result = time.time(), {"status": "completed"}
    try:
        if unstable:
            raise Diverged(unstable, step=0, last_finite=None)
        trainer.fit(module, datamodule=data, ckpt_path=plan.ckpt_path or cfg.get("ckpt_path"))
        result.update(evaluate(trainer, module, data))
    except Diverged as error:
        result.update(status="diverged", error=str(error), last_finite_loss=error.last_finite)
        print(f"diverged: {error}", file=sys.stderr)
    except BaseException as error:
        stopped = isinstance(error, (KeyboardInterrupt, SystemExit))  # Ctrl-C, SIGTERM (preemption)
        result.update(status="stopped" if stopped else "failed", error=str(error) or type(error).__name__)
        if isinstance(error, SIGTERMException):  # exit as a terminated process does, not with status 0
            raise SystemExit(128 + signal.SIGTERM) from error
        raise
    finally:
        if len(nets) > 1:
            result["members"] = len(nets)
        if searched:
            result["lr_search"] = searched
        result.update(
            steps=trainer.global_step,
            seconds=round(time.time() - started, 3),
            lr=optimizer.keywords.get("lr"),
            config=config,
        )
        resume.write_json(run_dir / "metrics.json", result)
        for logger in loggers:
            logger.finalize("success" if result["status"] == "completed" else result["status"])
            if isinstance(logger, WandbLogger):  # close the run so the next job of a sweep starts its own
                logger.experiment.finish(exit_code=int(result["status"] != "completed"))
    if len(nets) > 1:
        write_members(run_dir, result, len(nets))
    elif result["status"] == "completed":
        print_report(result["metrics"], data.group_names, result["best"], data.regression)
    return flat_result(result)


def chunk_length(inner_steps: int | str, batch_size: int | None) -> int:
    """Optimizer steps per `training_step`. `auto`: 100 on the full batch (a batch split of 1 included,
    so seed 003's Fig. 4 sweeps splits up to 1 with one setting), one per mini-batch."""
    if inner_steps == "auto":
        return 100 if batch_size is None else 1
    if inner_steps > 1 and batch_size is not None:
        raise ConfigError(
            f"inner_steps={inner_steps} would take that many steps on every mini-batch; "
            "set inner_steps=1 (or auto) with mini-batches (data.batch_size or data.split)"
        )
    return inner_steps


def chunk_stop_loss(cfg: DictConfig, callbacks: list, reweighter) -> float | None:
    """The threshold of an EarlyStopping on the full training loss, when a full-batch step's objective is
    that loss (unweighted mean, no penalty): chunks of inner steps then end at the first step below it."""
    for callback in callbacks:
        if (
            isinstance(callback, EarlyStopping)
            and callback.monitor == "train_eval/loss"
            and callback.stopping_threshold is not None
            and isinstance(reweighter, ERM)
            and cfg.loss_reduction == "mean"
            and cfg.l2_to_init == 0
        ):
            return float(callback.stopping_threshold)
    return None


def run_procedure(cfg: DictConfig, run_dir: Path, config: dict, procedure) -> dict[str, float]:
    """A run made of runs (`procedure(cfg)` trains them in subdirectories); writes its metrics.json."""
    started = time.time()
    result = procedure(cfg)
    result.update(seconds=round(time.time() - started, 3), config=config)
    resume.write_json(run_dir / "metrics.json", result)
    return flat_result(result)


def member_networks(cfg: DictConfig, data) -> list[torch.nn.Module]:
    """The network, or for `ensemble=S` the S networks that the single runs with seeds seed, …, seed+S−1
    would build (same RNG draws before the model's own)."""
    model = functools.partial(build, cfg, "model", in_shape=data.in_shape, out_features=data.n_outputs)

    def build_model() -> torch.nn.Module:
        return mitigate(model(), cfg.mitigation)  # validate() checked the value

    if cfg.ensemble == 1:
        return [build_model()]
    nets = []
    for k in range(cfg.ensemble):
        L.seed_everything(cfg.seed + k, workers=True, verbose=False)
        replay = build(cfg, "data")  # the data draws a single run makes before building its model
        replay.setup("fit")
        nets.append(build_model())
    return nets


def check_ensemble(cfg: DictConfig) -> None:
    """An ensemble's members share one batch stream and one data set; say which key breaks that."""
    if not isinstance(cfg.ensemble, int) or cfg.ensemble < 1:
        raise ConfigError(f"ensemble must be an integer ≥ 1, got {cfg.ensemble!r}")
    if cfg.mitigation != "none":
        raise ConfigError(f"mitigation={cfg.mitigation} wraps one network; train it with ensemble=1")
    if cfg.data.get("batch_size") is not None:
        raise ConfigError("ensemble members must see the same batches: set data.batch_size=null (full batch)")
    if "${seed}" in OmegaConf.to_yaml(cfg.data):
        raise ConfigError("ensemble members must share the data, but data.seed follows seed: set data.seed")
    supported = {"reweighting", "checkpoint", "resume", "progress"}
    extra = sorted(name for name, node in (cfg.callbacks or {}).items() if node is not None)
    extra = [name for name in extra if name not in supported]
    if extra:
        raise ConfigError(
            f"callbacks.{extra[0]} does not support ensemble>1; remove it (~callbacks.{extra[0]})"
        )
    if "jtt" in str(cfg.weighting.get("_target_", "")):
        raise ConfigError("weighting=jtt restarts its network mid-run; train it with ensemble=1")


def evaluate(trainer: L.Trainer, module: ReweightedModule, data) -> dict:
    """The final weights on every split (even when fit stopped mid-epoch), and the test metrics of the
    checkpoint with the best validation worst-group accuracy."""
    # A run resumed from its final checkpoint trains no further: its last epoch's metrics come from there.
    logged = {**resume.ResumeCheckpoint.restored_train_metrics(trainer), **trainer.callback_metrics}
    final = scalars({k: v for k, v in logged.items() if k.startswith(("train/", "probe/"))})
    for evaluate_split in (trainer.validate, trainer.test):
        final.update(scalars(evaluate_split(module, datamodule=data, verbose=False)[0]))
    best = {}
    checkpoint = next((c for c in trainer.checkpoint_callbacks if getattr(c, "monitor", None)), None)
    if checkpoint is not None and checkpoint.best_model_score is not None:
        best_test = trainer.test(module, datamodule=data, ckpt_path=checkpoint.best_model_path, verbose=False)
        best = {f"best/{k}": v for k, v in scalars(best_test[0]).items()}
        best[f"best/{checkpoint.monitor}"] = float(checkpoint.best_model_score)
        best["best/checkpoint"] = Path(checkpoint.best_model_path).name
    return {"metrics": final, "best": best}


def flat_result(result: dict) -> dict[str, float]:
    return {
        **result.get("metrics", {}),
        **{k: v for k, v in result.get("best", {}).items() if k != "best/checkpoint"},
    }


def main(cfg: DictConfig) -> float:
    """The Hydra job: run, print one sentence on a config error, return the value a sweeper optimizes."""
    # The CSV logger shares the run directory with Hydra's files and the checkpoints on purpose.
    warnings.filterwarnings("ignore", message="Experiment logs directory .* exists and is not empty")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*is deprecated")
    try:
        metrics = run(cfg)
    except ConfigError as error:
        sys.exit(f"error: {error}")
    value = metrics.get(cfg.get("objective", ""))
    # A sweeper (Optuna) records a diverged or failed trial as such instead of stopping the study.
    return float("nan") if value is None else value
