"""A member of a stacked optimizer moves exactly as torch.optim moves it alone."""

from __future__ import annotations

import functools

import pytest
import torch

from overparam.batched.optim import memberwise_factory, update_of
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


@pytest.mark.parametrize("name", sorted(MEMBERS))
def test_the_functional_form_of_a_torch_optimizer_moves_a_tensor_as_the_optimizer_does(name):
    """What compiled unrolled steps apply (`update_of`) against torch.optim's own step, state included."""
    generator = torch.Generator().manual_seed(1)
    for factory in MEMBERS[name]:
        start = torch.randn(4, 3, dtype=torch.float64, generator=generator)
        grads = torch.randn(30, 4, 3, dtype=torch.float64, generator=generator)
        reference = torch.nn.Parameter(start.clone())
        optimizer = factory([reference])
        reference.grad = grads[0] + reference.detach()
        optimizer.step()  # torch builds the state; the functional form takes it over from there
        update, value = update_of(optimizer), reference.detach().clone()
        state = {
            k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in optimizer.state[reference].items()
        }
        for grad in grads[1:]:
            update(value, grad + value, state)
            reference.grad = grad + reference.detach()
            optimizer.step()
        torch.testing.assert_close(value, reference.detach(), rtol=1e-12, atol=1e-14)


def test_optimizers_without_a_functional_form_are_named():
    param = torch.nn.Parameter(torch.zeros(2))
    assert update_of(torch.optim.Adam([param], amsgrad=True)) is None
    assert update_of(torch.optim.RMSprop([param])) is None
    assert (
        update_of(torch.optim.SGD([{"params": [param]}, {"params": [torch.nn.Parameter(torch.ones(1))]}]))
        is None
    )
