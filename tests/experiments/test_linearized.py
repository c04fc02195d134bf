"""The linearized network: exact first-order model, and its GRW limit is kernel regression (seed 000 §3.3)."""

from __future__ import annotations

from functools import partial

import torch

from conftest import QUIET_NO_CHECKPOINTS as QUIET
from conftest import compose_config
from overparam.entry import execute
from overparam.models.linearized import Linearized
from overparam.models.ntk_mlp import NTKMLP
from overparam.theory.kernels import empirical_ntk, kernel_regression_limit, parameter_jacobian


def test_zero_last_layer_makes_every_other_gradient_vanish_at_init():
    """Seed 001 P3a/P3b: with W^L = 0 only (W^L, b^L) move at init, and Θ0 = σ(h^L)ᵀσ(h^L)/d_L + β²."""
    torch.manual_seed(0)
    net = NTKMLP((5,), 1, width=64, depth=2, activation="tanh", beta=0.1, last_layer_init="zero").double()
    x = torch.randn(7, 5, dtype=torch.float64)
    jac = parameter_jacobian(net, x)
    n_hidden = sum(p.numel() for p in list(net.W)[:-1]) + sum(p.numel() for p in list(net.b)[:-1])
    sizes = [p.numel() for p in [*net.W, *net.b]]
    hidden_columns = torch.cat([torch.arange(sum(sizes[:k]), sum(sizes[: k + 1])) for k in (0, 1, 3, 4)])
    assert len(hidden_columns) == n_hidden and float(jac[:, hidden_columns].abs().max()) == 0.0
    h = x
    for W, b in zip(list(net.W)[:-1], list(net.b)[:-1]):
        h = torch.tanh(h @ W.T / W.shape[1] ** 0.5 + 0.1 * b)
    torch.testing.assert_close(empirical_ntk(net, x, x), h @ h.T / 64 + 0.01)


def test_linearized_model_is_exactly_first_order_in_theta():
    torch.manual_seed(1)
    model = Linearized(
        (5,), 1, partial(NTKMLP, width=32, depth=1, activation="tanh", beta=0.1, last_layer_init="gaussian")
    ).double()
    x = torch.randn(4, 5, dtype=torch.float64)
    f0 = model(x).detach()
    jac = parameter_jacobian(model.base, x, model.theta0())
    delta = [torch.randn_like(p) * 0.3 for p in model.base.parameters()]
    with torch.no_grad():
        for p, d in zip(model.base.parameters(), delta):
            p.add_(d)
    expected = f0.squeeze(-1) + jac @ torch.cat([d.flatten() for d in delta])
    torch.testing.assert_close(model(x).squeeze(-1), expected)


def test_cor15_linearized_grw_converges_to_kernel_regression(tmp_path):
    overrides = [
        "+experiment=grw_width",
        "model=linearized",
        "model.width=256",
        "weighting=iw",
        "trainer.max_steps=3000",
        *QUIET,
    ]
    cfg = compose_config(overrides, tmp_path)
    execute(cfg)
    outputs = torch.load(tmp_path / "snapshots.pt")["test_outputs"].squeeze(-1)
    # Rebuild the same θ0 (same seed) and the data, then the closed form.
    import lightning as L
    from hydra.utils import instantiate

    L.seed_everything(cfg.seed, verbose=False)
    data = instantiate(cfg.data)
    data.setup()
    net = instantiate(cfg.model, in_shape=data.in_shape, out_features=1).double().base
    x_train, y = data.train.x.double(), data.train.y.double()
    x_test = data.test.x.double()
    with torch.no_grad():
        f0_train, f0_test = net(x_train).squeeze(-1), net(x_test).squeeze(-1)
    limit = kernel_regression_limit(
        empirical_ntk(net, x_test, x_train), empirical_ntk(net, x_train, x_train), y, f0_train, f0_test
    )
    assert float((outputs - limit).abs().max()) <= 1e-3
