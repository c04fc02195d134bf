"""Seed 004 (asymmetrical node scaling): the node scales, the NTG and its limit, Thm 5.1's drift, and at CI
scale the training claims: every (γ, α) converges, feature learning vanishes with width only for γ = 1,
and smaller γ prunes more gracefully."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch.func import functional_call, jacrev, vmap

from conftest import QUIET_ASYM, compose_config, gallery_sweep, record_overrides, sphere
from overparam.batched.stack import run_stacked
from overparam.data.classes import FeatureFile, OneHotDigits
from overparam.data.regression import RegressionTable, SimulatedSines
from overparam.entry import execute
from overparam.models.asymmetric import AsymmetricShallow, node_scales
from overparam.protocols import importance
from overparam.results.figures import seed004
from overparam.theory.asymmetric import departure, expected_initial_velocity, kappa, mean_ntg, ntg_spread

# Spec §1 table at m = 2000: (γ, α) → λ_{m,1}, Σλ², Σλ^{3/2}, mass of the top 100 and top 10 nodes.
SCALE_TABLE = {
    (1.0, 0.5): (0.0005, 0.0005, 0.0224, 0.05, 0.005),
    (0.5, 0.7): (0.1756, 0.0383, 0.1222, 0.484, 0.369),
    (0.5, 0.5): (0.3043, 0.1004, 0.2103, 0.522, 0.474),
    (0.2, 0.5): (0.4866, 0.2563, 0.4104, 0.805, 0.755),
    (0.0, 0.4): (0.7454, 0.5762, 0.7091, 0.9995, 0.985),
}


@pytest.mark.parametrize("gamma,alpha", list(SCALE_TABLE))
def test_node_scales_match_the_spec_table_and_prop_a2(gamma, alpha):
    scales = node_scales(2000, gamma, alpha)
    values = (scales[0], scales.pow(2).sum(), scales.pow(1.5).sum(), scales[:100].sum(), scales[:10].sum())
    for value, expected in zip(values, SCALE_TABLE[gamma, alpha]):
        assert float(value) == pytest.approx(expected, rel=2e-3, abs=5e-5)
    assert float(scales.sum()) == pytest.approx(1, abs=1e-12)
    assert math.sqrt(gamma * 2000) - 1e-9 <= float(scales.sqrt().sum()) <= math.sqrt(2000) + 1e-9


def test_sum_of_squared_scales_tends_to_its_zeta_limit():
    """Prop A.2: Σ_{j≤m} λ² → (1 − γ)² ζ(2/α)/ζ(1/α)² (0.5762 for α = 0.4)."""
    from scipy.special import zeta

    for gamma, alpha in ((0.5, 0.5), (0.0, 0.4)):
        limit = (1 - gamma) ** 2 * zeta(2 / alpha) / zeta(1 / alpha) ** 2
        assert float(node_scales(10**6, gamma, alpha).pow(2).sum()) == pytest.approx(limit, rel=0.01)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_closed_form_ntg_equals_the_autograd_jacobian_gram(activation):
    net = AsymmetricShallow((6,), 3, 40, 0.3, 0.6, activation=activation, init_seed=1).double()
    x = torch.randn(9, 6, dtype=torch.float64)

    def channel0(weight, xi):
        return functional_call(net, {"weight": weight}, (xi[None],))[0, 0]

    jacobian = vmap(jacrev(channel0), in_dims=(None, 0))(net.weight.detach(), x).flatten(1)
    torch.testing.assert_close(net.ntg(x), jacobian @ jacobian.T, rtol=1e-10, atol=1e-14)


def test_mean_ntg_is_the_monte_carlo_mean_and_kappa_is_positive():
    """Prop 3.1 / spec T2: Θ̂* = (XXᵀ/d)(π − θ)/(2π) is the mean over 10^5 i.i.d. nodes (any λ summing to 1),
    and κ_n = λ_min(Θ̂*) > 0; on the simulated set κ_n ≈ 0.00365 (spec §2)."""
    x = sphere(20, 10)
    net = AsymmetricShallow((10,), 1, 100_000, 1.0, 0.5, init_std=1.0, init_seed=2).double()
    torch.testing.assert_close(net.ntg(x), mean_ntg(x), rtol=0.01, atol=2e-4)
    assert kappa(x) > 0
    simulated = SimulatedSines()
    simulated.setup()
    assert kappa(simulated.train.x) == pytest.approx(0.00365, rel=0.05)


@pytest.mark.parametrize("gamma,alpha", [(1.0, 0.5), (0.5, 0.5), (0.0, 0.4)])
def test_ntg_at_initialization_scatters_around_its_limit_as_sum_of_squared_scales(gamma, alpha):
    """Spec T3, the finite-m form of Eq. 12: E‖Θ̂_m(W_0) − Θ̂*‖_F² = C_0(X) Σ_j λ_{m,j}², over 600 inits.
    So the NTG at init tends to Θ̂* when γ = 1 (Σλ² = 1/m) and stays random when γ < 1."""
    x = sphere(12, 8, seed=3)
    width, inits = 300, 600
    limit = mean_ntg(x)
    errors = []
    for seed in range(inits):
        net = AsymmetricShallow((8,), 1, width, gamma, alpha, init_std=1.0, init_seed=seed).double()
        errors.append(float((net.ntg(x) - limit).pow(2).sum()))
    predicted = ntg_spread(x) * float(node_scales(width, gamma, alpha).pow(2).sum())
    assert np.mean(errors) == pytest.approx(predicted, rel=0.1)


def test_initial_weight_velocity_is_linear_in_the_node_scale():
    """Thm 5.1 / spec T9: averaged over inits and output signs, dw_j/dt at t = 0 (gradient flow on
    ½Σ(y − f)², w ~ N(0, I)) is −λ_j/√d Σ_i x_i g_1(x_i): linear in λ_j, so it survives m → ∞ iff γ < 1."""
    x, y = sphere(6, 5, seed=4), torch.zeros(6, dtype=torch.float64)  # the mean does not depend on y
    width, inits = 50, 4000
    total = torch.zeros(width, 5, dtype=torch.float64)
    for seed in range(inits):
        net = AsymmetricShallow((5,), 1, width, 0.0, 0.5, init_std=1.0, init_seed=seed).double()
        loss = 0.5 * (y - net(x).squeeze(-1)).pow(2).sum()
        (grad,) = torch.autograd.grad(loss, net.weight)
        total -= grad
    scales = node_scales(width, 0.0, 0.5)
    for j in (0, 1, 2):  # the nodes with the largest scales, where the mean is well above the noise
        expected = expected_initial_velocity(x, float(scales[j]))
        assert float((total[j] / inits - expected).norm()) <= 0.1 * float(expected.norm())


def test_importance_rankings_and_seeded_ties():
    scales = torch.tensor([0.1, 0.1, 0.8])
    weight = torch.tensor([[3.0], [1.0], [0.1]])
    assert importance(scales, weight, "lambda_wnorm").tolist() == [2, 1, 0]  # 0.9, 0.1, 0.008
    assert importance(scales, weight, "wnorm").tolist() == [2, 1, 0]
    assert importance(scales, weight, "lambda")[2] == 2  # ties between nodes 0 and 1 follow the seed
    ties = [tuple(importance(torch.ones(8), torch.ones(8, 1), "lambda", seed).tolist()) for seed in range(4)]
    assert len(set(ties)) > 1


SCALINGS = ["iid", "g05_a07", "g05_a05", "g02_a05", "g0_a04"]


@pytest.fixture(scope="module")
def simulated_runs(tmp_path_factory):
    """asym_sim at CI scale: the five node scalings, one init, 5,000 steps (Fig. 1 runs 50,000)."""
    sweep = tmp_path_factory.mktemp("asym_sim")
    jobs = {
        sweep / f"node_scaling={scaling}": [f"node_scaling={scaling}", "trainer.max_steps=5000"]
        for scaling in SCALINGS
    }
    # One stacked model, as `make figures` trains the sweep (hydra/launcher=batched).
    configs = [
        compose_config(["+experiment=asym_sim", *QUIET_ASYM, *overrides], job)
        for job, overrides in jobs.items()
    ]
    assert run_stacked(configs, sweep / ".batched", overrides=list(jobs.values())).status == "completed"
    return sweep


def test_every_node_scaling_converges_and_asymmetry_learns_features(simulated_runs):
    """Spec S1–S4 at 5,000 steps: the training risk falls for every (γ, α) (Thm 4.1, global convergence),
    ordered γ = 1 ≤ (0.5, 0.7) ≤ (0.5, 0.5) ≤ (0.2, 0.5) ≤ (0, 0.4); λ_min(Θ̂_t) is ordered the same way
    and γ = 1's is κ_n; the largest weight move and the NTG change grow strictly as γ falls, γ = 1's
    below a quarter of (0.5, 0.7)'s and under 15% of ‖w_0‖."""
    table = seed004.runs(simulated_runs).set_index("scaling")
    order = ["γ = 1 (iid)", "γ = 0.5, α = 0.7", "γ = 0.5, α = 0.5", "γ = 0.2, α = 0.5", "γ = 0, α = 0.4"]
    assert list(table.index) == order
    for gamma, job in zip(table["gamma"], table["job"]):
        curve = seed004.curves_of(job, "train_eval/loss")["value"].to_numpy()  # steps 1000, 2000, ..., 5000
        assert (np.diff(curve) < 0).all() and curve[-1] < (0.35 if gamma > 0 else 0.7) * curve[0]
    final = table["train_eval/loss"].to_numpy()  # measured 0.0073, 0.0071, 0.0086, 0.016, 0.042
    assert final[0] < 0.01 and final[-1] < 0.05
    assert (final[1:] >= 0.95 * final[:-1]).all()  # ordered, the first two tied within 5%
    eig = table["probe/eig_min"].to_numpy()
    assert (np.diff(eig) < 0).all()
    simulated = SimulatedSines()
    simulated.setup()
    assert eig[0] == pytest.approx(kappa(simulated.train.x), rel=0.1)
    moves, ntg = table["probe/max_weight_change"].to_numpy(), table["probe/ntg_change"].to_numpy()
    assert (np.diff(moves) > 0).all() and (np.diff(ntg) > 0).all()
    assert moves[0] < 0.25 * moves[1] and table["probe/max_relative_change"].iloc[0] < 0.15
    assert (table["test/loss"] < float(simulated.test.y.var())).all()  # S5: all generalize
    assert len(seed004.training(simulated_runs).axes) == 5


def test_smaller_gamma_is_more_robust_to_pruning(simulated_runs):
    """Spec P1–P3 on the simulated runs, nodes ranked by λ (the code's importance) or λ‖w‖² (the paper's):
    pure Zipf (γ = 0) keeps its training risk after 1,900 of 2,000 nodes are pruned, γ = 1 doubles it by
    1,000, and the risk pruning adds (over the unpruned risk, averaged over 100–1,900 nodes) falls with γ.
    (At 5,000 steps γ = 0 has not converged, so the raw area is not compared; at 100,000 steps it is.)"""
    pruning = seed004.protocol_table(simulated_runs, "pruning")
    for kind in ("lambda", "lambda_wnorm"):  # the code's ranking and the paper's
        train = pruning[(pruning["importance"] == kind) & (pruning["split"] == "train")]
        risk = train.pivot_table(index="pruned", columns="gamma", values="risk")
        excess = (risk - risk.loc[0]).loc[100:1900].mean()  # the risk pruning adds, averaged over the grid
        assert excess[0.0] < excess[0.2] < excess[1.0], kind
        assert risk.loc[1900, 0.0] <= 1.1 * risk.loc[0, 0.0] + 0.01  # P1
        assert risk.loc[1000, 1.0] >= 2 * risk.loc[0, 1.0]  # P3
    assert len(seed004.protocols(simulated_runs).axes) == 4  # 2 importances × (train, test)


ORDER = ["γ = 1 (iid)", "γ = 0.5, α = 0.7", "γ = 0.5, α = 0.5", "γ = 0.2, α = 0.5", "γ = 0, α = 0.4"]


def check_fig1_claims(sweep_dir) -> None:
    """Spec S1–S5 and P1–P3 on Fig. 1's sweep at the paper's scale (50,000 steps), averaged over inits."""
    table = seed004.runs(sweep_dir)
    mean = table.groupby("scaling").mean(numeric_only=True).loc[ORDER]
    final = mean["train_eval/loss"].to_numpy()
    assert (final[:-1] < 1e-3).all() and final[-1] < 1e-2 and final[-1] > final[:-1].max()  # S1
    curves = {
        scaling: pd.concat(
            [seed004.curves_of(job, "train_eval/loss").set_index("step")["value"] for job in jobs]
        )
        .groupby(level=0)
        .agg(["mean", "std"])
        for scaling, jobs in table.groupby("scaling")["job"]
    }
    later = [curves[scaling].loc[5000:] for scaling in ORDER]
    assert (later[0]["mean"] <= later[1]["mean"] + later[1]["std"]).all()  # S2, the first two tied
    for faster, slower in zip(later[1:], later[2:]):
        assert (faster["mean"] <= slower["mean"]).all()
    eig = mean["probe/eig_min"].to_numpy()
    assert (np.diff(eig) < 0).all()  # S3
    simulated = SimulatedSines()
    simulated.setup()
    assert eig[0] == pytest.approx(kappa(simulated.train.x), rel=0.1)
    for job, gamma in zip(table["job"], table["gamma"]):
        if gamma >= 0.2:
            eig_curve = seed004.curves_of(job, "probe/eig_min")["value"]
            assert eig_curve.max() <= 1.2 * eig_curve.min(), job.name
    moves, ntg = mean["probe/max_weight_change"].to_numpy(), mean["probe/ntg_change"].to_numpy()
    assert (np.diff(moves) > 0).all() and (np.diff(ntg) > 0).all() and moves[0] < 0.25 * moves[1]  # S4
    relative = mean["probe/max_relative_change"].to_numpy()
    assert relative[0] < 0.15 and (relative[1:] > 0.5).all()
    assert (table["test/loss"] < float(simulated.test.y.var())).all()  # S5
    pruning = seed004.protocol_table(sweep_dir, "pruning")
    train = pruning[(pruning["importance"] == "lambda") & (pruning["split"] == "train")]
    risk = train.pivot_table(index="pruned", columns="gamma", values="risk")  # the mean over inits
    area = risk.loc[100:1900].sum()
    assert area.idxmin() == 0.0  # P2
    assert risk.loc[1900, 0.0] <= 1.1 * risk.loc[0, 0.0] + 0.01  # P1
    assert risk.loc[1000, 1.0] >= 2 * risk.loc[0, 1.0]  # P3


@pytest.mark.slow
def test_fig1_at_the_papers_scale(tmp_path):
    """`make figures ONLY=asym_sim`: five node scalings × five inits, 50,000 GD steps (≈ 14 minutes)."""
    gallery_sweep("asym_sim", tmp_path)
    check_fig1_claims(tmp_path)


def check_width_claims(sweep_dir, bounds: dict, moving: float) -> dict:
    """Spec T8 on a width sweep, on the means over inits: for each γ in `bounds` the log–log slopes of the
    largest weight move and of the NTG change against m lie in its (low, high); for γ < 1 the largest
    move stays ≥ `moving` at every width. Returns the slopes by (γ, α, metric)."""
    table = seed004.runs(sweep_dir)
    means = table.groupby(["gamma", "alpha", "width"])[["probe/max_weight_change", "probe/ntg_change"]].mean()
    slopes = {}
    for (gamma, alpha), part in means.groupby(level=["gamma", "alpha"]):
        widths = part.index.get_level_values("width").to_numpy(float)
        for column in part.columns:
            slope = np.polyfit(np.log(widths), np.log(part[column].to_numpy()), 1)[0]
            low, high = bounds[gamma]
            assert low <= slope <= high, (gamma, alpha, column, slope)
            slopes[(gamma, alpha, column)] = slope
        if gamma < 1:
            assert (part["probe/max_weight_change"] >= moving).all(), part
    assert len(seed004.width(sweep_dir).axes) == 2
    return slopes


def test_feature_learning_vanishes_with_width_only_for_gamma_one(tmp_path):
    """Spec T8 at 1,000 GD steps (a fixed flow time), m ∈ {250, 1000, 4000}, one init: for γ = 1 the largest
    weight move and the NTG change fall with slope in [−0.7, −0.3] on log–log axes; for (0.5, 0.5) the slope
    is within ±0.15 and the move stays ≥ 1."""
    for scaling in ("iid", "g05_a05"):
        for width in (250, 1000, 4000):
            overrides = [f"node_scaling={scaling}", f"model.width={width}", "trainer.max_steps=1000"]
            job = tmp_path / f"{scaling}_{width}"
            execute(compose_config(["+experiment=asym_width", *QUIET_ASYM, *overrides], job))
            record_overrides(job, overrides)
    check_width_claims(tmp_path, {1.0: (-0.7, -0.3), 0.5: (-0.15, 0.15)}, moving=1)


@pytest.mark.slow
def test_width_at_the_specs_scale(tmp_path):
    """`make figures ONLY=asym_width`: the spec's T8 sweep, m from 250 to 8000 × three node scalings × two
    inits at 2,000 GD steps, and its bounds: slopes in [−0.65, −0.35] for γ = 1, within ±0.1 for (0.5, 0.5)
    and (0, 0.4), whose moves stay away from 0."""
    gallery_sweep("asym_width", tmp_path)
    check_width_claims(tmp_path, {1.0: (-0.65, -0.35), 0.5: (-0.1, 0.1), 0.0: (-0.1, 0.1)}, moving=1)


def test_regression_tables_split_and_standardize_like_the_authors_code(tmp_path):
    concrete = RegressionTable("concrete")
    concrete.setup()
    assert (len(concrete.train), len(concrete.val), len(concrete.test)) == (412, 412, 206)
    assert concrete.in_shape == (8,)
    assert float(concrete.train.y.mean()) == pytest.approx(0, abs=1e-6)
    assert float(concrete.train.x.std(0, unbiased=False).mean()) == pytest.approx(1, rel=1e-5)
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(50, 10)), columns=[f"X{k}" for k in range(1, 9)] + ["Y1", "Y2"])
    frame.to_csv(tmp_path / "energy.csv", index=False)
    energy = RegressionTable("energy", root=str(tmp_path))
    energy.setup()
    assert energy.in_shape == (8,) and len(energy.train) == 20
    y1 = frame["Y1"].to_numpy()[np.random.RandomState(10).permutation(50)][:20]
    np.testing.assert_allclose(energy.train.y.numpy(), (y1 - y1.mean()) / y1.std(), rtol=1e-5)
    with pytest.raises(FileNotFoundError, match=r"airfoil\.csv is missing; it must hold airfoil_self_noise"):
        RegressionTable("airfoil", root=str(tmp_path)).setup()


def test_regression_runs_report_losses_not_accuracy(capsys):
    """The end-of-run table shows the mean squared error on each split (the evaluation pass on the
    training set) for regression data, where a sign 'accuracy' would mean nothing."""
    from overparam.report import print_report

    metrics = {"train/avg_acc": 0.9, "train/loss": 0.5, "train_eval/loss": 0.01234, "test/avg_acc": 0.8}
    metrics["test/loss"] = 0.0456
    print_report(metrics, ("all",), {}, regression=RegressionTable.regression)
    shown = capsys.readouterr().out
    assert "loss (final model)" in shown and "0.01234" in shown and "0.0456" in shown and "%" not in shown
    assert SimulatedSines.regression and not OneHotDigits.regression


def test_one_hot_digits_and_feature_files(tmp_path):
    digits = OneHotDigits(n_train=30, n_val=20, n_test=10)
    digits.setup()
    assert digits.train.y.shape == (30, 10) and torch.equal(digits.train.y.argmax(1), digits.train.group)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 300)
    centers = rng.normal(size=(4, 16))
    features = np.abs(centers[labels] + 0.3 * rng.normal(size=(300, 16)))
    np.savez(
        tmp_path / "features.npz",
        x_train=features[:200],
        y_train=labels[:200],
        x_test=features[200:],
        y_test=labels[200:],
    )
    data = FeatureFile(str(tmp_path / "features.npz"), n_val=50)
    data.setup()
    assert (len(data.train), len(data.val), len(data.test)) == (150, 50, 100) and data.n_outputs == 4
    np.savez(tmp_path / "broken.npz", x_train=features)
    with pytest.raises(ValueError, match=r"broken\.npz lacks y_train, x_test, y_test"):
        FeatureFile(str(tmp_path / "broken.npz")).setup()


def test_feature_file_experiment_trains_with_cross_entropy_and_prunes(tmp_path):
    """Seed 004 §3.4's protocol (cross-entropy, SGD batch 64, η = 5) on a synthetic 10-class 512-d
    non-negative feature set in the .npz layout (the stand-in for CIFAR-10 ResNet features): it learns,
    pruning reports cross-entropy and accuracy, and pruning every node leaves zero logits (ln 10)."""
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 10, 1200)
    centers = rng.normal(size=(10, 512))
    features = np.maximum(centers[labels] + rng.normal(size=(1200, 512)), 0).astype(np.float32)
    path = tmp_path / "features.npz"
    np.savez(
        path, x_train=features[:1000], y_train=labels[:1000], x_test=features[1000:], y_test=labels[1000:]
    )
    overrides = [
        f"data.path={path}",
        "data.n_val=200",
        "trainer.max_epochs=10",
        "model.width=200",
        "node_scaling=g05_a05",
        "callbacks.protocols.prune_every=50",
    ]
    execute(compose_config(["+experiment=asym_features", *QUIET_ASYM, *overrides], tmp_path / "run"))
    result = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert result["status"] == "completed" and result["metrics"]["test/avg_acc"] > 0.8
    pruning = pd.read_csv(tmp_path / "run" / "pruning.csv")
    test = pruning[(pruning["importance"] == "lambda") & (pruning["split"] == "test")].set_index("pruned")
    assert test.loc[0, "accuracy"] == pytest.approx(result["metrics"]["test/avg_acc"], abs=1e-6)
    assert test.loc[0, "risk"] == pytest.approx(result["metrics"]["test/loss"], rel=1e-4)
    assert test.loc[200, "risk"] == pytest.approx(math.log(10), rel=1e-9)


def test_transfer_from_asymmetric_nodes_beats_iid_features_on_concrete(tmp_path):
    """Spec X1 on concrete (5,000 GD steps, heads of 2,000 steps): with the code's ranking λ the top-10
    features of the γ = 0 net give the external head a test risk ≤ 0.6× that of γ = 1's (measured 0.18 vs
    0.73; the paper's figure 0.21 vs 0.60), and the gap shrinks by k = 100 (ratio 0.59). The paper's
    ranking λ‖w‖² keeps the k = 10 claim (the sensitivity check of spec §3.2). The paper's head rate 1.0
    diverges here, which the protocol flags."""
    risks = {}
    for scaling, lr in (("iid", 0.1), ("g0_a04", 0.1), ("iid", 1.0)):
        overrides = [
            f"node_scaling={scaling}",
            f"trainer.max_steps={5000 if lr < 1 else 200}",  # the diverging head needs no long main run
            "callbacks.protocols.importances=[lambda,lambda_wnorm]",
            "callbacks.protocols.transfer_ks=[10,100]",
            "callbacks.protocols.transfer_steps=2000",
            f"callbacks.protocols.transfer_lr={lr}",
        ]
        job = tmp_path / f"{scaling}_{lr}"
        execute(compose_config(["+experiment=asym_regression", *QUIET_ASYM, *overrides], job))
        risks[scaling, lr] = pd.read_csv(job / "transfer.csv").set_index(["importance", "k"])
    iid, zipf = risks["iid", 0.1], risks["g0_a04", 0.1]
    assert not iid["diverged"].any() and not zipf["diverged"].any()
    ratio = zipf["test_risk"] / iid["test_risk"]
    assert ratio["lambda", 10] <= 0.6 and ratio["lambda", 100] > ratio["lambda", 10]
    assert ratio["lambda_wnorm", 10] <= 0.6
    assert risks["iid", 1.0]["diverged"].all()
    titles = [ax.get_title() for ax in seed004.protocols(tmp_path).axes]
    assert sum(title.endswith("2 diverged") for title in titles) == 2  # left out of the transfer panels


REGRESSION_ORDER = ["γ = 1 (iid)", "γ = 0.5, α = 0.7", "γ = 0.2, α = 0.5", "γ = 0, α = 0.4"]


def check_fig2_claims(sweep_dir) -> None:
    """Spec R1–R3, P1–P3 and X1 on concrete, averaged over inits."""
    table = seed004.runs(sweep_dir)
    columns = ["probe/max_weight_change", "probe/ntg_change", "train_eval/loss"]
    stats = table.groupby("scaling")[columns].agg(["mean", "std"]).loc[REGRESSION_ORDER]
    for column in columns[:2]:  # R1
        mean = stats[(column, "mean")].to_numpy()
        assert (np.diff(mean) > 0).all() and mean[0] <= 0.6 * mean[1], column
    loss, spread = stats[("train_eval/loss", "mean")].to_numpy(), stats[("train_eval/loss", "std")].to_numpy()
    assert loss[0] <= loss[1] + spread[1] and loss[1] <= loss[2] < loss[3]  # R2
    eig = pd.Series({job: seed004.curves_of(job, "probe/eig_min")["value"].mean() for job in table["job"]})
    mean_eig = table.assign(eig=table["job"].map(eig)).groupby("scaling")["eig"].mean().loc[REGRESSION_ORDER]
    assert (np.diff(mean_eig.to_numpy()) < 0).all()  # R3
    pruning = seed004.protocol_table(sweep_dir, "pruning")
    train = pruning[(pruning["importance"] == "lambda") & (pruning["split"] == "train")]
    risk = train.pivot_table(index="pruned", columns="gamma", values="risk")
    area = risk.loc[100:1900].sum()
    assert area.idxmin() == 0.0 and area[1.0] >= 1.1 * area[0.2]  # P2
    assert risk.loc[1900, 0.0] <= 1.1 * risk.loc[0, 0.0] + 0.01  # P1
    assert risk.loc[1000, 1.0] >= 2 * risk.loc[0, 1.0]  # P3
    transfer = seed004.protocol_table(sweep_dir, "transfer")
    test = transfer[transfer["importance"] == "lambda"].pivot_table(
        index="k", columns="gamma", values="test_risk"
    )
    ratio = test[0.0] / test[1.0]
    assert ratio.loc[10] <= 0.6 and ratio.loc[100] > ratio.loc[10]  # X1


@pytest.mark.slow
def test_fig2_on_concrete_at_the_gallery_scale(tmp_path):
    """`make figures ONLY=asym_regression`: the paper's scale, four node scalings × 5 inits × 100,000 GD
    steps (five stacked groups, about 45 minutes on an idle machine). Validated on that sweep (2026-12-06)."""
    gallery_sweep("asym_regression", tmp_path)
    check_fig2_claims(tmp_path)


GRID = [(1.0, 0.5), (0.7, 0.9), (0.5, 0.7), (0.5, 0.3), (0.2, 0.5), (0.0, 0.3)]


def check_grid_claims(sweep_dir) -> None:
    """Spec §6.6: the final max weight move and NTG change rise, and λ_min(Θ̂_T) falls, with the departure
    (1 − γ)² Σ λ̃² across γ and α alike (Spearman ρ ≥ 0.9 in size, on the means over inits)."""
    from scipy.stats import spearmanr

    table = seed004.runs(sweep_dir)
    columns = ["probe/max_weight_change", "probe/ntg_change", "probe/eig_min"]
    mean = table.groupby(["gamma", "alpha"])[columns].mean().reset_index()
    mean["departure"] = [departure(node_scales(2000, g, a), g) for g, a in zip(mean["gamma"], mean["alpha"])]
    assert spearmanr(mean["departure"], mean["probe/max_weight_change"])[0] >= 0.9
    assert spearmanr(mean["departure"], mean["probe/ntg_change"])[0] >= 0.9
    assert spearmanr(mean["departure"], mean["probe/eig_min"])[0] <= -0.9
    assert len(seed004.grid(sweep_dir).axes) == 4


def test_feature_learning_grows_with_the_departure_from_ntk_scaling(tmp_path):
    """Spec §6.6 at CI scale (six (γ, α) of the grid, 2,000 steps, one init)."""
    for gamma, alpha in GRID:
        overrides = [f"model.gamma={gamma}", f"model.alpha={alpha}", "trainer.max_steps=2000"]
        job = tmp_path / f"g{gamma}_a{alpha}"
        execute(compose_config(["+experiment=asym_grid", *QUIET_ASYM, *overrides], job))
        record_overrides(job, overrides)
    check_grid_claims(tmp_path)


@pytest.mark.slow
def test_the_grid_at_the_gallery_scale(tmp_path):
    """`make figures ONLY=asym_grid`: 24 (γ, α) × 3 inits, 10,000 steps."""
    gallery_sweep("asym_grid", tmp_path)
    check_grid_claims(tmp_path)
