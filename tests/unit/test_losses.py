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


def test_focal_loss_at_gamma_zero_is_the_cross_entropy_and_the_logistic_loss():
    from overparam.losses import focal

    logits, classes = torch.randn(8, 3, dtype=torch.float64), torch.randint(0, 3, (8,))
    torch.testing.assert_close(focal(logits, classes, gamma=0.0), cross_entropy(logits, classes))
    scores, signs = torch.randn(8, 1, dtype=torch.float64), torch.randint(0, 2, (8,)) * 2.0 - 1
    torch.testing.assert_close(focal(scores, signs, gamma=0.0), logistic(scores, signs))


def test_focal_loss_scales_the_log_loss_by_the_missing_probability_to_the_gamma():
    """p_y = 0.8, γ = 2: (1 − 0.8)² · (−log 0.8) = 0.04 · 0.22314 = 0.0089257 (Lin et al. 2017, eq. 5)."""
    from overparam.losses import focal

    logits = torch.tensor([[math.log(0.8), math.log(0.2)]], dtype=torch.float64)
    assert float(focal(logits, torch.tensor([0]), gamma=2.0)) == pytest.approx(0.0089257, rel=1e-4)
    scalar = torch.tensor([[math.log(4.0)]], dtype=torch.float64)  # σ(log 4) = 0.8 for y = +1
    assert float(focal(scalar, torch.tensor([1.0]), gamma=2.0)) == pytest.approx(0.0089257, rel=1e-4)


def test_class_balanced_weights_are_the_inverse_effective_numbers():
    """Cui et al. 2019, eq. 3 with counts (90, 10) and β = 0.9: raw weights 0.1/(1 − 0.9^90) = 0.1000076
    and 0.1/(1 − 0.9^10) = 0.1535340, normalized to sum to 2: 0.788885 and 1.211115."""
    from functools import partial

    from overparam.losses import class_balanced

    logits, classes = torch.randn(6, 2, dtype=torch.float64), torch.tensor([0, 1, 0, 1, 1, 0])
    counts = torch.tensor([90, 10])
    weighted = class_balanced(logits, classes, partial(cross_entropy), beta=0.9, class_counts=counts)
    ratio = weighted / cross_entropy(logits, classes)
    expected = torch.tensor([0.788885, 1.211115], dtype=torch.float64)[classes]
    torch.testing.assert_close(ratio, expected, rtol=1e-5, atol=0)
    plain = class_balanced(logits, classes, partial(cross_entropy), beta=0.0, class_counts=counts)
    torch.testing.assert_close(plain, cross_entropy(logits, classes))
    with pytest.raises(ValueError, match="beta must be in"):
        class_balanced(logits, classes, partial(cross_entropy), beta=1.0, class_counts=counts)


def test_a_class_balanced_run_gets_its_training_class_counts(tmp_path):
    """`loss=class_balanced` on six MNIST images (five 0s, one 1): the 1 weighs 5× as much as a 0 at β → 1."""
    from hydra.utils import instantiate

    from conftest import compose_config
    from overparam.components import build_loss

    cfg = compose_config(
        [
            "+experiment=grw_fig1",
            "loss=class_balanced",
            "loss.beta=0.999999",
            "loss.base._target_=overparam.losses.logistic",
        ],
        tmp_path,
    )
    data = instantiate(cfg.data)
    data.setup()
    loss_fn = build_loss(cfg, data)
    outputs, targets = torch.zeros(2, 1, dtype=torch.float64), torch.tensor([-1.0, 1.0], dtype=torch.float64)
    losses = loss_fn(outputs, targets)
    assert data.train_class_counts.tolist() == [5, 1]
    assert float(losses[1] / losses[0]) == pytest.approx(5.0, rel=1e-4)
