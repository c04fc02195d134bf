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


@pytest.mark.parametrize("left", ["vshift", "hshift", "c1"])
def test_polynomial_tail_is_continuous_at_beta_with_the_papers_tail(left):
    from overparam.losses import polynomial_tail

    margins = torch.tensor([-1e-9, 0.0, 1.0, 3.0], dtype=torch.float64)
    losses = polynomial_tail(
        margins[:, None], torch.ones(4, dtype=torch.float64), alpha=1.0, beta=0.0, left=left
    )
    torch.testing.assert_close(losses[0], torch.tensor(1.0, dtype=torch.float64), atol=1e-8, rtol=0)
    torch.testing.assert_close(losses[1:], torch.tensor([1.0, 0.5, 0.25], dtype=torch.float64))  # 1/(m+1)
