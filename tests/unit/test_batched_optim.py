"""A member of a stacked optimizer moves exactly as torch.optim moves it alone."""

from __future__ import annotations

import functools

import pytest
import torch

from overparam.batched.optim import memberwise_factory
from overparam.errors import ConfigError

MEMBERS = {
    "sgd": [
        functools.partial(torch.optim.SGD, lr=0.1),
        functools.partial(torch.optim.SGD, lr=0.03, momentum=0.9, weight_decay=1e-2),
        functools.partial(torch.optim.SGD, lr=0.05, momentum=0.5, dampening=0.1),
    ],
    "nesterov": [
        functools.partial(torch.optim.SGD, lr=0.1, momentum=0.9, nesterov=True),
        functools.partial(torch.optim.SGD, lr=0.02, momentum=0.8, nesterov=True, weight_decay=0.1),
    ],
    "adam": [
        functools.partial(torch.optim.Adam, lr=1e-3),
        functools.partial(torch.optim.Adam, lr=1e-2, betas=(0.8, 0.99), eps=1e-6, weight_decay=1e-3),
    ],
    "adagrad": [
        functools.partial(torch.optim.Adagrad, lr=0.1),
        functools.partial(torch.optim.Adagrad, lr=0.05, lr_decay=0.01, initial_accumulator_value=0.1),
    ],
}


@pytest.mark.parametrize("name", sorted(MEMBERS))
def test_each_member_follows_its_own_torch_optimizer(name):
    factories = MEMBERS[name]
    generator = torch.Generator().manual_seed(0)
    start = torch.randn(len(factories), 4, 3, dtype=torch.float64, generator=generator)
    grads = torch.randn(40, len(factories), 4, 3, dtype=torch.float64, generator=generator)
    stacked = torch.nn.Parameter(start.clone())
    optimizer = memberwise_factory(factories)([stacked])
    alone = [torch.nn.Parameter(start[k].clone()) for k in range(len(factories))]
    references = [factory([param]) for factory, param in zip(factories, alone)]
    for step in grads:
        stacked.grad = step + stacked.detach()  # a gradient that depends on where each member is
        optimizer.step()
        for k, (param, reference) in enumerate(zip(alone, references)):
            param.grad = step[k] + param.detach()
            reference.step()
    for k, param in enumerate(alone):
        torch.testing.assert_close(stacked[k], param, rtol=1e-12, atol=1e-14)
    assert not torch.allclose(stacked[0], stacked[1])


def test_members_of_different_optimizers_or_unsupported_settings_are_refused():
    with pytest.raises(ConfigError, match="optim differs in its class"):
        memberwise_factory([MEMBERS["sgd"][0], MEMBERS["adam"][0]])
    with pytest.raises(ConfigError, match="optim.amsgrad has no member-wise update"):
        memberwise_factory([functools.partial(torch.optim.Adam, amsgrad=True)])
    with pytest.raises(ConfigError, match="optim RMSprop has no member-wise update"):
        memberwise_factory([functools.partial(torch.optim.RMSprop, lr=0.1)])
