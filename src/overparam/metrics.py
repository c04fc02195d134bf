"""Group-aware accuracy and loss as one torchmetrics Metric (sums reduce correctly under DDP)."""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric


class GroupMetrics(Metric):
    """Average and per-group accuracy and loss, worst-group accuracy, and the train-weighted average.

    `compute()` returns `avg_acc` (plain accuracy over the split), `avg_acc_trainweighted` (group
    accuracies weighted by training-group proportions, Sagawa et al.'s Waterbirds average),
    `worst_group_acc` (min over groups present in the split), `loss`, and `group_acc/<name>`,
    `group_loss/<name>` for every group.
    """

    full_state_update = False

    def __init__(self, group_names: tuple[str, ...], train_group_counts: Tensor) -> None:
        super().__init__()
        self.group_names = tuple(group_names)
        k = len(group_names)
        self.add_state("correct", torch.zeros(k, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("total", torch.zeros(k, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("loss_sum", torch.zeros(k, dtype=torch.float64), dist_reduce_fx="sum")
        proportions = torch.as_tensor(train_group_counts, dtype=torch.float64)
        self.register_buffer("train_proportions", proportions / proportions.sum(), persistent=False)

    def update(self, correct: Tensor, losses: Tensor, groups: Tensor) -> None:
        k = len(self.group_names)
        self.correct += torch.bincount(groups, weights=correct.double(), minlength=k)
        self.total += torch.bincount(groups, minlength=k).double()
        self.loss_sum += torch.bincount(groups, weights=losses.detach().double(), minlength=k)

    def compute(self) -> dict[str, Tensor]:
        present = self.total > 0
        group_acc = self.correct / self.total.clamp(min=1)
        group_loss = self.loss_sum / self.total.clamp(min=1)
        out = {
            "avg_acc": self.correct.sum() / self.total.sum(),
            "avg_acc_trainweighted": (group_acc * self.train_proportions)[present].sum()
            / self.train_proportions[present].sum(),
            "worst_group_acc": group_acc[present].min(),
            "loss": self.loss_sum.sum() / self.total.sum(),
        }
        for name, acc, loss, seen in zip(self.group_names, group_acc, group_loss, present):
            if seen:
                out[f"group_acc/{name}"] = acc
                out[f"group_loss/{name}"] = loss
        return {key: value.float() for key, value in out.items()}
