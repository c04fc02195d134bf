"""Build a run's parts from its config: datamodule, networks, reweighters, optimizer, the module, the
Trainer with its callbacks and loggers. Every failure of a group becomes one sentence naming the key."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass

import lightning as L
import torch
from hydra.utils import get_class, get_method, instantiate
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint, ProgressBar
from omegaconf import DictConfig, OmegaConf

from overparam.batched.grouping import StructureDiffers
from overparam.batched.member_callbacks import MemberCallback, works_per_member
from overparam.batched.memory import check_fits
from overparam.batched.optim import memberwise_factory
from overparam.batched.progress import MemberEnds
from overparam.callbacks.resume import AtomicCheckpointIO, ResumeCheckpoint
from overparam.callbacks.reweighting import ReweightingCallback
from overparam.data.base import GroupDataModule
from overparam.ensemble import EnsembleLoss, EnsembleNet, EnsembleReweighter, plain_attributes
from overparam.errors import ConfigError
from overparam.host_memory import keep_freed_memory
from overparam.loggers import wandb_settings
from overparam.models.mitigation import mitigate
from overparam.module import ReweightedModule
from overparam.step_size import quadratic_stability_error, scaled_learning_rate

# run.compile=auto compiles full-batch runs of at least this many steps: a few seconds of compilation
# against ≥ 3× faster steps of a small model.
COMPILE_FROM_STEPS = 100_000
# run.compile_unroll=auto compiles this many steps as one graph in runs of at least UNROLL_FROM_STEPS
# steps (× members): a fifth to a half less time per step, for tens of seconds more compilation.
AUTO_UNROLL, UNROLL_FROM_STEPS = 16, 1_000_000

# Callbacks that act on the run as a whole, so they serve a stacked model too (by type). A callback of one's
# own says so with a class attribute `stackable = True`; one that reads one network and can run once per
# member (through overparam.batched.member_callbacks) says `per_member = True`.
ENSEMBLE_CALLBACKS = (ReweightingCallback, ModelCheckpoint, ResumeCheckpoint, ProgressBar)


@dataclass
class Components:
    """What `run` fits: the parts, plus facts it writes into metrics.json."""

    data: GroupDataModule
    module: ReweightedModule
    trainer: L.Trainer
    loggers: list
    rates: list[float | None]  # every member's step size (one for a single run)
    members: int
    unstable: str | None  # why full-batch GD diverges from its first step, when a bound says so

    @property
    def lr(self) -> float | None:
        return self.rates[0]

    def record(self) -> dict:
        """What metrics.json says of the training: its steps, step size and compilation, and a stacked
        model's members (their step sizes, divergences and early ends)."""
        module = self.module
        record = {"steps": self.trainer.global_step, "lr": self.lr, **module.compile_record()}
        if self.members > 1:
            record.update(members=self.members, rates=self.rates, member_failures=module.member_failures)
            if module.member_ends is not None:
                record["member_ends"] = module.member_ends.summary(module.current_epoch)
        return record


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


def build_named(cfg: DictConfig, group: str, **facts_by_name: dict) -> dict:
    """The enabled components of a name -> component group (callbacks, logger), by name."""
    return {
        name: build(cfg, f"{group}.{name}", **facts_by_name.get(name, {}))
        for name, node in (cfg[group] or {}).items()
        if node is not None
    }


def plain_partial(function):
    """Hydra 1.3.8's partials re-check its target policy on every call (≈0.5 ms, paid at every GD step)."""
    if isinstance(function, functools.partial):
        return functools.partial(function.func, *function.args, **function.keywords)
    return function


def requested_facts(cfg: DictConfig, group: str, facts: dict[str, Callable]) -> dict:
    """The facts about the data that `cfg.<group>`'s target asks for by a parameter of that name (each
    computed only when asked). An unknown target asks for none: `build` then names it."""
    try:
        parameters = inspect.signature(get_method(cfg[group]._target_)).parameters
    except Exception:  # noqa: BLE001 - reported by `build` in one sentence
        return {}
    return {name: fact() for name, fact in facts.items() if name in parameters}


def build_loss(cfg: DictConfig, data) -> Callable:
    """The per-sample loss of `cfg.loss`; a loss that reweights by class gets the training set's
    `class_counts`."""
    facts = requested_facts(cfg, "loss", {"class_counts": lambda: data.train_class_counts})
    return plain_partial(build(cfg, "loss", **facts))


def build_reweighter(cfg: DictConfig, data):
    """The reweighter of `cfg.weighting`, built with the training set's facts: every one gets `n_groups`,
    `group_counts`, `n_train`; one that asks gets each sample's `train_groups` and `train_classes`, each
    group's `group_attributes` (or None), the run's `batch_size` (None: full batch) and its `seed` (draws
    of its own)."""
    optional = {
        "seed": lambda: cfg.seed,
        "train_groups": lambda: data.train.group,
        "train_classes": lambda: data.train_classes,
        "group_attributes": lambda: data.group_attributes,
        "batch_size": lambda: data.batch_size,
    }
    facts = {"n_groups": data.n_groups, "group_counts": data.group_counts, "n_train": data.n_train}
    return build(cfg, "weighting", **facts, **requested_facts(cfg, "weighting", optional))


def assemble(
    cfg: DictConfig,
    resuming: bool,
    members: list[DictConfig] | None = None,
    memory_budget: int | None = None,
) -> Components:
    """Every part of the run, seeded as the config says, before any training step. With `members` (the
    single-run configs of a batched group, or of `run.ensemble=S`'s seeds) the networks, reweighters and
    optimizer settings are each member's own, stacked into one model; `cfg` gives the shared parts. A
    stacked model that would need more than `memory_budget` bytes (by default most of what the device has
    free) raises `GroupTooLarge`."""
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    keep_freed_memory()  # the training process's own allocator setting (see overparam.host_memory)
    if cfg.run.matmul_precision:  # the TF32 switch: "high" lets float32 matmuls use TF32 tensor cores
        torch.set_float32_matmul_precision(cfg.run.matmul_precision)
    members = members or [cfg]
    if len(members) > 1:
        check_ensemble(cfg, members)
    data = build(cfg, "data")
    inner_steps = chunk_length(cfg.run.inner_steps, data.batch_size)
    named_callbacks = build_named(cfg, "callbacks")
    callbacks = list(named_callbacks.values())
    if len(members) > 1:
        callbacks = [
            *(c for c in callbacks if not works_per_member(type(c))),
            *member_callbacks(named_callbacks, members),
        ]
    loggers = list(build_named(cfg, "logger", wandb=wandb_settings(cfg)).values())
    # A resumed run skips the sanity check (as Lightning does mid-run): it would draw from the restored RNG.
    no_sanity_check = {"num_sanity_val_steps": 0} if resuming else {}
    trainer = build(
        cfg, "trainer", callbacks=callbacks, logger=loggers, plugins=[AtomicCheckpointIO()], **no_sanity_check
    )
    set_up(data)
    nets = member_networks(cfg, members, data)
    reweighters = [build_reweighter(member, data) for member in members]
    if trainer.precision == "64-true":  # before a checkpoint is restored into them, not after (rounding)
        nets, reweighters = [n.double() for n in nets], [r.double() for r in reweighters]
    if len(nets) > 1:
        check_fits(nets, data, trainer.strategy.root_device, memory_budget)
    if reweighters[0].eager_only and (len(members) > 1 or cfg.run.compile is True):
        what = "mixes inputs" if reweighters[0].mixes_inputs else "trains on every batch itself"
        raise ConfigError(
            f"weighting {cfg.weighting._target_.rsplit('.', 1)[-1]} {what}, which eager steps of one "
            "network do: train its runs one at a time (no stacking) with run.compile=false or auto"
        )
    if reweighters[0].sample_weights(data.train.group) is not None and data.batch_size is None:
        raise ConfigError("weighting.mode=sampler draws mini-batches: set data.batch_size to an integer")
    loss_fns = [build_loss(member, data) for member in members]
    factories = [
        member_optimizer(member, data, net, reweighter, loss_fn)
        for member, net, reweighter, loss_fn in zip(members, nets, reweighters, loss_fns)
    ]
    unstable = [
        quadratic_stability_error(
            data, net, reweighter, loss_fn, factory, member.run.l2_to_init, cfg.run.loss_reduction
        )
        for member, net, reweighter, loss_fn, factory in zip(members, nets, reweighters, loss_fns, factories)
    ]
    if len(members) > 1 and any(unstable):
        raise ConfigError(f"a member diverges from its first step ({next(filter(None, unstable))})")
    # Members that restart their network at steps of their own restart their optimizer's rows alone.
    restarts = len(members) > 1 and any(r.restarts_network for r in reweighters)
    optimizer = factories[0] if all_equal(factories) and not restarts else memberwise_factory(factories)
    penalties = [member.run.l2_to_init for member in members]
    module = reweighted_module(
        cfg, data, nets, reweighters, loss_fns, penalties, optimizer, inner_steps, callbacks
    )
    if len(members) > 1:
        module.member_ends = member_ends(cfg, members, callbacks)
        module.member_stop_losses = [
            chunk_stop_loss(member, [c.callback for c in callbacks if getattr(c, "k", None) == k], reweighter)
            for k, (member, reweighter) in enumerate(zip(members, reweighters))
        ]
    if not resuming:  # every config key becomes a column (W&B, CSV hparams, TensorBoard)
        for logger in loggers:
            logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    rates = [factory.keywords.get("lr") for factory in factories]
    return Components(data, module, trainer, loggers, rates, len(nets), unstable[0])


def member_optimizer(member: DictConfig, data, net, reweighter, loss_fn) -> functools.partial:
    """The member's optimizer factory, its step size set by `run.lr_scale` when that is given."""
    if member.run.lr_scale is None:
        return instantiate(member.optim)
    rate = scaled_learning_rate(
        member.run.lr_scale, member.run.loss_reduction, data, net, reweighter, loss_fn
    )
    return instantiate(member.optim, lr=rate)


def member_ends(cfg: DictConfig, members: list[DictConfig], callbacks: list) -> MemberEnds | None:
    """Where members of a stacked model may end before the group: step budgets of their own (the group
    runs the longest), a stop rule (each member its own)."""
    budgets = [member.trainer.get("max_steps") for member in members]
    stoppers = any(isinstance(getattr(c, "callback", None), EarlyStopping) for c in callbacks)
    if len(set(budgets)) == 1:
        return MemberEnds(budgets) if stoppers else None
    if not all(isinstance(b, int) and b > 0 for b in budgets) or cfg.trainer.max_steps != max(budgets):
        raise ConfigError(
            f"trainer.max_steps differs between stacked members ({', '.join(map(str, budgets))}): each "
            "must be a number of steps, and the group's the largest"
        )
    return MemberEnds(budgets)


def all_equal(factories: list[functools.partial]) -> bool:
    first = factories[0]
    return all(f.func is first.func and f.keywords == first.keywords for f in factories)


def set_up(data) -> None:
    """Load the splits; a missing, corrupt or inconsistent data file is named in one sentence."""
    try:
        data.setup("fit")
    except (OSError, ValueError) as error:
        if isinstance(error, ConfigError):
            raise
        raise ConfigError(f"data: {error}") from error


def reweighted_module(
    cfg: DictConfig,
    data,
    nets: list,
    reweighters: list,
    loss_fns: list,
    penalties: list[float],
    optimizer,
    inner_steps: int,
    callbacks,
) -> ReweightedModule:
    """The module training one network, or a stacked model of several (each member with its own
    reweighter, loss and penalty μ)."""
    net, reweighter, loss_fn, l2_to_init = nets[0], reweighters[0], loss_fns[0], penalties[0]
    try:
        for member_loss in loss_fns:  # the loss accepts these targets
            member_loss(torch.zeros(2, data.n_outputs), data.train[[0, 1]].y)
        if len(nets) > 1:
            net, reweighter, loss_fn = (
                EnsembleNet(nets),
                EnsembleReweighter(reweighters),
                EnsembleLoss(loss_fns),
            )
            l2_to_init = penalties if len(set(penalties)) > 1 else l2_to_init
        return ReweightedModule(
            net,
            loss_fn,
            reweighter,
            optimizer,
            data.group_names,
            data.group_counts,
            data.label_threshold,
            n_classes=data.n_classes,
            inner_steps=inner_steps,
            l2_to_init=l2_to_init,
            log_grid_per_decade=cfg.run.log_grid_per_decade,
            eval_splits=tuple(cfg.run.eval_splits),
            extra_metrics=tuple(cfg.run.extra_metrics),
            loss_reduction=cfg.run.loss_reduction,
            stop_loss=chunk_stop_loss(cfg, callbacks, reweighter),
            compile=compile_steps(cfg, data, len(nets)),
            compile_unroll=unrolled_steps(cfg, len(nets)),
        )
    except ValueError as error:
        raise ConfigError(str(error)) from error


def chunk_length(inner_steps: int | str, batch_size: int | None) -> int:
    """Optimizer steps per `training_step`. `auto`: 100 on the full batch (a batch split of 1 included,
    so seed 003's Fig. 4 sweeps splits up to 1 with one setting), one per mini-batch."""
    if inner_steps == "auto":
        return 100 if batch_size is None else 1
    if inner_steps > 1 and batch_size is not None:
        raise ConfigError(
            f"run.inner_steps={inner_steps} would take that many steps on every mini-batch; "
            "set run.inner_steps=1 (or auto) with mini-batches (data.batch_size or data.split)"
        )
    return inner_steps


def compile_steps(cfg: DictConfig, data, members: int = 1) -> bool:
    """Whether full-batch steps run as compiled graphs: `run.compile=auto` compiles runs long enough to
    repay the compilation (seconds; measured in docs/performance.md): steps × members of a stacked
    model at least `COMPILE_FROM_STEPS`."""
    if cfg.run.compile == "auto":
        max_steps = cfg.trainer.get("max_steps") or 0
        return data.batch_size is None and max_steps * members >= COMPILE_FROM_STEPS
    if cfg.run.compile and data.batch_size is not None:
        raise ConfigError(
            "run.compile=true compiles full-batch steps: set data.batch_size=null or run.compile=false"
        )
    return bool(cfg.run.compile)


def unrolled_steps(cfg: DictConfig, members: int = 1) -> int:
    """Compiled steps per graph (`run.compile_unroll`; auto: `AUTO_UNROLL` for runs of at least
    `UNROLL_FROM_STEPS` steps × members, else 1)."""
    if cfg.run.compile_unroll != "auto":
        return cfg.run.compile_unroll
    max_steps = cfg.trainer.get("max_steps") or 0
    return AUTO_UNROLL if max_steps * members >= UNROLL_FROM_STEPS else 1


def chunk_stop_loss(cfg: DictConfig, callbacks: list, reweighter) -> float | None:
    """The threshold of an EarlyStopping on the full training loss, when a full-batch step's objective is
    that loss (uniform weights, mean, no penalty): chunks of inner steps then end at the first step below
    it."""
    for callback in callbacks:
        if (
            isinstance(callback, EarlyStopping)
            and callback.monitor == "train_eval/loss"
            and callback.stopping_threshold is not None
            and reweighter.uniform
            and cfg.run.loss_reduction == "mean"
            and cfg.run.l2_to_init == 0
        ):
            return float(callback.stopping_threshold)
    return None


def member_networks(cfg: DictConfig, members: list[DictConfig], data) -> list[torch.nn.Module]:
    """The network of each member as its single run would build it (the same RNG draws before the model's
    own); members must differ only in their parameters' values, so that one stacked model is all of them."""

    def build_model(member: DictConfig) -> torch.nn.Module:
        model = build(member, "model", in_shape=data.in_shape, out_features=data.n_outputs)
        return mitigate(model, member.run.mitigation)  # validate() checked the value

    if len(members) == 1:
        return [build_model(cfg)]
    nets = []
    for member in members:
        L.seed_everything(member.seed, workers=True, verbose=False)
        replay = build(member, "data")  # the data draws a single run makes before building its model
        replay.setup("fit")
        nets.append(build_model(member))
    shapes = [structure(net) for net in nets]
    for member, shape in zip(members[1:], shapes[1:]):
        if shape != shapes[0]:
            differing = [
                k
                for k in flat_keys(member.model)
                if OmegaConf.select(member, f"model.{k}") != OmegaConf.select(members[0], f"model.{k}")
            ]
            key = f"model.{differing[0]}" if differing else "the model"
            raise StructureDiffers(key)
    return nets


def structure(net: torch.nn.Module) -> list:
    """What a stacked model shares between members: every submodule's class, its parameters' and buffers'
    shapes and its plain attributes (a scale kept as a float, an activation's name)."""
    described = []
    for name, module in net.named_modules():
        shapes = {
            k: tuple(v.shape)
            for k, v in [*module._parameters.items(), *module._buffers.items()]
            if v is not None
        }
        described.append((name, type(module).__name__, plain_attributes(module), shapes))
    return described


def flat_keys(node) -> list[str]:
    container = OmegaConf.to_container(node, resolve=True)
    return [k for k in container if not k.startswith("_")]


def member_callbacks(named_callbacks: dict, members: list[DictConfig]) -> list[MemberCallback]:
    """Each callback that works per member (`works_per_member`), once per member, built from the member's
    own config."""
    return [
        MemberCallback(build(member, f"callbacks.{name}"), k)
        for name, callback in named_callbacks.items()
        if works_per_member(type(callback))
        for k, member in enumerate(members)
    ]


def check_ensemble(cfg: DictConfig, members: list[DictConfig]) -> None:
    """Stacked members share one batch stream, one data set and the run-wide callbacks; say which key
    breaks that."""
    if cfg.run.mitigation != "none":
        raise ConfigError(
            f"run.mitigation={cfg.run.mitigation} wraps one network; train it with run.ensemble=1"
        )
    if cfg.data.get("batch_size") is not None:
        raise ConfigError("ensemble members must see the same batches: set data.batch_size=null (full batch)")
    if "${seed}" in OmegaConf.to_yaml(cfg.data) and len({member.seed for member in members}) > 1:
        raise ConfigError("ensemble members must share the data, but data.seed follows seed: set data.seed")
    for name, node in sorted((cfg.callbacks or {}).items()):
        if node is None:
            continue
        callback = get_class(node._target_)
        if not (
            issubclass(callback, ENSEMBLE_CALLBACKS)
            or getattr(callback, "stackable", False)
            or works_per_member(callback)
        ):
            raise ConfigError(
                f"callbacks.{name} does not support run.ensemble>1; remove it (~callbacks.{name})"
            )
