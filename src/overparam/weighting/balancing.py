"""The data-balancing baselines of Idrissi et al. 2022 ("Simple data balancing achieves competitive
worst-group accuracy", the BalancingGroups code): subsample every group (`subg`) or class (`suby`) to the
smallest, once per run; or draw each class equally often (`rwy`)."""

from __future__ import annotations

import torch
from torch import Tensor

from overparam.weighting.base import Reweighter

BALANCE = ("groups", "classes")
MODES = ("loss", "sampler")


def balanced_subsample(labels: Tensor, n_labels: int, what: str, seed: int) -> Tensor:
    """A random subset holding, of every label value, as many samples as the rarest value has: the first
    ones of each value in a random order of the data (drawn from `seed`), as BalancingGroups draws it. A
    boolean mask over the samples."""
    counts = torch.bincount(labels, minlength=n_labels)
    if (counts == 0).any():
        empty = torch.nonzero(counts == 0).flatten().tolist()
        raise ValueError(f"the training set has no samples of {what} {empty}; subsampling needs every one")
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    shuffled = torch.nn.functional.one_hot(labels[order], n_labels)
    rank_in_label = (shuffled.cumsum(0) * shuffled).sum(1) - 1
    kept = torch.zeros(len(labels), dtype=torch.bool)
    kept[order[rank_in_label < counts.min()]] = True
    return kept


class Subsample(Reweighter):
    """ERM on a subset drawn once per run (from the run's seed) that holds every group (`balance=groups`,
    subg) or every class (`balance=classes`, suby) as often as the smallest. Mini-batches are drawn from
    the subset only, each member once per epoch (an epoch is the subset); a full batch is the subset,
    q_i = 1/|S| on it and 0 elsewhere. The subset is a buffer, so a resumed run keeps it."""

    static = True

    def __init__(
        self,
        n_groups: int,
        group_counts: Tensor,
        n_train: int,
        train_groups: Tensor,
        train_classes: Tensor,
        batch_size: int | None,
        seed: int,
        balance: str,
    ) -> None:
        super().__init__(n_groups, group_counts, n_train)
        if balance not in BALANCE:
            raise ValueError(f"balance must be one of {', '.join(BALANCE)}, got {balance!r}")
        labels = train_groups if balance == "groups" else train_classes
        n_labels = n_groups if balance == "groups" else int(train_classes.max()) + 1
        self.register_buffer("kept", balanced_subsample(labels.cpu(), n_labels, balance[:-1], seed))
        self.draws = batch_size is not None

    def forward(self, losses: Tensor, groups: Tensor, index: Tensor) -> Tensor:
        q = self.kept[index].to(losses.dtype)
        return q / q.sum()

    def sample_weights(self, train_groups: Tensor) -> Tensor | None:
        return self.kept.double() if self.draws else None

    def max_weight(self) -> float:
        return 1.0 / float(self.kept.sum())


class ClassBalancing(Reweighter):
    """Every class weighs the same, q_i ∝ 1/n_{y_i}: drawn with replacement with that probability
    (`mode=sampler`, rwy) or as loss weights renormalised over the batch (`mode=loss`)."""

    def __init__(
        self, n_groups: int, group_counts: Tensor, n_train: int, train_classes: Tensor, mode: str
    ) -> None:
        super().__init__(n_groups, group_counts, n_train)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.mode = mode
        self.static = mode == "loss"
        counts = torch.bincount(train_classes.cpu()).double()
        self.register_buffer("weight", 1.0 / counts[train_classes.cpu()])

    def forward(self, losses: Tensor, groups: Tensor, index: Tensor) -> Tensor:
        if self.mode == "sampler":
            return torch.full_like(losses, 1.0 / len(losses)).detach()
        q = self.weight[index].to(losses.dtype)
        return q / q.sum()

    def sample_weights(self, train_groups: Tensor) -> Tensor | None:
        return self.weight if self.mode == "sampler" else None

    def max_weight(self) -> float:
        return 1.0 / self.n_train if self.mode == "sampler" else float(self.weight.max() / self.weight.sum())
