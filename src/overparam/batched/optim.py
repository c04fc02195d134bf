"""One optimizer for stacked members that each have their own hyperparameters.

torch.optim takes a scalar learning rate, weight decay, momentum, ... per parameter group, but the
parameters of a batched group are stacked: member k is row k of every tensor. `MemberwiseOptimizer`
applies the update of SGD, Adam or Adagrad with every hyperparameter a per-member tensor broadcast along
the rows, in the order torch's single-tensor implementations apply it (tested against torch.optim run on
each member alone), so member k moves exactly as its single run's optimizer moves it.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor

from overparam.errors import ConfigError

# Each supported optimizer's hyperparameters with torch's defaults; anything else it is given (amsgrad,
# foreach, ...) must be left at its default.
DEFAULTS = {
    torch.optim.SGD: {"lr": 1e-3, "momentum": 0.0, "dampening": 0.0, "weight_decay": 0.0, "nesterov": False},
    torch.optim.Adam: {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0},
    torch.optim.Adagrad: {
        "lr": 1e-2,
        "lr_decay": 0.0,
        "weight_decay": 0.0,
        "initial_accumulator_value": 0.0,
        "eps": 1e-10,
    },
}


def memberwise_factory(factories: list) -> functools.partial:
    """One optimizer factory for the stacked members from each member's `functools.partial` factory
    (what `instantiate(cfg.optim)` gives); a ConfigError says why they cannot share one."""
    kinds = {factory.func for factory in factories}
    if len(kinds) > 1:
        raise ConfigError(f"optim differs in its class ({', '.join(sorted(k.__name__ for k in kinds))})")
    kind = kinds.pop()
    if kind not in DEFAULTS:
        raise ConfigError(f"optim {kind.__name__} has no member-wise update (SGD, Adam or Adagrad)")
    settings = []
    for factory in factories:
        unknown = set(factory.keywords) - set(DEFAULTS[kind])
        if unknown:
            raise ConfigError(f"optim.{sorted(unknown)[0]} has no member-wise update")
        settings.append({**DEFAULTS[kind], **factory.keywords})
    if len({s.get("nesterov") for s in settings}) > 1:
        raise ConfigError("optim.nesterov differs between members")
    return functools.partial(MemberwiseOptimizer, kind=kind, settings=settings)


def along_rows(values: Tensor, like: Tensor) -> Tensor:
    """One value per member `(members,)` shaped to broadcast along the rows of `like` (row k = member k)."""
    return values.reshape(-1, *([1] * (like.dim() - 1)))


class MemberwiseUpdate:
    """The update of SGD, Adam or Adagrad on one tensor, every hyperparameter of member k taken from
    `settings[k]` and broadcast along row k (one member's settings broadcast over an unstacked tensor).
    Its state is a dict of tensors, as torch.optim keeps it, so it can run inside a compiled graph."""

    def __init__(self, kind: type, settings: list[dict]) -> None:
        self.kind, self.settings = kind, settings
        self.nesterov = bool(settings[0].get("nesterov"))
        # Each hyperparameter as one tensor of every member's values, built once per dtype and device: a
        # compiled step then reads one input instead of guarding on every member's Python number.
        self.tensors: dict[tuple, Tensor] = {}

    def member_values(self, name: str, like: Tensor) -> Tensor:
        """Hyperparameter `name` of every member, `(members,)` (`(members, 2)` for Adam's betas), in
        `like`'s dtype and on its device."""
        key = (name, like.dtype, like.device)
        if key not in self.tensors:
            values = [s[name] for s in self.settings]
            self.tensors[key] = torch.tensor(values, dtype=like.dtype, device=like.device)
        return self.tensors[key]

    def prepare(self, params: list[Tensor]) -> None:
        """Builds the hyperparameters' tensors for `params` now, so that a compiled step finds them."""
        for param in params:
            for name in self.settings[0]:
                if name != "nesterov":
                    self.member_values(name, param)

    def per_member(self, name: str, like: Tensor) -> Tensor:
        """Hyperparameter `name` of every member as a tensor broadcasting along `like`'s rows."""
        return along_rows(self.member_values(name, like), like)

    def __call__(self, param: Tensor, grad: Tensor, state: dict) -> None:
        getattr(self, f"{self.kind.__name__.lower()}_step")(param, grad, state)

    def fresh_state(self, param: Tensor) -> dict[str, Tensor]:
        """The state this optimizer builds at its first step (SGD builds its buffer from the gradient).
        Step counts are one per member, so that members may restart at steps of their own."""
        members = len(self.settings)
        if self.kind is torch.optim.Adam:
            return {
                "step": torch.zeros(members),
                "exp_avg": torch.zeros_like(param),
                "exp_avg_sq": torch.zeros_like(param),
            }
        if self.kind is torch.optim.Adagrad:
            accumulator = self.per_member("initial_accumulator_value", param).expand_as(param).clone()
            return {"step": torch.zeros(members), "sum": accumulator}
        return {}

    def restart_rows(self, param: Tensor, state: dict, rows: list[int]) -> None:
        """Members `rows` start afresh, as at their first step; the others keep their state."""
        if not state:
            return
        for key, value in self.fresh_state(param).items():
            if state[key].dim() < value.dim():  # one step count for all members (torch.optim's)
                state[key] = state[key].expand_as(value).clone()
            state[key][rows] = value[rows].to(state[key])
        if state.get("momentum_buffer") is not None:
            restarted = state.setdefault(
                "restarted", torch.zeros(len(self.settings), dtype=torch.bool, device=param.device)
            )
            restarted[rows] = True

    @staticmethod
    def step_count(state: dict, param: Tensor) -> Tensor:
        """The step count as a tensor in the parameter's dtype, one per member broadcasting along rows."""
        step = torch.as_tensor(state["step"], dtype=param.dtype)
        return along_rows(step, param) if step.dim() else step

    def decayed(self, param: Tensor, grad: Tensor) -> Tensor:
        return grad + self.per_member("weight_decay", param) * param

    def sgd_step(self, param: Tensor, grad: Tensor, state: dict) -> None:
        grad = self.decayed(param, grad)
        if all(s["momentum"] == 0 for s in self.settings):  # torch.optim keeps no buffer then
            param.sub_(self.per_member("lr", param) * grad)
            return
        if state.get("momentum_buffer") is None:
            state["momentum_buffer"] = grad.clone()
        else:
            dampening = self.per_member("dampening", param)
            state["momentum_buffer"].mul_(self.per_member("momentum", param)).add_((1 - dampening) * grad)
            restarted = state.pop("restarted", None)  # rows whose first step this is: their buffer is grad
            if restarted is not None:
                rows = along_rows(restarted, param)
                state["momentum_buffer"].copy_(torch.where(rows, grad, state["momentum_buffer"]))
        buffer = state["momentum_buffer"]
        if self.nesterov:
            grad = grad + self.per_member("momentum", param) * buffer
        else:
            # A member without momentum steps along its gradient (its buffer is that gradient).
            grad = torch.where(self.per_member("momentum", param) != 0, buffer, grad)
        param.sub_(self.per_member("lr", param) * grad)

    def adam_step(self, param: Tensor, grad: Tensor, state: dict) -> None:
        if not state:
            state.update(self.fresh_state(param))
        state["step"] += 1
        grad = self.decayed(param, grad)
        betas = self.member_values("betas", param)
        beta1, beta2 = along_rows(betas[:, 0], param), along_rows(betas[:, 1], param)
        step = self.step_count(state, param)
        state["exp_avg"].lerp_(grad, 1 - beta1)
        state["exp_avg_sq"].mul_(beta2).add_((1 - beta2) * grad * grad)
        step_size = self.per_member("lr", param) / (1 - beta1**step)
        denominator = (state["exp_avg_sq"].sqrt() / (1 - beta2**step).sqrt()).add_(
            self.per_member("eps", param)
        )
        param.sub_(step_size * state["exp_avg"] / denominator)

    def adagrad_step(self, param: Tensor, grad: Tensor, state: dict) -> None:
        if not state:
            state.update(self.fresh_state(param))
        state["step"] += 1
        grad = self.decayed(param, grad)
        step = self.step_count(state, param)
        rate = self.per_member("lr", param) / (1 + (step - 1) * self.per_member("lr_decay", param))
        state["sum"].add_(grad * grad)
        param.sub_(rate * grad / state["sum"].sqrt().add_(self.per_member("eps", param)))


def update_of(optimizer: torch.optim.Optimizer) -> MemberwiseUpdate | None:
    """The update `optimizer` makes, as a `MemberwiseUpdate` over its state (None where it has no such
    form: another class, several parameter groups, or a setting beyond the supported ones)."""
    if isinstance(optimizer, MemberwiseOptimizer):
        return optimizer.update
    kind = type(optimizer)
    if kind not in DEFAULTS or len(optimizer.param_groups) != 1:
        return None
    group = optimizer.param_groups[0]
    settings = {name: group[name] for name in DEFAULTS[kind]}
    beyond = {"amsgrad", "maximize", "differentiable", "decoupled_weight_decay", "fused"}
    if any(group.get(name) for name in beyond) or any(isinstance(v, Tensor) for v in settings.values()):
        return None
    return MemberwiseUpdate(kind, [settings])


class MemberwiseOptimizer(torch.optim.Optimizer):
    """SGD, Adam or Adagrad over stacked parameters (leading dimension = member), member k with
    `settings[k]`."""

    def __init__(self, params, kind: type, settings: list[dict]) -> None:
        super().__init__(params, {})
        self.update = MemberwiseUpdate(kind, settings)
        params = [p for group in self.param_groups for p in group["params"]]
        self.update.prepare(params)
        for param in params:  # every entry now, so a compiled step does not see the dict change at its first
            self.state[param]  # noqa: B018 - (the state is a defaultdict; its step fills the entry)
        self.kind, self.settings, self.members = kind, settings, len(settings)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is not None:
                    self.update(param, param.grad, self.state[param])
        return loss

    def restart_members(self, rows: list[int]) -> None:
        """Members `rows` (rows of every parameter) restart their optimizer state, as a fresh optimizer."""
        for group in self.param_groups:
            for param in group["params"]:
                self.update.restart_rows(param, self.state[param], rows)
