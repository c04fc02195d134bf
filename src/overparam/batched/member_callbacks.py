"""Callbacks written for one network, run once per member of a stacked model.

A callback class that says `per_member = True` reads the training run only through `pl_module.net`,
`reweighter`, `loss_fn`, `learning_rate`, the run's settings and `log`/`log_dict`. In a stacked group each
member gets its own instance, built from the member's config (so a `dirpath: ${run_dir}` is the member's
directory), and sees a `MemberModule`: member k's network as a module of its own whose parameters share
storage with row k of the stacked ones, its reweighter, the per-sample loss, and logging into its own
columns.
"""

from __future__ import annotations

import copy

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from torch import Tensor, nn

from overparam.ensemble import member_key, member_of
from overparam.events import StepEvents

# Every hook Lightning calls on a callback with (trainer, pl_module, ...).
HOOKS = [
    name
    for name in dir(L.Callback)
    if (name.startswith("on_") or name in ("setup", "teardown")) and callable(getattr(L.Callback, name))
]


def member_network(stacked, k: int) -> nn.Module:
    """Member k of an `EnsembleNet` as a module of its own, its tensors views of row k of the stacked ones
    (so it follows training without a copy)."""
    params, buffers = stacked.member_state()
    state = {name: tensor[k].detach() for name, tensor in {**params, **buffers}.items()}
    network = copy.deepcopy(stacked.template)
    network.load_state_dict(state, assign=True)
    return network


def member_state_dict(module, k: int) -> dict[str, Tensor]:
    """Member k's part of a stacked module's state, under the names its single run's module gives it:
    `net.*`, `reweighter.*` and, with the penalty to θ0, `theta0`."""
    network = member_network(module.net, k)
    state = {f"net.{name}": tensor.detach().clone() for name, tensor in network.state_dict().items()}
    reweighter = module.reweighter.members[k].state_dict()
    state.update({f"reweighter.{name}": tensor.detach().clone() for name, tensor in reweighter.items()})
    if module.theta0 is not None:  # θ0 of every stacked parameter, flattened in turn: take row k of each
        rows, start = [], 0
        for param in module.net.parameters():
            rows.append(module.theta0[start : start + param.numel()].view_as(param)[k].flatten())
            start += param.numel()
        state["theta0"] = torch.cat(rows).clone()
    return state


def load_member_network(module, k: int, state: dict[str, Tensor]) -> None:
    """Put a member's `net.*` tensors (`member_state_dict`'s names) into row k of the stacked model."""
    params, _ = module.net.member_state()
    with torch.no_grad():
        for name, stacked in params.items():
            stacked[k].copy_(state[f"net.{name}"])


class MemberModule:
    """What a per-member callback sees as `pl_module`: member k of the module's stacked model."""

    def __init__(self, module, k: int) -> None:
        self.module, self.k = module, k
        self.network: nn.Module | None = None

    @property
    def net(self) -> nn.Module:
        row = self.module.net.stacked[0][self.k]
        # Rebuilt when the stacked tensors moved (a device or dtype change replaces their storage).
        if self.network is None or next(self.network.parameters()).data_ptr() != row.data_ptr():
            self.network = member_network(self.module.net, self.k)
        return self.network

    @property
    def reweighter(self):
        return self.module.reweighter.members[self.k]

    @property
    def loss_fn(self):
        return self.module.loss_fn.loss_fns[self.k]

    @property
    def l2_to_init(self) -> float:
        mu = self.module.l2_to_init
        return float(mu[self.k]) if isinstance(mu, Tensor) else mu

    @property
    def learning_rate(self) -> float:
        optimizer = self.module.trainer.optimizers[0]
        members = getattr(optimizer, "settings", None)  # a MemberwiseOptimizer's per-member settings
        return members[self.k]["lr"] if members else optimizer.param_groups[0]["lr"]

    def log_dict(self, values: dict, **_) -> None:
        self.module.log_members({member_key(key, self.k): value for key, value in values.items()})

    def log(self, name: str, value, **_) -> None:
        self.log_dict({name: value})

    def __getattr__(self, name: str):
        return getattr(self.module, name)


# Hooks an ended member's callbacks still get while the others train: the run's start and end, state.
UNTIL_THE_END = {
    "setup",
    "teardown",
    "on_fit_start",
    "on_fit_end",
    "on_train_start",
    "on_train_end",
    "on_save_checkpoint",
    "on_load_checkpoint",
    "on_exception",
}


class MemberTrainer:
    """What member k's callbacks see as `trainer`: the group's, with member k's logged values under their
    single-run names in `callback_metrics`, a `should_stop` that ends member k alone, and, once member k
    has ended, its step stopped at the member's last step."""

    def __init__(self, trainer, module, k: int) -> None:
        self.trainer, self.module, self.k = trainer, module, k

    @property
    def ended_at(self) -> int | None:
        return self.module.ended_members.get(self.k)

    @property
    def global_step(self) -> int:
        step = self.trainer.global_step
        return step if self.ended_at is None else min(step, self.ended_at)

    @property
    def callback_metrics(self) -> dict:
        return metrics_by_member(self.trainer.callback_metrics, self.module).get(self.k, {})

    @property
    def should_stop(self) -> bool:
        return self.ended_at is not None

    @should_stop.setter
    def should_stop(self, stop: bool) -> None:
        if stop and self.ended_at is None:  # its run ends at this chunk end; the others go on
            self.module.end_member(self.k, self.trainer.global_step, None)

    def save_checkpoint(self, filepath, weights_only: bool = False, storage_options=None) -> None:
        """Member k's checkpoint, as its single run's module would name its state (`member_state_dict`),
        with its epoch and step; no optimizer or loop state (a member's checkpoint is for evaluation)."""
        checkpoint = {
            "epoch": self.current_epoch,
            "global_step": self.global_step,
            "pytorch-lightning_version": L.__version__,
            "state_dict": member_state_dict(self.module, self.k),
        }
        self.trainer.strategy.save_checkpoint(checkpoint, filepath, storage_options=storage_options)

    def __getattr__(self, name: str):
        return getattr(self.trainer, name)


class MemberMetrics(dict):
    """A member's view of the group's metrics. `ModelCheckpoint` deep-copies what it reads at every
    epoch's end, once per member here; the values are tensors nothing changes in place (a new value is a
    new tensor), so a copy of the mapping is enough."""

    def __deepcopy__(self, memo) -> dict:
        return dict(self)


def metrics_by_member(metrics: dict, module) -> dict[int, dict]:
    """Every member's view of the group's `callback_metrics` (the group's own values and the member's,
    under their single-run names), built in one pass and kept until a value changes: every member's
    callbacks ask at every chunk end, and a group of 64 logs thousands of keys."""
    fingerprint = tuple(map(id, metrics.values())), tuple(metrics)
    cached = getattr(module, "_metrics_by_member", None)
    if cached is not None and cached[0] == fingerprint:
        return cached[1]
    shared, own = {}, {}
    for key, value in metrics.items():
        owner, name = member_of(key)
        if owner is None:
            shared[name] = value
        else:
            own.setdefault(owner, {})[name] = value
    views = {k: MemberMetrics({**shared, **own.get(k, {})}) for k in range(module.members)}
    module._metrics_by_member = (fingerprint, views)
    return views


def works_per_member(callback_class: type) -> bool:
    """Callbacks that read one network, stop one run or keep one run's checkpoints: once per member in a
    stacked model."""
    return getattr(callback_class, "per_member", False) or issubclass(
        callback_class, (EarlyStopping, ModelCheckpoint)
    )


class MemberCallback(StepEvents, L.Callback):
    """`callback` (built from member k's config) run on member k of a stacked model."""

    def __init__(self, callback: L.Callback, k: int) -> None:
        self.callback, self.k = callback, k
        self.view: MemberModule | None = None

    @property
    def state_key(self) -> str:
        return f"{self.callback.state_key}[member{self.k}]"

    def member(self, pl_module) -> MemberModule:
        if self.view is None or self.view.module is not pl_module:
            self.view = MemberModule(pl_module, self.k)
        return self.view

    def next_event_step(self, step: int) -> int | None:
        if self.view is not None and self.k in self.view.module.ended_members:
            return None
        if isinstance(self.callback, StepEvents):
            return self.callback.next_event_step(step)
        return None

    def state_dict(self) -> dict:
        return self.callback.state_dict()

    def load_state_dict(self, state_dict: dict) -> None:
        self.callback.load_state_dict(state_dict)


def forward_hook(name: str):
    def hook(self, trainer, pl_module, *args, **kwargs):
        ends = getattr(pl_module, "member_ends", None)
        if ends is not None and self.k in ends.ends:  # after its last step: as its single run, ended
            reporting = ends.reported.get(self.k) == trainer.global_step
            if trainer.state.fn == "fit" and name not in UNTIL_THE_END and not reporting:
                return None
        trainer = MemberTrainer(trainer, pl_module, self.k)
        return getattr(self.callback, name)(trainer, self.member(pl_module), *args, **kwargs)

    hook.__name__ = name
    return hook


for _name in HOOKS:
    setattr(MemberCallback, _name, forward_hook(_name))
