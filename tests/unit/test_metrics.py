"""GroupMetrics against hand-computed splits: a group absent from the split, the train-weighted average,
and per-member metrics of an ensemble."""

from __future__ import annotations

import pytest
import torch

from overparam.metrics import GroupMetrics

NAMES = ("a", "b", "c")


def test_a_group_absent_from_the_split_is_left_out_of_worst_group_and_the_averages():
    metrics = GroupMetrics(NAMES, torch.tensor([60, 30, 10]))
    correct = torch.tensor([True, True, False, True, False, False])
    losses = torch.tensor([0.1, 0.2, 1.0, 0.3, 2.0, 3.0])
    groups = torch.tensor([0, 0, 0, 0, 1, 1])  # group c is absent
    metrics.update(correct, losses, groups)
    out = metrics.compute()
    assert float(out["avg_acc"]) == pytest.approx(3 / 6)
    assert float(out["group_acc/a"]) == pytest.approx(3 / 4) and float(out["group_acc/b"]) == 0.0
    assert "group_acc/c" not in out and "group_loss/c" not in out
    assert float(out["worst_group_acc"]) == 0.0  # b, not the absent c
    # Train proportions of the groups present, renormalised: (0.6·¾ + 0.3·0) / 0.9.
    assert float(out["avg_acc_trainweighted"]) == pytest.approx(0.6 * 0.75 / 0.9)
    assert float(out["loss"]) == pytest.approx(6.6 / 6)
    assert float(out["group_loss/b"]) == pytest.approx(2.5)


def test_updates_accumulate_over_batches_as_one_split():
    one, two = GroupMetrics(NAMES, torch.tensor([1, 1, 1])), GroupMetrics(NAMES, torch.tensor([1, 1, 1]))
    correct = torch.tensor([True, False, True, True, False, True])
    losses = torch.arange(6.0)
    groups = torch.tensor([0, 1, 2, 0, 1, 2])
    classes = torch.tensor([0, 1, 1, 0, 0, 1])
    one.update(correct, losses, groups, classes)
    two.update(correct[:2], losses[:2], groups[:2], classes[:2])
    two.update(correct[2:], losses[2:], groups[2:], classes[2:])
    first, second = one.compute(), two.compute()
    assert first.keys() == second.keys() and "worst_class_acc" in first
    for key in first:
        assert float(first[key]) == pytest.approx(float(second[key])), key


def test_ensemble_members_are_measured_separately():
    metrics = GroupMetrics(NAMES, torch.tensor([1, 1, 1]), members=2)
    groups = torch.tensor([0, 1, 2])
    correct = torch.tensor([[True, True, True], [False, True, False]])
    metrics.update(correct, torch.zeros(2, 3), groups)
    out = metrics.compute()
    assert float(out["member0/worst_group_acc"]) == 1.0 and float(out["member1/worst_group_acc"]) == 0.0
    assert float(out["member1/avg_acc"]) == pytest.approx(1 / 3)


@pytest.mark.parametrize("present", [[0, 1, 2], [0, 2]], ids=["every group", "a group absent"])
def test_a_stacked_models_metrics_are_each_members_own_exactly(present):
    """All members' metrics computed at once equal each member's computed alone (as floats, bit for bit)."""
    generator = torch.Generator().manual_seed(0)
    metrics = GroupMetrics(("a", "b", "c"), torch.tensor([50, 30, 20]), members=5)
    groups = torch.tensor(present)[torch.randint(len(present), (40,), generator=generator)]
    metrics.update(
        torch.rand(5, 40, generator=generator) > 0.3,
        torch.rand(5, 40, dtype=torch.float64),
        groups,
        torch.randint(2, (40,), generator=generator),
    )
    stacked = metrics.compute()
    alone = {f"member{m}/{k}": float(v) for m in range(5) for k, v in metrics.member_metrics(m).items()}
    assert stacked == alone
    assert ("member0/group_acc/b" in alone) == (1 in present)


def test_worst_class_accuracy_is_the_lowest_accuracy_over_the_classes_present():
    metrics = GroupMetrics(NAMES, torch.tensor([1, 1, 1]), n_classes=3)
    correct = torch.tensor([True, True, False, True, False])
    classes = torch.tensor([0, 0, 0, 1, 1])  # class 0: 2/3, class 1: 1/2, class 2 absent
    metrics.update(correct, torch.zeros(5), torch.tensor([0, 1, 2, 0, 1]), classes)
    assert float(metrics.compute()["worst_class_acc"]) == pytest.approx(0.5)
    unlabelled = GroupMetrics(NAMES, torch.tensor([1, 1, 1]))
    unlabelled.update(correct, torch.zeros(5), torch.tensor([0, 1, 2, 0, 1]))
    assert "worst_class_acc" not in unlabelled.compute()


def test_groupwise_classification_metrics_match_hand_computed_values():
    """Two groups; group a holds both classes, group b only class 1 (no balanced accuracy, F1 or AUROC of
    its own)."""
    from overparam.metrics import GroupwiseClassification

    metrics = GroupwiseClassification(("balanced_acc", "macro_f1", "ece", "auroc"), ("a", "b"), n_classes=2)
    positive = torch.tensor([0.9, 0.4, 0.2, 0.7, 0.6, 0.3])
    classes = torch.tensor([1, 1, 0, 0, 1, 1])
    groups = torch.tensor([0, 0, 0, 0, 1, 1])
    metrics.update(torch.stack([1 - positive, positive], -1), classes, groups)
    out = metrics.compute()
    # Predictions (p > ½): 1, 0, 0, 1, 1, 0. Recall of class 1: 2/4, of class 0: 1/2 → balanced 0.5.
    assert float(out["balanced_acc"]) == pytest.approx(0.5)
    # F1: class 1 (tp 2, fp 1, fn 2) 4/7; class 0 (tp 1, fp 2, fn 1) 2/5.
    assert float(out["macro_f1"]) == pytest.approx((4 / 7 + 2 / 5) / 2)
    # AUROC of group a: positives 0.9, 0.4 against negatives 0.2, 0.7: 3 of 4 pairs ordered.
    assert float(out["group_auroc/a"]) == pytest.approx(0.75) and "group_auroc/b" not in out
    assert "group_balanced_acc/b" not in out and float(out["worst_group_auroc"]) == pytest.approx(0.75)
    # ECE of group b: confidences 0.6 (right) and 0.7 (wrong, predicted 0), one bin each: (0.4 + 0.7) / 2.
    assert float(out["group_ece/b"]) == pytest.approx(0.55)
    assert float(out["worst_group_ece"]) == max(float(out["group_ece/a"]), float(out["group_ece/b"]))
    with pytest.raises(ValueError, match="auroc only for two classes; this data has 3"):
        GroupwiseClassification(("auroc",), ("a",), n_classes=3)


def test_a_run_logs_the_extra_metrics_per_group(tmp_path):
    import json

    from conftest import QUIET_NO_CHECKPOINTS, compose_config
    from overparam.entry import execute

    small = ["data.n_train=300", "data.n_val=200", "data.n_test=200", "trainer.max_epochs=1"]
    extra = "run.extra_metrics=[balanced_acc,macro_f1,ece,auroc]"
    execute(compose_config([*QUIET_NO_CHECKPOINTS, *small, extra], tmp_path))
    final = json.loads((tmp_path / "metrics.json").read_text())["metrics"]
    for split in ("val", "test"):
        # Colored MNIST's groups are (label, color): one class each, so only their ECE is per group.
        group_ece = [value for key, value in final.items() if key.startswith(f"{split}/group_ece/")]
        assert len(group_ece) == 4 and final[f"{split}/worst_group_ece"] == pytest.approx(max(group_ece))
        assert 0 <= final[f"{split}/balanced_acc"] <= 1 and f"{split}/group_macro_f1/" not in " ".join(final)
