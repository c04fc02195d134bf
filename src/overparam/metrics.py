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

    With `members` > 1 (a seed-batched ensemble) `update` takes `(members, n)` correctness and losses and
    every key is computed per member, as `member<k>/<key>`.
    """

    full_state_update = False

    def __init__(self, group_names: tuple[str, ...], train_group_counts: Tensor, members: int = 1) -> None:
        super().__init__()
        self.group_names, self.members = tuple(group_names), members
        shape = (members, len(group_names))
        self.add_state("correct", torch.zeros(shape, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("total", torch.zeros(shape, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("loss_sum", torch.zeros(shape, dtype=torch.float64), dist_reduce_fx="sum")
        proportions = torch.as_tensor(train_group_counts, dtype=torch.float64)
        self.register_buffer("train_proportions", proportions / proportions.sum(), persistent=False)

    def update(self, correct: Tensor, losses: Tensor, groups: Tensor) -> None:
        k = len(self.group_names)
        # Member m's group g is bin m·k + g: one bincount for all members.
        bins = (groups + k * torch.arange(self.members, device=groups.device)[:, None]).flatten()
        size = self.members * k
        self.correct += torch.bincount(bins, weights=correct.double().flatten(), minlength=size).view(-1, k)
        self.total += torch.bincount(bins, minlength=size).double().view(-1, k)
        self.loss_sum += torch.bincount(
            bins, weights=losses.detach().double().flatten(), minlength=size
        ).view(-1, k)

    def compute(self) -> dict[str, Tensor | float]:
        if self.members == 1:
            return self.member_metrics(0)
        return self.stacked_metrics()

    def stacked_metrics(self) -> dict[str, float]:
        """`member_metrics` of every member at once (the same float64 arithmetic, row by row, rounded to
        float32 as theirs), as Python floats: one conversion instead of a tensor per member and key."""
        correct, total, loss_sum = self.correct, self.total, self.loss_sum
        present = total > 0
        group_acc = correct / total.clamp(min=1)
        group_loss = loss_sum / total.clamp(min=1)
        weights = torch.where(present, self.train_proportions, torch.zeros_like(group_acc))
        columns = {
            "avg_acc": correct.sum(-1) / total.sum(-1),
            "avg_acc_trainweighted": (group_acc * weights).sum(-1) / weights.sum(-1),
            "worst_group_acc": torch.where(present, group_acc, torch.full_like(group_acc, torch.inf)).amin(
                -1
            ),
            "loss": loss_sum.sum(-1) / total.sum(-1),
        }
        for g, name in enumerate(self.group_names):
            columns[f"group_acc/{name}"] = group_acc[:, g]
            columns[f"group_loss/{name}"] = group_loss[:, g]
        names = list(columns)
        values = torch.stack([columns[name] for name in names]).float().tolist()
        seen = present.tolist()
        out = {}
        for m in range(self.members):
            for name, row in zip(names, values):
                if name.startswith("group_") and not seen[m][self.group_names.index(name.split("/", 1)[1])]:
                    continue  # a group absent from the split has no accuracy or loss
                out[f"member{m}/{name}"] = row[m]
        return out

    def member_metrics(self, m: int) -> dict[str, Tensor]:
        correct, total, loss_sum = self.correct[m], self.total[m], self.loss_sum[m]
        present = total > 0
        group_acc = correct / total.clamp(min=1)
        group_loss = loss_sum / total.clamp(min=1)
        out = {
            "avg_acc": correct.sum() / total.sum(),
            "avg_acc_trainweighted": (group_acc * self.train_proportions)[present].sum()
            / self.train_proportions[present].sum(),
            "worst_group_acc": group_acc[present].min(),
            "loss": loss_sum.sum() / total.sum(),
        }
        for name, acc, loss, seen in zip(self.group_names, group_acc, group_loss, present):
            if seen:
                out[f"group_acc/{name}"] = acc
                out[f"group_loss/{name}"] = loss
        return {key: value.float() for key, value in out.items()}
