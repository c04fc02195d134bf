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
    one.update(correct, losses, groups)
    two.update(correct[:2], losses[:2], groups[:2])
    two.update(correct[2:], losses[2:], groups[2:])
    first, second = one.compute(), two.compute()
    assert first.keys() == second.keys()
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
        torch.rand(5, 40, generator=generator) > 0.3, torch.rand(5, 40, dtype=torch.float64), groups
    )
    stacked = metrics.compute()
    alone = {f"member{m}/{k}": float(v) for m in range(5) for k, v in metrics.member_metrics(m).items()}
    assert stacked == alone
    assert ("member0/group_acc/b" in alone) == (1 in present)
