"""Whether a stacked model fits the device's memory, estimated before it is built."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.utils._pytree import tree_leaves

from overparam.errors import InputError

SHARE_OF_AVAILABLE = 0.8  # of the memory available when the group starts; the rest is headroom
SAMPLE_ROWS = 64  # activations are measured on this many training examples and scaled to the full batch


class GroupTooLarge(InputError):
    """A stacked model would not fit; `fits` members would (0 or 1: none can share a model)."""

    def __init__(self, members: int, each: int, budget: int) -> None:
        self.fits = budget // each if each else members
        super().__init__(
            f"a stacked model of {members} members needs about {readable(members * each)} "
            f"({each / 2**20:.1f} MiB per member), more than the {readable(budget)} it may use"
        )


def readable(size: int) -> str:
    return f"{size / 2**30:.2f} GiB" if size >= 2**30 else f"{size / 2**20:.1f} MiB"


def member_bytes(net: nn.Module, train_split, n_train: int) -> int:
    """Bytes one member holds while it trains on the full batch: its parameters, their gradients and two
    optimizer moments (Adam's; plain GD keeps fewer), and the activations its forward keeps for the
    backward, twice (their gradients), measured with forward hooks on a few examples and scaled."""
    parameter = next(net.parameters())
    rows = min(n_train, SAMPLE_ROWS)
    inputs = train_split[list(range(rows))].x.to(parameter.device, parameter.dtype)
    activations = 0

    def count(module, args, output) -> None:
        nonlocal activations
        activations += sum(t.numel() * t.element_size() for t in tree_leaves(output) if isinstance(t, Tensor))

    leaves = [module for module in net.modules() if not list(module.children())]
    handles = [module.register_forward_hook(count) for module in leaves]
    try:
        with torch.no_grad():
            net(inputs)
    finally:
        for handle in handles:
            handle.remove()
    parameters = sum(p.numel() * p.element_size() for p in net.parameters())
    return 4 * parameters + 2 * activations * n_train // rows


def available_bytes(device: torch.device) -> int:
    """The memory free for a new group on `device` (on a CPU the kernel's MemAvailable)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


def check_fits(nets: list[nn.Module], data, device: torch.device, budget: int | None) -> None:
    """Raise `GroupTooLarge` when the stacked model of `nets` would need more than `budget` bytes (by
    default a share of what `device` has available)."""
    each = member_bytes(nets[0], data.train, data.n_train)
    if budget is None:
        budget = int(SHARE_OF_AVAILABLE * available_bytes(device))
    if len(nets) * each > budget:
        raise GroupTooLarge(len(nets), each, budget)
