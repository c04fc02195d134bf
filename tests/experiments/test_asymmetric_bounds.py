"""Seed 004's finite-width bounds (Prop C.1, Lemma D.1, Thm 4.1) checked along runs in the paper's
convention (w ~ N(0, I), L = ½Σ_i (y_i − f(x_i))², times in gradient-flow units), on the simulated sines,
whose inputs lie on the unit sphere as Assumption 2.1 asks."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from hydra.utils import instantiate
from torch.func import functional_call, grad, jacrev, jvp, vmap

from conftest import QUIET_ASYM, compose_config, sphere
from overparam.data.regression import SimulatedSines
from overparam.entry import execute
from overparam.models.asymmetric import AsymmetricShallow
from overparam.theory.asymmetric import kappa, kernel_flow_prediction, tanh_ntg_drift

PAPER_RUN = [
    "+experiment=asym_sim",
    *QUIET_ASYM,
    "model.width=500",
    "trainer.max_steps=2000",
    "run.inner_steps=200",
]
SCALINGS = {"iid": 1.0, "g05_a05": 0.5}


@pytest.fixture(scope="module")
def simulated():
    data = SimulatedSines()
    data.setup()
    return data


@pytest.fixture(scope="module")
def paper_runs(tmp_path_factory, simulated):
    """One run per node scaling in the paper's convention: its logged curves, node_scaling.pt and L(0)."""
    runs = {}
    for scaling in SCALINGS:
        job = tmp_path_factory.mktemp(scaling)
        cfg = compose_config([*PAPER_RUN, "+recipe=asym_paper", f"node_scaling={scaling}"], job)
        execute(cfg)
        data = instantiate(cfg.data)
        data.setup()
        net = instantiate(cfg.model, in_shape=(50,), out_features=1)
        with torch.no_grad():
            residual = net(data.train.x).squeeze(-1).double() - data.train.y.double()
        logged = pd.read_csv(job / "metrics.csv").groupby("step").last()
        logged = logged.dropna(subset=["probe/eig_min", "train_eval/loss"])
        runs[scaling] = {
            "job": job,
            "logged": logged,
            "probe": torch.load(job / "node_scaling.pt"),
            "initial_loss": 0.5 * float(residual.pow(2).sum()),
            "n": len(data.train.y),
        }
    return runs


@pytest.mark.parametrize("gamma", [1.0, 0.5, 0.2])
def test_ntg_at_initialization_is_bounded_below_by_half_gamma_kappa(gamma, simulated):
    """Spec T4 (Prop C.1): λ_min(Θ̂_m(W_0)) ≥ γκ_n/2 in ≥ 95% of inits. The proposition asks for
    m ≈ 3·10⁴ on the simulated set; the conclusion already holds at m = 2,000."""
    x = simulated.train.x.double()
    floor = gamma * kappa(x) / 2
    smallest = [
        float(
            torch.linalg.eigvalsh(
                AsymmetricShallow((50,), 1, 2000, gamma, 0.5, init_std=1.0, init_seed=s).ntg(x)
            )[0]
        )
        for s in range(40)
    ]
    assert np.mean(np.array(smallest) >= floor) >= 0.95


def test_paper_convention_keeps_flow_time_per_step(tmp_path):
    """`+recipe=asym_paper` (½Σ loss, η = 2/(nC)) takes the same gradient-flow time per step as the code's
    mean squared error with η = 1: 2,000 steps are t = 40 in both."""
    for convention, overrides in (("code", []), ("paper", ["+recipe=asym_paper"])):
        execute(compose_config([*PAPER_RUN, *overrides], tmp_path / convention))
        result = json.loads((tmp_path / convention / "metrics.json").read_text())
        assert result["metrics"]["probe/flow_time"] == pytest.approx(40.0)


def loss_and_time(record: dict) -> tuple[pd.Series, pd.Series]:
    """L(t) = ½Σ_i (f(x_i) − y_i)² (train_eval/loss is its per-sample mean) and t, on the logged steps."""
    logged = record["logged"]
    return logged["train_eval/loss"] * record["n"], logged["probe/flow_time"]


@pytest.mark.parametrize("scaling", list(SCALINGS))
def test_loss_obeys_the_lemma_d1_decay_bound(scaling, paper_runs):
    """Spec T5: L(t) ≤ exp(−2ℓ(t)·t)·L(0), ℓ(t) the smallest λ_min(Θ̂_s) seen up to t (on the logged steps)."""
    record = paper_runs[scaling]
    loss, time = loss_and_time(record)
    floor = record["logged"]["probe/eig_min"].cummin()
    assert (loss <= np.exp(-2 * floor * time) * record["initial_loss"]).all()
    assert loss.iloc[-1] < 0.6 * record["initial_loss"]  # measured 0.47 (γ = 1) and 0.51 (γ = 0.5) at t = 40


@pytest.mark.parametrize("scaling", list(SCALINGS))
def test_theorem_4_1_eigenvalue_floor_and_linear_convergence(scaling, paper_runs, simulated):
    """Spec T6 (Thm 4.1a,b), the conclusion at a reachable width: λ_min(Θ̂_t) ≥ γκ_n/4 at every logged
    step and L(t) ≤ exp(−γκ_n t/2)·L(0)."""
    record, gamma = paper_runs[scaling], SCALINGS[scaling]
    kappa_n = kappa(simulated.train.x)
    assert (record["logged"]["probe/eig_min"] >= gamma * kappa_n / 4).all()
    loss, time = loss_and_time(record)
    assert (loss <= np.exp(-gamma * kappa_n * time / 2) * record["initial_loss"]).all()


@pytest.mark.parametrize("scaling", list(SCALINGS))
def test_each_node_moves_at_most_its_eq_21_bound(scaling, paper_runs):
    """Spec T7 (Thm 4.1c, Eq. 21): ‖w_t,j − w_0,j‖ ≤ √(nλ_j/d)·‖y − u_0‖·(1 − e^{−ℓt})/ℓ, ℓ = ℓ(t), for every
    node at every logged step; t → ∞ gives Eq. 21's 2/ζ with ζ = 2ℓ. So Δ_j/√λ_j is bounded uniformly in j.
    The node nearest its bound reaches a few percent of it (measured 10.5% for both): loose, not vacuous."""
    record = paper_runs[scaling]
    probe, logged = record["probe"], record["logged"]
    steps = probe["step"].tolist()
    change = probe["weight_change"][[steps.index(step) for step in logged.index]]  # (T, m)
    floor = torch.tensor(logged["probe/eig_min"].cummin().to_numpy(), dtype=torch.float64)
    time = torch.tensor(logged["probe/flow_time"].to_numpy(), dtype=torch.float64)
    reach = -torch.expm1(-floor * time) / floor  # ∫_0^t e^{−ℓs} ds: the residual's decay, integrated
    initial_residual = math.sqrt(2 * record["initial_loss"])
    bound = (record["n"] * probe["scales"] / 50).sqrt()[None, :] * (initial_residual * reach)[:, None]
    ratio = change / bound
    assert float(ratio.max()) <= 1
    assert float(ratio.max()) >= 0.05


def kernel_regime_gap(gamma: float, alpha: float, width: int, seed: int) -> float:
    """‖f_NN − f_ker‖/‖f_ker − f_0‖ on 10 test points after gradient flow to t = 200 (GD, η = 0.5, on ½Σ)
    from 20 training points on S⁹, f_ker the flow with the NTG frozen at its limit Θ̂*."""
    points = sphere(30, 10, seed=5)
    x_train, x_test = points[:20], points[20:]
    y = torch.sin(3 * x_train[:, 0]) + x_train[:, 1]
    net = AsymmetricShallow((10,), 1, width, gamma, alpha, init_std=1.0, init_seed=seed).double()
    with torch.no_grad():
        f0_train, f0_test = net(x_train)[:, 0].clone(), net(x_test)[:, 0].clone()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.5)
    for _ in range(400):
        optimizer.zero_grad()
        (0.5 * (net(x_train)[:, 0] - y).pow(2).sum()).backward()
        optimizer.step()
    kernel = kernel_flow_prediction(x_train, y, x_test, f0_train, f0_test, time=200.0)
    with torch.no_grad():
        return float((net(x_test)[:, 0] - kernel).norm() / (kernel - f0_test).norm())


def test_gamma_one_approaches_kernel_regression_with_the_limiting_ntg_and_gamma_zero_does_not():
    """Spec T11: for γ = 1 the trained net's test predictions approach the kernel-regime flow with Θ̂* like
    m^{-1/2} (gap measured 0.088 at m = 250, 0.028 at 4,000, 0.009 at 16,000); for γ = 0, α = 0.4 the gap
    stays O(1) (0.39 and 0.37)."""
    gaps = {
        (gamma, width): np.mean([kernel_regime_gap(gamma, alpha, width, seed) for seed in range(3)])
        for gamma, alpha in ((1.0, 0.5), (0.0, 0.4))
        for width in (250, 4000)
    }
    assert gaps[1.0, 4000] <= 0.45 * gaps[1.0, 250] and gaps[1.0, 4000] < 0.05
    assert gaps[0.0, 4000] >= 0.2 and gaps[0.0, 4000] >= 0.7 * gaps[0.0, 250]


def mean_ntg_drift(net: AsymmetricShallow, x: torch.Tensor, y: torch.Tensor, inits: int, seed: int):
    """dΘ̂/dt at t = 0 under gradient flow on ½Σ(y − f)², averaged over `inits` draws of W_0 ~ N(0, I) and
    the output signs: Θ̂ is the Gram of autograd's Jacobian, dΘ̂/dt its directional derivative along −∇L."""
    width, d = net.weight.shape
    generator = torch.Generator().manual_seed(seed)
    weights = torch.randn(inits, width, d, generator=generator, dtype=torch.float64)
    signs = torch.randint(0, 2, (inits, 1, width), generator=generator).double() * 2 - 1

    def drift(weight, sign):
        def outputs(w):
            return functional_call(net, {"weight": w, "output_signs": sign}, (x,))[:, 0]

        def ntg(w):
            jacobian = jacrev(outputs)(w).flatten(1)
            return jacobian @ jacobian.T

        velocity = -grad(lambda w: 0.5 * (outputs(w) - y).pow(2).sum())(weight)
        return jvp(ntg, (weight,), (velocity,))[1]

    return vmap(drift, chunk_size=2000)(weights, signs).mean(0)


def test_tanh_ntg_drift_is_proportional_to_the_sum_of_squared_scales():
    """Spec T10 (Thm 5.2, tanh): averaged over 20,000 inits and output signs, dΘ̂/dt at t = 0 divided by
    Σ_j λ_{m,j}² is the same matrix for (γ, α, m) = (0, 0.4, 20), (0.5, 0.5, 50), (0.2, 0.5, 200), and it
    is the closed form with 1/d² (theory.tanh_ntg_drift) within 5%; the paper's 1/d^{3/2} is √d too large."""
    x = sphere(4, 5, seed=7)
    y = torch.randn(4, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    expected = tanh_ntg_drift(x)
    for gamma, alpha, width in ((0.0, 0.4, 20), (0.5, 0.5, 50), (0.2, 0.5, 200)):
        net = AsymmetricShallow((5,), 1, width, gamma, alpha, activation="tanh", init_std=1.0).double()
        mean = mean_ntg_drift(net, x, y, inits=20_000, seed=width) / float(net.scales.double().pow(2).sum())
        assert float((mean - expected).norm() / expected.norm()) <= 0.05, (gamma, alpha, width)
