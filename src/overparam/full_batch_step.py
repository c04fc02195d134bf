"""The full-batch step without Lightning's per-step machinery, eager or compiled by `torch.compile`.

One step is two calls: `gradients` (forward, per-sample losses, the reweighter's update, the objective per
member and its gradient, set as the parameters' `.grad`) and `update` (the optimizer's step). Each is
compiled as one graph when `run.compile=true`; the chunk's loop stays in Python, so every step-indexed
event (stop loss, divergence, the log grid, a reweighter's switch) still lands on its exact step.

With `run.compile_unroll=k > 1`, k such steps are also compiled as one graph (`unrolled`), which pays the
call's fixed cost (guards, wrappers, Python) once per k steps. What those k steps met (a non-finite
objective, a stop loss) is only known after them, so the module `snapshot`s the state first and
`restore`s it when one of the k steps was an event; the steps are then taken one by one from there.
"""

from __future__ import annotations

import inspect
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor
from torch._inductor.runtime.cache_dir_utils import default_cache_dir
from torch.func import functional_call

from overparam.batched.optim import update_of
from overparam.data.base import Batch

log = logging.getLogger(__name__)


def compile_cache_dir() -> Path:
    """Where compiled kernels are kept between runs: `TORCHINDUCTOR_CACHE_DIR` when the user set it, else
    `$XDG_CACHE_HOME/overparam/inductor`. Importing torch sets the variable to its own default (a folder
    in /tmp, lost at reboot), so that value counts as unset."""
    ours = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "overparam" / "inductor"
    chosen = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    if chosen is None or os.path.abspath(chosen) == os.path.abspath(default_cache_dir()):
        return ours
    return Path(chosen)


class FullBatchStep:
    """`gradients(batch)` and `update()` of a module's plain full-batch steps.

    The gradient is that of the sum of `module.objective(losses, q)` (one value per member), so each member
    of a stacked model gets its own. With `compile`, a part that cannot be compiled falls back to eager
    with one sentence saying why (`fallback`), and the first call's time, compilation included, is kept in
    `compile_seconds`.
    """

    def __init__(self, module, optimizer: torch.optim.Optimizer, compile: bool, unroll: int = 1) -> None:
        self.module, self.optimizer = module, optimizer
        trainable = [(name, p) for name, p in module.net.named_parameters() if p.requires_grad]
        self.param_names, self.params = [name for name, _ in trainable], [p for _, p in trainable]
        self.unroll = unroll if compile else 1
        self.state: list[Tensor] | None = None  # what a step changes (`state_tensors`)
        self.saved: list[Tensor] | None = None  # and its copy (`snapshot`)
        self.stepped = False  # a first step has built the optimizer's state (unrolled steps update it)
        self.update_form = update_of(optimizer) if self.unroll > 1 else None
        if self.unroll > 1 and self.update_form is None:
            print(
                f"run.compile_unroll: {type(optimizer).__name__} with these settings has no update that "
                "unrolls; each step is compiled on its own"
            )
            self.unroll = 1
        if self.update_form is not None:
            self.update_form.prepare(self.params)
        self.compile_seconds: dict[str, float] = {}  # each part's first calls, summed over its compilations
        self.fallback: str | None = None
        self.eager_only: set[str] = set()  # the parts that could not be compiled
        # The optimizer's own algorithm, without torch.optim's wrappers (profiling hooks, a no_grad that
        # breaks a compiled graph at its edges): a tenth of a small model's eager step, and one graph when
        # compiled. Plain steps are the chunk's inner steps, which skip Lightning's hooks already.
        algorithm = inspect.unwrap(type(optimizer).step)

        def update() -> None:
            with torch.no_grad():
                algorithm(optimizer)

        self.eager_calls: dict[str, Callable] = {"gradients": self.eager_gradients, "update": update}
        if self.unroll > 1:
            self.eager_calls["unrolled"] = self.unrolled_steps
        self.calls = dict(self.eager_calls)
        if compile:
            self.compile()

    def compile(self) -> None:
        """Each call compiled at its first use, afresh: a stacked model that leaves out members it has
        stopped computing compiles here again, as its gradients change layout with the rows."""
        # torch.autograd.grad inside a compiled graph: the forward and backward become one program.
        torch._dynamo.config.trace_autograd_ops = True
        # Each run compiles afresh (kernels come from the disk cache): other runs' graphs in this process
        # (a batched launcher's groups, a search's rounds) would count against the recompile limit.
        torch._dynamo.reset()
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(compile_cache_dir())  # read at every use
        for name, eager in self.eager_calls.items():
            if name in self.eager_only:  # it could not be compiled before
                continue
            # The unrolled graph calls many small kernels: a C++ wrapper calls them without Python in
            # between (a fifth less time per step on a CPU, for more time compiling).
            on_cpu = self.params[0].device.type == "cpu"
            options = {"cpp_wrapper": True} if name == "unrolled" and on_cpu else {}
            graph = torch.compile(eager, fullgraph=True, dynamic=False, options=options)
            self.calls[name] = self.compiled_from_first_call(name, graph, eager)

    def compiled_from_first_call(self, name: str, compiled: Callable, eager: Callable) -> Callable:
        """The first call compiles; on failure `eager` runs instead, now and from then on. Compilation
        fails before the graph runs, so no state has changed when it does."""

        def first_call(*args):
            started = time.perf_counter()
            try:
                result = compiled(*args)
            except Exception as error:  # noqa: BLE001 - whatever stops compilation, eager still trains
                reason = str(error).strip().split("\n")[0]
                if self.fallback is None:  # one sentence: the first part that could not be compiled
                    self.fallback = (
                        f"run.compile: the {name} step could not be compiled ({reason}); it runs eagerly"
                    )
                    print(self.fallback)
                self.calls[name] = eager
                self.eager_only.add(name)
                result = eager(*args)
                if name == "unrolled":  # eager, k steps at once gain nothing: they go one by one from now
                    self.unroll = 1
                return result
            seconds = time.perf_counter() - started
            self.compile_seconds[name] = round(self.compile_seconds.get(name, 0) + seconds, 3)
            log.info("compiled the %s step in %.1f s", name, seconds)
            self.calls[name] = compiled
            return result

        return first_call

    def rows(self, x: Tensor, y: Tensor, group: Tensor, index: Tensor, params: dict | None = None):
        """The objectives, outputs, losses and q at the network's parameters (or at `params`, by name)."""
        module = self.module
        outputs = module.net(x) if params is None else functional_call(module.net, params, (x,))
        losses = module.loss_fn(outputs, y)
        q = module.reweighter(losses, group, index)
        return module.objective(losses, q, params), outputs, losses, q

    def eager_gradients(self, x: Tensor, y: Tensor, group: Tensor, index: Tensor):
        objectives, outputs, losses, q = self.rows(x, y, group, index)
        total = objectives.sum() if objectives.dim() else objectives  # a single network's is a scalar
        grads = torch.autograd.grad(total, self.params, allow_unused=True)
        return objectives.detach(), outputs.detach(), losses.detach(), q.detach(), grads

    def gradients(self, batch: Batch) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The objective per member, the outputs, losses and weights at the current parameters; their
        gradient is left in the parameters' `.grad`."""
        gradients = self.calls["gradients"]
        objectives, outputs, losses, q, grads = gradients(batch.x, batch.y, batch.group, batch.index)
        for param, grad in zip(self.params, grads):
            param.grad = grad
        self.stepped = True
        return objectives, outputs, losses, q

    def update(self) -> None:
        self.calls["update"]()

    def unrolled_steps(self, values: list[Tensor], states: list[dict], x: Tensor, y: Tensor, group, index):
        """`unroll` steps on the parameters' `values` (updated in place, as their optimizer `states`):
        every step's objectives `(unroll, ...)`, and the last one's outputs, losses and q (those at the
        parameters before its update). The network runs on the values (`functional_call`) and the
        optimizer's update is its functional form, so the whole loop is one graph."""
        names, update = self.param_names, self.update_form
        objectives = []
        for _ in range(self.unroll):
            leaves = [value.detach().requires_grad_(True) for value in values]
            step_objectives, outputs, losses, q = self.rows(x, y, group, index, dict(zip(names, leaves)))
            grads = torch.autograd.grad(step_objectives.sum(), leaves, allow_unused=True)
            with torch.no_grad():
                for value, grad, state in zip(values, grads, states):
                    if grad is not None:  # as torch.optim, a parameter without a gradient stays
                        update(value, grad, state)
            objectives.append(step_objectives.detach())
        return torch.stack(objectives), outputs.detach(), losses.detach(), q.detach()

    def unrolled(self, batch: Batch) -> tuple[Tensor, Tensor, Tensor, Tensor] | None:
        """`unroll` steps at once: every step's objectives `(unroll, ...)`, and the last step's outputs,
        losses and q. None, with nothing changed, if the optimizer's settings changed since it compiled
        (they are constants of the graph); steps then go one by one."""
        current = update_of(self.optimizer) if self.unroll > 1 else None
        if current is None or current.settings != self.update_form.settings:
            self.unroll = 1
            return None
        values = [param.detach() for param in self.params]  # the parameters' storage, updated in place
        states = [self.optimizer.state[param] for param in self.params]
        return self.calls["unrolled"](values, states, batch.x, batch.y, batch.group, batch.index)

    def forget_state(self) -> None:
        """The optimizer's state was dropped (a restart): the next step rebuilds it, and the tensors a step
        changes are gathered again after it."""
        self.stepped, self.state, self.saved = False, None, None

    def state_tensors(self) -> list[Tensor]:
        """Every tensor a step changes: the parameters, the optimizer's state, the reweighter's buffers.
        Steps update them in place (reweighters keep their state in buffers they `copy_` into), so the
        list is gathered once, after the first step has built the optimizer's state."""
        if self.state is None:
            optimizer_state = [
                value
                for param in self.params
                for value in self.optimizer.state[param].values()
                if isinstance(value, Tensor)
            ]
            buffers = self.module.reweighter.buffers()
            self.state = [tensor.detach() for tensor in (*self.params, *optimizer_state, *buffers)]
            self.saved = [tensor.clone() for tensor in self.state]
        return self.state

    def snapshot(self) -> list[Tensor]:
        """A copy of `state_tensors`, into the same copies every time (one call, nothing allocated)."""
        state = self.state_tensors()  # built with its copies at the first call
        torch._foreach_copy_(self.saved, state)
        return self.saved

    def restore(self, saved: list[Tensor]) -> None:
        """Back to the `snapshot`, in place: the compiled graphs hold on to the tensors they update."""
        torch._foreach_copy_(self.state_tensors(), saved)
