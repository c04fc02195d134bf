"""Targets 1 and 4: full-batch GD through the framework against a bare loop and against its matmuls."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from hydra.utils import instantiate

from common import bare_steps_per_second, config, framework_steps_per_second, report


def linear_six_images(device: str, steps: int) -> dict:
    """Target 1a: seed 000's six-image linear model, full-batch GD in float64, ERM."""
    overrides = ["+experiment=grw_fig1", "weighting=erm", "callbacks=default", f"trainer.max_steps={steps}"]
    overrides += ["run.log_grid_per_decade=null"]  # chunks of 1000 inner steps: the loop, not the log grid
    overrides += [f"trainer.accelerator={'gpu' if device == 'cuda' else 'cpu'}"]
    data = instantiate(config(overrides, Path("/tmp"))["data"])
    data.setup("fit")
    x = data.train.x.flatten(1).double().to(device)
    y = data.train.y.double().to(device)
    model = torch.nn.Linear(x.shape[1], 1, bias=False).double().to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = (0.5 * (model(x).squeeze(-1) - y) ** 2).mean()
        loss.backward()
        optimizer.step()

    # Alternate the two three times and keep each one's best: a tiny step is at the mercy of the scheduler.
    framework = bare = 0.0
    for _ in range(3):
        framework = max(framework, framework_steps_per_second(overrides))
        bare = max(bare, bare_steps_per_second(step, steps, device))
    detail = f"framework {framework:,.0f} steps/s, bare loop {bare:,.0f} steps/s (best of 3)"
    return report("1a full-batch GD, linear, 6 images (float64)", framework / bare, "≥ 0.85", detail, device)


def two_layer_overrides(device: str, steps: int, m: int, n: int) -> list[str]:
    """Seed 002's net on n points of the sphere in d = 784 (the embedded MNIST holds only 1,000 images of a
    digit pair; the cost of a step depends on n, m and d only), one chunk of `steps` GD steps."""
    return [
        "+experiment=arora_fig1",
        "data=sphere",
        "data.d=784",
        "callbacks=default",
        f"model.m={m}",
        f"data.n_train={n}",
        "data.n_test=100",
        "run.lr_scale=null",
        f"optim.lr={0.1 / n:.3g}",  # any stable rate: the cost of a step does not depend on it
        f"trainer.max_steps={steps}",
        f"run.inner_steps={steps}",
        "run.log_grid_per_decade=null",
        f"trainer.accelerator={'gpu' if device == 'cuda' else 'cpu'}",
    ]


def bare_two_layer_steps_per_second(overrides: list[str], device: str, steps: int, m: int) -> float:
    """The same GD steps written by hand: u = relu(X Wᵀ) a / √m, ½ Σ (u − y)², W only."""
    data = instantiate(config(overrides, Path("/tmp"))["data"])
    data.setup("fit")
    x, y = data.train.x.flatten(1).to(device), data.train.y.float().to(device)
    W = (torch.randn(m, x.shape[1], device=device) * 0.01).requires_grad_()
    a = torch.where(torch.rand(m, device=device) < 0.5, -1.0, 1.0)
    optimizer = torch.optim.SGD([W], lr=0.1 / len(y))

    def step():
        optimizer.zero_grad(set_to_none=True)
        u = torch.relu(x @ W.T) @ a / math.sqrt(m)
        loss = 0.5 * ((u - y) ** 2).sum()
        loss.backward()
        optimizer.step()

    return bare_steps_per_second(step, steps, device)


def two_layer_relu(device: str, steps: int, m: int = 2000, n: int = 1000) -> dict:
    """Target 1b: seed 002's two-layer ReLU net (m = 2,000, n = 1,000, d = 784), full-batch GD, sum loss."""
    overrides = two_layer_overrides(device, steps, m, n)
    framework = framework_steps_per_second(overrides)
    bare = bare_two_layer_steps_per_second(overrides, device, steps, m)
    detail = f"framework {framework:,.1f} steps/s, bare loop {bare:,.1f} steps/s"
    return report(
        f"1b full-batch GD, two-layer ReLU m={m}, n={n}", framework / bare, "≥ 0.85", detail, device
    )


def matmul_seconds(n: int, m: int, d: int, device: str, steps: int) -> float:
    """The dense matmuls no GD step of the two-layer net can avoid: X Wᵀ (forward) and Gᵀ X (∂L/∂W)."""
    x, W, G = (torch.randn(*shape, device=device) for shape in ((n, d), (m, d), (n, m)))

    def step():
        torch.mm(x, W.T)
        torch.mm(G.T, x)

    return 1 / bare_steps_per_second(step, steps, device)


def paper_scale_step(device: str, steps: int, m: int, n: int, precision: str) -> dict:
    """Target 4: seed 002 at paper scale (m = n = 10,000, d = 784 on a GPU), a framework step's time over
    the time of its two dense matmuls, in float32 (`highest`) or with the TF32 switch (`high`)."""
    torch.set_float32_matmul_precision(precision)
    try:
        overrides = [*two_layer_overrides(device, steps, m, n), f"run.matmul_precision={precision}"]
        framework = 1 / framework_steps_per_second(overrides)
        bare = 1 / bare_two_layer_steps_per_second(overrides, device, steps, m)
        matmuls = matmul_seconds(n, m, 784, device, steps)
    finally:
        torch.set_float32_matmul_precision("highest")
    detail = (
        f"step: framework {framework * 1e3:,.2f} ms, bare loop {bare * 1e3:,.2f} ms, "
        f"its two matmuls {matmuls * 1e3:,.2f} ms"
    )
    name = f"4  seed 002 step m={m}, n={n}, {'TF32' if precision == 'high' else 'fp32'}"
    return report(name, framework / matmuls, "≤ 1.3", detail, device)
