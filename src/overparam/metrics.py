"""Group-aware accuracy and loss as one torchmetrics Metric (sums reduce correctly under DDP), and
torchmetrics' classification metrics per group."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torchmetrics import Metric
from torchmetrics.classification import (
    BinaryAUROC,
    MulticlassAccuracy,
    MulticlassCalibrationError,
    MulticlassF1Score,
)


class GroupMetrics(Metric):
    """Average and per-group accuracy and loss, worst-group accuracy, and the train-weighted average.

    `compute()` returns `avg_acc` (plain accuracy over the split), `avg_acc_trainweighted` (group
    accuracies weighted by training-group proportions, Sagawa et al.'s Waterbirds average),
    `worst_group_acc` (min over groups present in the split), `worst_class_acc` (min over the classes
    present: the model-selection metric when groups are unknown), `loss`, and `group_acc/<name>`,
    `group_loss/<name>` for every group.

    With `members` > 1 (a seed-batched ensemble) `update` takes `(members, n)` correctness and losses and
    every key is computed per member, as `member<k>/<key>`.
    """

    full_state_update = False

    def __init__(
        self, group_names: tuple[str, ...], train_group_counts: Tensor, members: int = 1, n_classes: int = 2
    ) -> None:
        super().__init__()
        self.group_names, self.members, self.n_classes = tuple(group_names), members, n_classes
        shape = (members, len(group_names))
        self.add_state("correct", torch.zeros(shape, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("total", torch.zeros(shape, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("loss_sum", torch.zeros(shape, dtype=torch.float64), dist_reduce_fx="sum")
        classes = (members, n_classes)
        self.add_state("class_correct", torch.zeros(classes, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("class_total", torch.zeros(classes, dtype=torch.float64), dist_reduce_fx="sum")
        proportions = torch.as_tensor(train_group_counts, dtype=torch.float64)
        self.register_buffer("train_proportions", proportions / proportions.sum(), persistent=False)

    def update(self, correct: Tensor, losses: Tensor, groups: Tensor, classes: Tensor | None = None) -> None:
        correct_sums, loss_sums, totals = self.sums_by(
            groups, len(self.group_names), correct, losses.detach()
        )
        self.correct += correct_sums
        self.loss_sum += loss_sums
        self.total += totals
        if classes is not None:
            correct_sums, totals = self.sums_by(classes, self.n_classes, correct)
            self.class_correct += correct_sums
            self.class_total += totals

    def sums_by(self, labels: Tensor, k: int, *values: Tensor) -> tuple[Tensor, ...]:
        """Per member, the sum of each of `values` for each of the k label values, then the counts."""
        # Member m's label g is bin m·k + g: one bincount for all members.
        bins = (labels + k * torch.arange(self.members, device=labels.device)[:, None]).flatten()
        size = self.members * k
        sums = [
            torch.bincount(bins, weights=v.double().flatten(), minlength=size).view(-1, k) for v in values
        ]
        return (*sums, torch.bincount(bins, minlength=size).double().view(-1, k))

    def worst_class_acc(self) -> Tensor:
        """Per member, the lowest accuracy among the classes present."""
        accuracy = self.class_correct / self.class_total.clamp(min=1)
        return torch.where(self.class_total > 0, accuracy, torch.full_like(accuracy, torch.inf)).amin(-1)

    def counted_classes(self) -> bool:
        return bool(self.class_total.sum() > 0)

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
        if self.counted_classes():
            columns["worst_class_acc"] = self.worst_class_acc()
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
        if self.counted_classes():
            out["worst_class_acc"] = self.worst_class_acc()[m]
        for name, acc, loss, seen in zip(self.group_names, group_acc, group_loss, present):
            if seen:
                out[f"group_acc/{name}"] = acc
                out[f"group_loss/{name}"] = loss
        return {key: value.float() for key, value in out.items()}


EXTRA_METRICS = ("balanced_acc", "macro_f1", "ece", "auroc")
LOWER_IS_BETTER = ("ece",)


class GroupwiseClassification(nn.Module):
    """torchmetrics' balanced accuracy (mean recall over classes), macro F1, expected calibration error
    (15 bins) and, for two classes, AUROC, over the whole split, within each group (`group_<name>/<g>`)
    and for the worst group (`worst_group_<name>`: the lowest, the highest ECE).

    `update` takes class probabilities `(n, C)`. A group holding a single class has no balanced accuracy,
    macro F1 or AUROC of its own (each would measure nothing but that class), only an ECE.
    """

    def __init__(self, names: tuple[str, ...], group_names: tuple[str, ...], n_classes: int) -> None:
        super().__init__()
        unknown = [name for name in names if name not in EXTRA_METRICS]
        if unknown or ("auroc" in names and n_classes != 2):
            raise ValueError(
                f"run.extra_metrics must name some of {', '.join(EXTRA_METRICS)} (auroc only for two "
                f"classes; this data has {n_classes}), got {list(names)}"
            )
        self.names, self.group_names, self.n_classes = tuple(names), tuple(group_names), n_classes
        self.whole = self.metric_set()
        self.groups = nn.ModuleList(self.metric_set() for _ in group_names)
        self.register_buffer("class_counts", torch.zeros(len(group_names), n_classes), persistent=False)

    def metric_set(self) -> nn.ModuleDict:
        c = self.n_classes
        build = {
            "balanced_acc": lambda: MulticlassAccuracy(c, average="macro"),
            "macro_f1": lambda: MulticlassF1Score(c, average="macro"),
            "ece": lambda: MulticlassCalibrationError(c, n_bins=15, norm="l1"),
            "auroc": lambda: BinaryAUROC(),
        }
        return nn.ModuleDict({name: build[name]() for name in self.names})

    def update(self, probabilities: Tensor, classes: Tensor, groups: Tensor) -> None:
        self.update_set(self.whole, probabilities, classes)
        for g, metrics in enumerate(self.groups):
            members = groups == g
            if members.any():
                self.update_set(metrics, probabilities[members], classes[members])
        cells = torch.bincount(groups * self.n_classes + classes, minlength=self.class_counts.numel())
        self.class_counts += cells.view_as(self.class_counts)

    @staticmethod
    def update_set(metrics: nn.ModuleDict, probabilities: Tensor, classes: Tensor) -> None:
        for name, metric in metrics.items():
            metric.update(probabilities[:, 1] if name == "auroc" else probabilities, classes)

    def compute(self) -> dict[str, Tensor]:
        out = {name: metric.compute() for name, metric in self.whole.items()}
        present = self.class_counts > 0
        for name in self.names:
            values = {
                group: metrics[name].compute()
                for group, metrics, classes in zip(self.group_names, self.groups, present)
                if classes.any() and (name == "ece" or int(classes.sum()) > 1)
            }
            out.update({f"group_{name}/{group}": value for group, value in values.items()})
            if values:
                pick = max if name in LOWER_IS_BETTER else min
                out[f"worst_group_{name}"] = pick(values.values())
        return {key: value.float() for key, value in out.items()}

    def reset(self) -> None:
        for metrics in (self.whole, *self.groups):
            for metric in metrics.values():
                metric.reset()
        self.class_counts.zero_()
