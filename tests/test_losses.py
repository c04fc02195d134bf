"""Per-sample losses against their closed forms."""

from __future__ import annotations

import math

import pytest
import torch

from overparam.losses import cross_entropy, logistic, squared


def test_squared_loss_is_half_the_squared_residual():
    losses = squared(torch.tensor([[1.0], [-0.5]]), torch.tensor([-1.0, -1.0]))
    torch.testing.assert_close(losses, torch.tensor([2.0, 0.125]))


def test_logistic_loss_closed_form():
    losses = logistic(torch.tensor([[0.0], [2.0]]), torch.tensor([1.0, -1.0]))
    torch.testing.assert_close(losses, torch.tensor([math.log(2), math.log(1 + math.exp(2))]))


def test_cross_entropy_is_per_sample():
    losses = cross_entropy(torch.tensor([[0.0, 0.0], [10.0, 0.0]]), torch.tensor([1, 1]))
    torch.testing.assert_close(losses, torch.tensor([math.log(2), 10 + math.log(1 + math.exp(-10))]))


def test_cross_entropy_refuses_a_scalar_output():
    with pytest.raises(ValueError, match="data.labels=index"):
        cross_entropy(torch.zeros(3, 1), torch.zeros(3, dtype=torch.long))
