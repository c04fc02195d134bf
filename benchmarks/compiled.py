"""Targets 5a and 5c: `run.compile=true` against bare `torch.compile`d loops of the same math.

The math is seed 000's Fig. 1 step: a linear model without bias on six MNIST images, squared loss,
Group DRO (η_q = 1), full-batch GD with η = 0.01, float64. The bare loops compile it as anyone would: the
gradient (forward, Group DRO's update, the objective, `torch.autograd.grad`) as one graph, the SGD step as
another. Both sides are timed after warm-up, so compilation is left out (the framework records it in
metrics.json).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from hydra.utils import instantiate

from common import QUIET, StepTimer, bare_steps_per_second, config, quietly, report

WARMUP = 1000  # steps before the framework's clock starts: one chunk, compilation included
ETA_Q, LR = 1.0, 0.01


def fig1_overrides(device: str, steps: int, members: int, unroll: int = 16) -> list[str]:
    return [
        "+experiment=grw_fig1",
        "weighting=gdro_nu1",
        "callbacks=default",
        "run.log_grid_per_decade=null",
        "run.inner_steps=1000",
        "run.compile=true",
        f"run.compile_unroll={unroll}",  # auto unrolls 16 from 10^6 steps: the long runs compiling is for
        f"run.ensemble={members}",
        f"optim.lr={LR}",
        f"trainer.max_steps={WARMUP + steps}",
        f"trainer.accelerator={'gpu' if device == 'cuda' else 'cpu'}",
    ]


def framework_steps_per_second(overrides: list[str]) -> float:
    from overparam.entry import execute

    timer = ["+callbacks.timer._target_=common.StepTimer", f"+callbacks.timer.warmup={WARMUP}"]
    with tempfile.TemporaryDirectory() as run_dir:
        quietly(execute, config([*overrides, *QUIET, *timer], Path(run_dir)))
    return StepTimer.last["steps"] / StepTimer.last["seconds"]


def bare_stacked_steps_per_second(overrides: list[str], device: str, steps: int, members: int) -> float:
    """`members` copies of the linear model as one (members, d) matrix, each with its own Group DRO
    weights, compiled as two graphs."""
    data = instantiate(config(overrides, Path("/tmp"))["data"])
    data.setup("fit")
    x = data.train.x.flatten(1).double().to(device)
    y = data.train.y.double().to(device)
    groups = data.train.group.to(device)
    one_hot = torch.nn.functional.one_hot(groups).double()
    counts = one_hot.sum(0)
    W = torch.empty(members, x.shape[1], dtype=torch.float64, device=device)
    torch.nn.init.kaiming_uniform_(W, a=5**0.5)  # nn.Linear's default
    W.requires_grad_()
    g = torch.full((members, len(counts)), 1 / len(counts), dtype=torch.float64, device=device)
    optimizer = torch.optim.SGD([W], lr=LR)

    def gradients():
        losses = 0.5 * (W @ x.T - y) ** 2  # (members, n)
        group_loss = losses.detach() @ one_hot / counts
        g.copy_(torch.softmax(torch.log(g) + ETA_Q * group_loss, dim=1))
        q = (g / counts)[:, groups]
        objective = (q * losses).sum()
        return objective.detach(), torch.autograd.grad(objective, [W])[0]

    compiled_gradients = torch.compile(gradients, fullgraph=True)
    compiled_update = torch.compile(optimizer.step)

    def step():
        _, W.grad = compiled_gradients()
        compiled_update()

    torch._dynamo.config.trace_autograd_ops = True
    # Best of 3: on 2 cores one pass varies by up to 2× (threads left spinning by the framework's run).
    return max(bare_steps_per_second(step, steps, device) for _ in range(3))


def compiled_step(device: str, steps: int, members: int, unroll: int = 16) -> dict:
    overrides = fig1_overrides(device, steps, members, unroll)
    framework = framework_steps_per_second(overrides)
    bare = bare_stacked_steps_per_second(overrides, device, steps, members)
    detail = (
        f"framework {1e6 / framework:,.1f} µs/step, bare compiled loop {1e6 / bare:,.1f} µs/step "
        f"(after warm-up; the bare loop's best of 3)"
    )
    ratio = framework / bare
    if members == 1:
        return report("5a compiled single run, Fig. 1 (Group DRO)", ratio, "≥ 0.8", detail, device)
    return report(f"5c {members} members stacked and compiled, Fig. 1", ratio, "≥ 0.7", detail, device)
