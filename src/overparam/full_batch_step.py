"""The full-batch step without Lightning's per-step machinery, eager or compiled by `torch.compile`.

One step is two calls: `gradients` (forward, per-sample losses, the reweighter's update, the objective per
member and its gradient, set as the parameters' `.grad`) and `update` (the optimizer's step). Each is
compiled as one graph when `run.compile=true`; the chunk's loop stays in Python, so every step-indexed
event (stop loss, divergence, the log grid, a reweighter's switch) still lands on its exact step.
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

from overparam.data.base import Batch

log = logging.getLogger(__name__)


def compile_cache_dir() -> Path:
    """Where compiled kernels are kept between runs (`TORCHINDUCTOR_CACHE_DIR` when set)."""
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "overparam" / "inductor"
    return Path(os.environ.get("TORCHINDUCTOR_CACHE_DIR", default))


class FullBatchStep:
    """`gradients(batch)` and `update()` of a module's plain full-batch steps.

    The gradient is that of the sum of `module.objective(losses, q)` (one value per member), so each member
    of a stacked model gets its own. With `compile`, a part that cannot be compiled falls back to eager
    with one sentence saying why (`fallback`), and the first call's time, compilation included, is kept in
    `compile_seconds`.
    """

    def __init__(self, module, optimizer: torch.optim.Optimizer, compile: bool) -> None:
        self.module = module
        self.params = [p for p in module.net.parameters() if p.requires_grad]
        self.compile_seconds: dict[str, float] = {}
        self.fallback: str | None = None
        self.calls: dict[str, Callable] = {"gradients": self.eager_gradients, "update": optimizer.step}
        if compile:
            # torch.autograd.grad inside a compiled graph: the forward and backward become one program.
            torch._dynamo.config.trace_autograd_ops = True
            # Each run compiles afresh (kernels come from the disk cache): other runs' graphs in this process
            # (a batched launcher's groups, a search's rounds) would count against the recompile limit.
            torch._dynamo.reset()
            os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(compile_cache_dir()))
            # The optimizer's own algorithm, without torch.optim's wrappers (profiling hooks, a no_grad
            # that breaks the graph at its edges), so that its update is one graph too.
            algorithm = inspect.unwrap(type(optimizer).step)

            def update() -> None:
                with torch.no_grad():
                    algorithm(optimizer)

            to_compile = {"gradients": self.eager_gradients, "update": update}
            for name, eager in list(self.calls.items()):
                graph = torch.compile(to_compile[name], fullgraph=True, dynamic=False)
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
                self.fallback = (
                    f"run.compile: the {name} step could not be compiled ({reason}); it runs eagerly"
                )
                print(self.fallback)
                self.calls[name] = eager
                return eager(*args)
            self.compile_seconds[name] = round(time.perf_counter() - started, 3)
            log.info("compiled the %s step in %.1f s", name, self.compile_seconds[name])
            self.calls[name] = compiled
            return result

        return first_call

    def eager_gradients(self, x: Tensor, y: Tensor, group: Tensor, index: Tensor):
        module = self.module
        outputs = module.net(x)
        losses = module.loss_fn(outputs, y)
        q = module.reweighter(losses, group, index)
        objectives = module.objective(losses, q)
        grads = torch.autograd.grad(objectives.sum(), self.params, allow_unused=True)
        return objectives.detach(), outputs.detach(), losses.detach(), q.detach(), grads

    def gradients(self, batch: Batch) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The objective per member, the outputs, losses and weights at the current parameters; their
        gradient is left in the parameters' `.grad`."""
        gradients = self.calls["gradients"]
        objectives, outputs, losses, q, grads = gradients(batch.x, batch.y, batch.group, batch.index)
        for param, grad in zip(self.params, grads):
            param.grad = grad
        return objectives, outputs, losses, q

    def update(self) -> None:
        self.calls["update"]()
