"""Step-size rules: which optimizers take a plain gradient step, found by what they do."""

from __future__ import annotations

import functools

import pytest
import torch

from overparam.step_size import is_plain_gradient_step


@pytest.mark.parametrize(
    "optimizer,plain",
    [
        (functools.partial(torch.optim.SGD, lr=0.1), True),
        (functools.partial(torch.optim.SGD, lr=0.1, weight_decay=0.01), True),  # the decay is curvature
        (functools.partial(torch.optim.SGD, lr=0.1, momentum=0.9), False),
        (functools.partial(torch.optim.Adam, lr=0.1), False),
        (functools.partial(torch.optim.Adagrad, lr=0.1), False),
        (functools.partial(torch.optim.RMSprop, lr=0.1), False),
    ],
    ids=["sgd", "sgd-decay", "momentum", "adam", "adagrad", "rmsprop"],
)
def test_plain_gradient_steps_are_told_from_the_others_by_their_updates(optimizer, plain):
    assert is_plain_gradient_step(optimizer) is plain
