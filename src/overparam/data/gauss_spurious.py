"""Gaussian core / spurious / noise features (seed 001 §7.1, after Sagawa et al. 2020b)."""

from __future__ import annotations

import torch

from overparam.data.base import GroupDataModule, TensorSplit, encode_labels


class GaussSpurious(GroupDataModule):
    """x = [y·1/√d_c + core_noise·ε/√d_c, a·1/√d_s + spurious_noise·ε/√d_s, ε/√d_n] for y, a ∈ {±1}.

    Groups are (y, a) in the order (−,−), (−,+), (+,−), (+,+); `train_group_sizes` sets the training
    correlation, val and test have `eval_group_size` points per group. Inputs are divided by the largest
    training norm, so ‖x‖ ≤ 1 on the training set.
    """

    group_names = ("y0_a0", "y0_a1", "y1_a0", "y1_a1")

    def __init__(
        self,
        train_group_sizes: list[int],
        eval_group_size: int,
        d_core: int,
        d_spurious: int,
        d_noise: int,
        core_noise: float,
        spurious_noise: float,
        batch_size: int | None,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        labels: str = "pm1",
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size, eval_batch_size, num_workers, labels, seed)
        if len(train_group_sizes) != 4 or min(train_group_sizes) < 1:
            raise ValueError(f"train_group_sizes must be 4 positive counts, got {list(train_group_sizes)!r}")
        if min(d_core, d_spurious) < 1 or d_noise < 0:
            raise ValueError(
                f"d_core and d_spurious must be ≥ 1 and d_noise ≥ 0, got {d_core}, {d_spurious}, {d_noise}"
            )
        self.train_group_sizes, self.eval_group_size = list(train_group_sizes), eval_group_size
        self.dims = (d_core, d_spurious, d_noise)
        self.core_noise, self.spurious_noise = core_noise, spurious_noise

    def sample(self, group_sizes: list[int], generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        group = torch.repeat_interleave(torch.arange(4), torch.tensor(group_sizes))
        y, a = (group // 2) * 2.0 - 1, (group % 2) * 2.0 - 1
        d_c, d_s, d_n = self.dims
        core = (y[:, None] + self.core_noise * torch.randn(len(y), d_c, generator=generator)) / d_c**0.5
        spurious = (
            a[:, None] + self.spurious_noise * torch.randn(len(y), d_s, generator=generator)
        ) / d_s**0.5
        noise = torch.randn(len(y), d_n, generator=generator) / max(d_n, 1) ** 0.5
        return torch.cat([core, spurious, noise], dim=1), group

    def build_splits(self):
        gen = torch.Generator().manual_seed(self.seed)
        parts = [
            self.sample(sizes, gen)
            for sizes in (self.train_group_sizes, [self.eval_group_size] * 4, [self.eval_group_size] * 4)
        ]
        scale = parts[0][0].norm(dim=1).max()
        return tuple(TensorSplit(x / scale, encode_labels(g // 2, self.labels), g) for x, g in parts)
