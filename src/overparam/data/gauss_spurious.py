"""Gaussian core / spurious / noise features (seed 001 §7.1, after Sagawa et al. 2020b)."""

from __future__ import annotations

import torch

from overparam.data.base import GroupDataModule, TensorSplit, encode_labels


class GaussSpurious(GroupDataModule):
    """x = [(s·y + core_noise·ε)/√d_c, (s·a + spurious_noise·ε)/√d_s, noise_scale·ε/√d_n] for y, a ∈ {±1}
    and s = `signal`.

    Groups are (y, a) in the order (−,−), (−,+), (+,−), (+,+); `train_group_sizes` sets the training
    correlation, val and test have `eval_group_size` points per group. `input_norm=max_train` divides
    the inputs by the largest training norm (‖x‖ ≤ 1 on the training set, seed 001 §7.1); `sqrt_d`
    rescales each to ‖x‖ = √d (the wide-network design of §7.2, whose NTK is otherwise ill-conditioned).
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
        signal: float = 1.0,
        noise_scale: float = 1.0,
        input_norm: str = "max_train",
    ) -> None:
        super().__init__(batch_size, eval_batch_size, num_workers, labels, seed)
        if input_norm not in ("max_train", "sqrt_d"):
            raise ValueError(f"input_norm must be max_train or sqrt_d, got {input_norm!r}")
        if len(train_group_sizes) != 4 or min(train_group_sizes) < 1:
            raise ValueError(f"train_group_sizes must be 4 positive counts, got {list(train_group_sizes)!r}")
        if min(d_core, d_spurious) < 1 or d_noise < 0:
            raise ValueError(
                f"d_core and d_spurious must be ≥ 1 and d_noise ≥ 0, got {d_core}, {d_spurious}, {d_noise}"
            )
        self.train_group_sizes, self.eval_group_size = list(train_group_sizes), eval_group_size
        self.dims = (d_core, d_spurious, d_noise)
        self.core_noise, self.spurious_noise = core_noise, spurious_noise
        self.signal, self.noise_scale, self.input_norm = signal, noise_scale, input_norm

    def sample(self, group_sizes: list[int], generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        group = torch.repeat_interleave(torch.arange(4), torch.tensor(group_sizes))
        y, a = (group // 2) * 2.0 - 1, (group % 2) * 2.0 - 1
        d_c, d_s, d_n = self.dims
        core = self.signal * y[:, None] + self.core_noise * torch.randn(len(y), d_c, generator=generator)
        spurious = self.signal * a[:, None] + self.spurious_noise * torch.randn(
            len(y), d_s, generator=generator
        )
        noise = self.noise_scale * torch.randn(len(y), d_n, generator=generator) / max(d_n, 1) ** 0.5
        core, spurious = core / d_c**0.5, spurious / d_s**0.5
        return torch.cat([core, spurious, noise], dim=1), group

    def build_splits(self):
        gen = torch.Generator().manual_seed(self.seed)
        parts = [
            self.sample(sizes, gen)
            for sizes in (self.train_group_sizes, [self.eval_group_size] * 4, [self.eval_group_size] * 4)
        ]
        if self.input_norm == "sqrt_d":
            scaled = [x * x.shape[1] ** 0.5 / x.norm(dim=1, keepdim=True) for x, _ in parts]
        else:
            largest_train_norm = parts[0][0].norm(dim=1).max()
            scaled = [x / largest_train_norm for x, _ in parts]
        return tuple(
            TensorSplit(x, encode_labels(g // 2, self.labels), g) for x, (_, g) in zip(scaled, parts)
        )
