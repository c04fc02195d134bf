"""Seed 003, second part: the layerwise kernel of Eq. (1), the monotone learning-rate search, the
σ-shrinking remedy, the σ-sweep against its closed forms (Fig. 2), the batch splits (Fig. 4) and the
cross-entropy variant (Fig. 10), each at CI scale."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hydra.utils import instantiate

from conftest import QUIET_NO_CHECKPOINTS, compose_config, execute_stacked, gallery_sweep, record_overrides
from overparam.data.base import whole
from overparam.entry import execute
from overparam.errors import ConfigError
from overparam.losses import logistic, logistic_quadratic_model
from overparam.models.deep_relu import DeepReLU
from overparam.models.mitigation import mitigate
from overparam.results.collect import collect
from overparam.results.figures import seed003
from overparam.theory.kernels import empirical_ntk, kernel_regression_limit

EXPERIMENT = ["+experiment=minimizer_gd", *QUIET_NO_CHECKPOINTS]


def training_set(cfg):
    data = instantiate(cfg.data)
    data.setup("fit")
    return whole(data.train), whole(data.test)


@pytest.mark.parametrize("bias", ["none", "normal"])
@pytest.mark.parametrize("depth", [2, 3])
def test_layerwise_kernel_equals_the_jacobian_gram_matrix(depth, bias):
    """Spec T4: Σ_l (σ²/m_l)(g_l·g_l')(a^{l−1}·a^{l−1}') equals φφᵀ from the explicit Jacobian."""
    net = DeepReLU((30,), 1, 64, depth, 1.3, bias=bias, init_seed=3).double()
    x, z = torch.randn(9, 30, dtype=torch.float64), torch.randn(4, 30, dtype=torch.float64)
    torch.testing.assert_close(net.ntk(x, z), empirical_ntk(net, x, z), rtol=1e-10, atol=1e-12)


def adagrad_losses(cfg, lr: float, steps: int) -> list[float]:
    """A bare PyTorch AdaGrad loop on the same network and data: the full training loss before each step."""
    train, _ = training_set(cfg)
    net = DeepReLU((train.x.shape[1],), 1, cfg.model.width, 2, 1.0, init_seed=0).double()
    optimizer = torch.optim.Adagrad(net.parameters(), lr=lr, eps=1e-10)
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = 0.5 * (net(train.x.double()).squeeze(-1) - train.y.double()).pow(2).mean()
        losses.append(loss.item())
        loss.backward()
        optimizer.step()
    return losses


def test_lr_search_takes_the_largest_monotone_rate_and_every_seed_reuses_it(tmp_path):
    """Seed 003 §2.0: the grid is tried from the top on seed 0; the first rate whose full training loss never
    rises is used by every seed. A bare AdaGrad loop confirms both sides of the choice."""
    grid = "[1.0,0.1,0.01,0.001]"
    base = [*EXPERIMENT, "recipe=adagrad", "model.width=64", f"lr_search.grid={grid}"]
    base.append("callbacks.stop.stopping_threshold=1e-3")
    results = {}
    for seed in (0, 1):
        cfg = compose_config([*base, f"seed={seed}"], tmp_path / f"seed={seed}")
        execute(cfg)
        results[seed] = json.loads((tmp_path / f"seed={seed}" / "metrics.json").read_text())
    search = results[0]["lr_search"]
    assert results[1]["lr_search"] == search and results[0]["lr"] == results[1]["lr"] == search["lr"]
    chosen = search["lr"]
    assert [t["lr"] for t in search["trials"]] == [lr for lr in (1.0, 0.1, 0.01, 0.001) if lr >= chosen]
    assert all(not t["monotone"] for t in search["trials"][:-1]) and search["trials"][-1]["monotone"]
    assert search["trials"][-1]["converged"]
    trials = sorted((tmp_path / "lr_search" / search["key"]).glob("lr=*"))
    assert len(trials) == len(search["trials"])  # seed 1 trained no trial of its own
    assert collect(tmp_path)["job"].tolist() == ["seed=0", "seed=1"]  # trials are not sweep jobs
    bare = adagrad_losses(cfg, chosen, search["trials"][-1]["steps"])
    assert all(b <= a for a, b in zip(bare, bare[1:]))  # monotone
    larger = adagrad_losses(cfg, search["trials"][-2]["lr"], 50)
    assert any(b > a for a, b in zip(larger, larger[1:]))  # the next rate up rises somewhere
    assert results[0]["metrics"]["train_eval/loss"] < 1e-3


def test_the_logistic_loss_searches_its_rate_on_its_quadratic_model(tmp_path):
    """Under the logistic loss one large AdaGrad step drives the loss towards zero without it ever rising, so
    "never rises" bounds nothing; the trials train the loss's quadratic model at zero outputs instead (the
    same gradient and curvature at f = 0, minimum 0 at f = 2y), whose loss does rise at too large a rate."""
    outputs = torch.zeros(4, 1, dtype=torch.float64, requires_grad=True)
    targets = torch.tensor([1.0, -1.0, -1.0, 1.0], dtype=torch.float64)
    derivatives = {}
    for loss in (logistic, logistic_quadratic_model):
        (gradient,) = torch.autograd.grad(loss(outputs, targets).sum(), outputs, create_graph=True)
        (curvature,) = torch.autograd.grad(gradient.sum(), outputs)
        derivatives[loss] = (gradient.detach(), curvature)
    torch.testing.assert_close(
        derivatives[logistic], derivatives[logistic_quadratic_model], rtol=1e-12, atol=1e-15
    )
    assert logistic_quadratic_model(2 * targets[:, None], targets).abs().max() == 0
    base = ["+experiment=minimizer_fig10", *QUIET_NO_CHECKPOINTS, "recipe=adagrad", "model.width=64"]
    base += ["data.n_train=25", "seed=0", "lr_search.grid=[1.0,0.1,0.01,0.001]"]
    searched = {}
    for on_model in (True, False):
        job = tmp_path / f"on_model={on_model}"
        execute(compose_config([*base, f"lr_search.on_quadratic_model={on_model}"], job))
        searched[on_model] = json.loads((job / "metrics.json").read_text())["lr_search"]
        trial = tmp_path / "lr_search" / searched[on_model]["key"] / f"lr={searched[on_model]['lr']:.6g}"
        trained = json.loads((trial / "metrics.json").read_text())["config"]["loss"]["_target_"]
        assert trained == f"overparam.losses.{'logistic_quadratic_model' if on_model else 'logistic'}"
    # The literal rule's rate makes the quadratic model's loss rise: the model's search ends lower.
    assert searched[True]["lr"] < searched[False]["lr"] and searched[True]["trials"][-1]["converged"]
    assert not any(t["monotone"] for t in searched[True]["trials"][:-1])


SIGMA_SEARCH = ["+experiment=minimizer_sigma_search", *QUIET_NO_CHECKPOINTS]


def check_sigma_search(sweep_dir, job: str, jobs: int = 1) -> dict:
    """The claims every σ-shrinking run must meet (spec F2.7, with σ ≤ 1 for the spec's [0.35, 1]), for
    `job` of a sweep of `jobs`."""
    result = json.loads((sweep_dir / job / "metrics.json").read_text())
    record = result["sigma_search"]
    sigmas = [r["sigma"] for r in record["rounds"]]
    np.testing.assert_allclose(sigmas, [math.sqrt(2) * 0.7**k for k in range(len(sigmas))], rtol=1e-12)
    val = [r["monitor"] for r in record["rounds"]]
    assert record["chosen_round"] == int(np.argmin(val)) and record["sigma"] <= 1.0
    rounds = seed003.sigma_search_rounds(sweep_dir)
    rounds = rounds[rounds["job"] == sweep_dir / job]
    assert rounds["test_loss"].tolist()[record["chosen_round"]] == result["metrics"]["test/loss"]
    assert result["metrics"]["test/loss"] <= 1.5 * rounds["test_loss"].min()
    assert result["metrics"]["test/loss"] < rounds["test_loss"].iloc[0]
    assert len(collect(sweep_dir)) == jobs  # the rounds are not sweep jobs
    assert len(seed003.sigma_search(sweep_dir).axes[0].lines) == jobs
    return record


def test_sigma_search_shrinks_sigma_while_validation_improves(tmp_path):
    """Spec §1.7 at CI scale (m = 128, stop at 1e-3, σ ≥ 0.3): from σ' = √2 the rounds use 0.7^k σ' from the
    same raw draws, and the round with the smallest validation loss is returned, better than round 0 on
    the test set. A round that cannot reach the stop loss within max_step_ratio × round 0's steps ends the
    search and is never returned."""
    small = ["model.width=128", "callbacks.stop.stopping_threshold=1e-3"]
    execute(compose_config([*SIGMA_SEARCH, *small, "sigma_search.min_sigma=0.3"], tmp_path / "a" / "seed=0"))
    record = check_sigma_search(tmp_path / "a", "seed=0")
    assert record["stopped_because"] in ("σ would fall below 0.3", "val/loss improved by less than 5%")
    execute(compose_config([*SIGMA_SEARCH, *small, "sigma_search.max_step_ratio=0.5"], tmp_path / "b"))
    record = json.loads((tmp_path / "b" / "metrics.json").read_text())["sigma_search"]
    assert [r["status"] for r in record["rounds"]] == ["completed", "not converged"]
    assert record["chosen_round"] == 0 and record["rounds"][1]["steps"] == math.ceil(
        0.5 * record["rounds"][0]["steps"]
    )


@pytest.mark.slow
def test_sigma_search_at_the_paper_stop_loss(tmp_path):
    """The same at m = 256 and the paper's stop loss 1e-5 (about 3 minutes on 2 cores)."""
    execute(compose_config([*SIGMA_SEARCH, "model.width=256"], tmp_path / "seed=0"))
    check_sigma_search(tmp_path, "seed=0")


@pytest.mark.slow
def test_sigma_search_at_the_papers_width_and_stop_loss(tmp_path):
    """`make figures ONLY=minimizer_sigma_search`: the paper's m = 4000 and stop loss 1e-5, four inits
    (about 50 minutes). Every round converges, so each search ends by the 5% rule or at the σ floor, never
    at the step cap (at m = 256 it improves until the network dies). The spec's σ ∈ [0.35, 1] held for one
    of the four inits when this was validated (0.485, 0.238, and 0.116 twice at the floor of 0.1), so it is
    reported, not asserted."""
    gallery_sweep("minimizer_sigma_search", tmp_path)
    for job in collect(tmp_path)["job"]:
        record = check_sigma_search(tmp_path, Path(job).name, jobs=4)
        assert all(r["status"] == "completed" for r in record["rounds"]), record["rounds"]
        assert record["stopped_because"] in ("val/loss improved by less than 5%", "σ would fall below 0.1")


def test_sigma_sweep_grows_like_sigma_to_the_2l_and_tracks_the_closed_forms(tmp_path):
    """Spec F2.2 for the trained network (slope of log L_T against log σ over {2, 2.83, 4} within 2L ± 0.6)
    and F2.5 (f_NN within 0.3 × the init term of f_lin,∞ for σ ≥ 1), L = 2, m = 256, one init, stopped
    at 1e-4; limits.pt holds f_lin,∞ as the explicit-Jacobian closed form gives it."""
    sigmas = [1.0, 2.0, 2.83, 4.0]
    shared = ["+experiment=minimizer_fig2", *QUIET_NO_CHECKPOINTS, "model.width=256"]
    # One stacked model, as hydra/launcher=batched trains the sweep: each σ stops at its own step.
    execute_stacked(
        {
            tmp_path / f"model.sigma={sigma}": [
                *shared,
                f"model.sigma={sigma}",
                "callbacks.stop.stopping_threshold=1e-4",
            ]
            for sigma in sigmas
        },
        tmp_path / ".batched",
    )
    table = seed003.runs(tmp_path).sort_values("sigma")
    assert (table["train_loss"] < 1e-4).all()
    slope = np.polyfit(np.log(table["sigma"][1:]), np.log(table["test_loss"][1:]), 1)[0]
    assert abs(slope - 4) <= 0.6
    for job in table["job"]:
        saved = torch.load(job / "limits.pt", weights_only=True)
        f_nn = torch.load(job / "snapshots.pt", weights_only=True)["test_outputs"].squeeze(-1)
        init_term = (saved["f_lin_test"] - saved["f_int_test"]).pow(2).mean().sqrt()
        assert (f_nn - saved["f_lin_test"]).pow(2).mean().sqrt() <= 0.3 * init_term
    cfg = compose_config(["+experiment=minimizer_fig2", "model.width=256", "model.sigma=4.0"])
    train, test = training_set(cfg)
    net = instantiate(cfg.model, in_shape=(784,), out_features=1).double()
    x, xt = train.x.double(), test.x.double()
    with torch.no_grad():
        f0, f0t = net(x).squeeze(-1), net(xt).squeeze(-1)
    expected = kernel_regression_limit(
        empirical_ntk(net, xt, x), empirical_ntk(net, x, x), train.y.double(), f0, f0t
    )
    saved = torch.load(table["job"].iloc[-1] / "limits.pt", weights_only=True)
    torch.testing.assert_close(saved["f_lin_test"], expected, rtol=1e-8, atol=1e-8)
    legend = seed003.fig2(tmp_path).axes[0].get_legend().get_texts()
    assert {"f_NN (trained)", "f_lin", "f_int"} <= {text.get_text() for text in legend}


def test_cross_entropy_variant_uses_twice_n_over_lambda_max_and_large_sigma_hurts(tmp_path):
    """Spec §2.7 / F10 at CI scale (N = 100, m = 256, BCE stopped at 1e-3): η = 2N/λ_max(K) at θ0, and the
    test cross-entropy at σ = 2 is above the one at σ = 0.5."""
    losses = {}
    for sigma in (0.5, 2.0):
        job = tmp_path / f"model.sigma={sigma}"
        overrides = ["model.width=256", f"model.sigma={sigma}", "data.n_train=100", "seed=0"]
        cfg = compose_config(["+experiment=minimizer_fig10", *QUIET_NO_CHECKPOINTS, *overrides], job)
        execute(cfg)
        record_overrides(job, overrides)
        result = json.loads((job / "metrics.json").read_text())
        assert result["metrics"]["train_eval/loss"] < 1e-3
        train, _ = training_set(cfg)
        net = instantiate(cfg.model, in_shape=(784,), out_features=1).double()
        lam_max = torch.linalg.eigvalsh(net.ntk(train.x.double(), train.x.double())).max().item()
        assert result["lr"] == pytest.approx(2 * 100 / lam_max, rel=1e-9)
        losses[sigma] = result["metrics"]["test/loss"]
    assert losses[2.0] > losses[0.5]
    assert len(seed003.fig10(tmp_path).axes[0].get_legend().get_texts()) == 2  # GD at σ = 0.5 and 2


def test_bad_procedure_settings_are_named(tmp_path):
    with pytest.raises(
        ConfigError, match=r"^lr_search\.grd is not a setting of lr_search; did you mean grid\?$"
    ):
        execute(compose_config([*EXPERIMENT, "recipe=adagrad", "+lr_search.grd=[0.1]"], tmp_path))
    with pytest.raises(ConfigError, match=r"^lr_search chooses optim\.lr itself: set run.lr_scale=null$"):
        execute(compose_config([*EXPERIMENT, "recipe=adagrad", "run.lr_scale=0.5"], tmp_path / "b"))
    with pytest.raises(ConfigError, match=r"^sigma_search\.factor must be in \(0, 1\), got 1\.5$"):
        execute(
            compose_config(["+experiment=minimizer_sigma_search", "sigma_search.factor=1.5"], tmp_path / "c")
        )


def test_fashion_pairs_reads_user_supplied_idx_files(tmp_path):
    """Seed 003 App. E: Fashion-MNIST classes 0/1 come from the IDX files in data.root (no download)."""
    from test_files import make_mnist_files

    make_mnist_files(tmp_path, n_train=300, n_test=100)
    cfg = compose_config(
        [
            "+experiment=minimizer_gd",
            "data=fashion_pairs",
            f"data.root={tmp_path}",
            "data.n_train=20",
            "data.n_val=10",
            "data.n_test=10",
        ]
    )
    train, test = training_set(cfg)
    assert train.x.shape == (20, 784) and torch.allclose(
        train.x.norm(dim=1), torch.ones(20, dtype=train.x.dtype)
    )
    missing = compose_config(
        ["+experiment=minimizer_gd", "data=fashion_pairs", f"data.root={tmp_path / 'none'}"]
    )
    with pytest.raises(FileNotFoundError, match=r"none/train-images-idx3-ubyte \(or \.gz\) is missing"):
        training_set(missing)


@pytest.mark.parametrize("kind", ["center", "asi"])
def test_mitigations_start_at_zero_with_the_networks_kernel(kind):
    """Output centering and ASI output 0 at θ0 and keep the network's tangent kernel there: the layerwise
    kernel and the Jacobian Gram of the wrapper (frozen θ0 adds no parameters) both equal the net's."""
    net = DeepReLU((6,), 1, width=32, depth=2, sigma=2.0, init_seed=3).double()
    wrapped = mitigate(copy.deepcopy(net), kind)
    x = torch.randn(5, 6, dtype=torch.float64)
    torch.testing.assert_close(wrapped(x), torch.zeros(5, 1, dtype=torch.float64))
    torch.testing.assert_close(wrapped.ntk(x, x), net.ntk(x, x))
    torch.testing.assert_close(empirical_ntk(wrapped, x, x), net.ntk(x, x))
    with pytest.raises(ValueError, match="mitigation must be one of none, center, asi, got 'doubling'"):
        mitigate(net, "doubling")


def test_centering_and_asi_remove_the_init_term_at_large_sigma(tmp_path):
    """Spec F2.7's extension baselines (not the paper's method) at σ = 2, L = 2, m = 256, stopped at 1e-3:
    the plain net's test MSE is many times the kernel interpolator's (measured 27×), while output centering
    and ASI land within 20% of L_T(f_int), the closed form at θ0 in limits.pt (measured 1.006× and 0.99×)."""
    cfg = compose_config(["+experiment=minimizer_fig2"])
    _, test = training_set(cfg)
    errors = {}
    for kind in ("none", "center", "asi"):
        overrides = ["model.width=256", "model.sigma=2.0", "callbacks.stop.stopping_threshold=1e-3"]
        job = tmp_path / kind
        execute(
            compose_config(
                ["+experiment=minimizer_fig2", *QUIET_NO_CHECKPOINTS, *overrides, f"run.mitigation={kind}"],
                job,
            )
        )
        f_nn = torch.load(job / "snapshots.pt", weights_only=True)["test_outputs"].squeeze(-1).double()
        f_int = torch.load(job / "limits.pt", weights_only=True)["f_int_test"]
        errors[kind] = float((f_nn - test.y).pow(2).mean() / (f_int - test.y).pow(2).mean())
    assert errors["none"] > 5
    assert errors["center"] <= 1.2 and errors["asi"] <= 1.2, errors
    with pytest.raises(ConfigError, match="mitigation must be one of none, center, asi, got 'doubling'"):
        execute(compose_config(["+experiment=minimizer_fig2", "run.mitigation=doubling"], tmp_path / "bad"))
    with pytest.raises(
        ConfigError, match="run.mitigation=asi wraps one network; train it with run.ensemble=1"
    ):
        execute(
            compose_config(
                ["+experiment=minimizer_fig2", "run.mitigation=asi", "run.ensemble=2"], tmp_path / "pair"
            )
        )


def check_fig2(sweep_dir) -> dict:
    """Spec F2.1–F2.6 on a Fig. 2 sweep, per depth, on the mean over its inits; returns what was measured."""
    table = seed003.runs(sweep_dir)
    assert len(table) and table["converged"].all(), "every run reaches the stop loss"
    measured = {}
    for depth, part in table.groupby("depth"):
        rows = [fig2_row(run) for _, run in part.iterrows()]
        curve = pd.DataFrame(rows).groupby("sigma").mean().sort_index()
        assert curve["int"].max() / curve["int"].min() - 1 < 1e-6  # F2.1
        large = curve.loc[[2.0, 2.828, 4.0]]
        slope = np.polyfit(np.log(large.index), np.log(large["nn"]), 1)[0]
        assert abs(slope - 2 * depth) <= 0.6  # F2.2
        assert curve.loc[4.0, "nn"] >= 100 * curve.loc[0.5, "nn"]  # F2.3
        small = curve[curve.index <= 0.5]
        assert (small["nn"] <= 2 * small["int"] + 0.005).all()  # F2.4
        lazy = curve[curve.index >= 1.0]
        assert (lazy["nn_to_lin"] <= 0.3 * lazy["init_term"]).all()  # F2.5
        assert (abs(lazy["nn"] - lazy["lin"]) <= 0.2 * lazy["lin"] + 0.005).all()
        assert curve["int_error"].max() <= 0.02 and curve.loc[4.0, "nn_error"] >= 0.25  # F2.6
        measured[depth] = {"slope": slope, "curve": curve}
    return measured


def fig2_row(run) -> dict:
    """A run's test MSE next to the closed forms' (test/loss is half the mean squared error), the 0-1
    errors, and f_NN's distance to f_lin,∞ against the init term of f_lin,∞."""
    saved = torch.load(run["job"] / "limits.pt", weights_only=True)
    f_nn = torch.load(run["job"] / "snapshots.pt", weights_only=True)["test_outputs"].squeeze(-1)
    y, f_lin, f_int = saved["y_test"], saved["f_lin_test"], saved["f_int_test"]
    return {
        "sigma": run["sigma"],
        "nn": run["test_loss"],
        "lin": 0.5 * (f_lin - y).pow(2).mean().item(),
        "int": 0.5 * (f_int - y).pow(2).mean().item(),
        "int_error": (torch.sign(f_int) != torch.sign(y)).double().mean().item(),
        "nn_error": run["test_error"],
        "nn_to_lin": (f_nn.double() - f_lin).pow(2).mean().sqrt().item(),
        "init_term": (f_lin - f_int).pow(2).mean().sqrt().item(),
    }


@pytest.mark.slow
def test_fig2_at_the_papers_widths_and_stop_loss(tmp_path):
    """The gallery's Fig. 2: m = 4000 (L = 2) and 2000 (L = 3), the paper's stop loss 1e-5, one init (the
    paper averages 10): F2.1–F2.6 hold (about 70 minutes on 2 cores)."""

    gallery_sweep("minimizer_fig2", tmp_path)
    check_fig2(tmp_path)


def check_fig3(sweep_dir) -> pd.DataFrame:
    """Spec F3.1 / F9 / F3.4 on a Fig. 3 sweep (GD, SGD split 0.1, AdaGrad and Adam over widths, both
    depths), on the means over inits; returns the table of those means per (depth, width, recipe)."""
    table = seed003.runs(sweep_dir)
    assert len(table) and table["converged"].all(), "every run reaches the stop loss"
    distance = seed003.deviations(sweep_dir)
    means = distance.groupby(["depth", "width", "recipe"])["deviation"].mean().unstack("recipe")
    adaptive = means[["AdaGrad", "Adam"]]
    # F3.1 and F9: at every depth and width, the adaptive methods end ≥ 5× farther from GD's minimizer
    # than SGD with a split of 0.1 does.
    assert (adaptive.min(axis=1) >= 5 * means["SGD split 0.1"]).all(), means
    # F3.4: AdaGrad's distance from GD does not vanish with the width (largest ≥ half the smallest's).
    for _, part in means["AdaGrad"].groupby(level="depth"):
        assert part.iloc[-1] >= 0.5 * part.iloc[0], part
    return means


@pytest.mark.slow
def test_fig3_at_the_papers_widths_and_stop_loss(tmp_path):
    """The gallery's Fig. 3 (and Fig. 9 from the same runs): the spec's widths (500–4000 for L = 2,
    500–2000 for L = 3), the paper's stop loss 1e-5, two inits (the paper averages 10): F3.1, F9 and F3.4
    hold (about an hour on 2 cores)."""

    gallery_sweep("minimizer_fig3", tmp_path)
    check_fig3(tmp_path)


def check_fig4(sweep_dir) -> dict:
    """Spec F4.1–F4.4 on a Fig. 4 sweep (SGD and AdaGrad over batch splits, with and without shuffling),
    per width, on the means over inits; returns those means per (optimizer, split, shuffle) by width.
    Distances are RMS over the test points, paired by init with the same optimizer's full-batch run."""
    table = seed003.runs(sweep_dir)
    assert len(table) and table["converged"].all(), "every run reaches the stop loss"  # F4.4 and more
    table = table.assign(optimizer=seed003.optimizer_of(table))
    outputs = {
        job: torch.load(job / "snapshots.pt", weights_only=True)["test_outputs"].squeeze(-1).double()
        for job in table["job"]
    }
    measured = {}
    for width, part in table.groupby("width"):
        full = part[(part["split"] == 1.0) & ~part["shuffle"]]
        reference = {(row.optimizer, row.seed): outputs[row.job] for row in full.itertuples()}
        distance = [
            (outputs[row.job] - reference[(row.optimizer, row.seed)]).pow(2).mean().sqrt().item()
            for row in part.itertuples()
        ]
        means = (
            part.assign(distance=distance)
            .groupby(["optimizer", "split", "shuffle"])[["test_loss", "distance"]]
            .mean()
        )
        sgd, adagrad = means.loc["SGD"], means.loc["AdaGrad"]
        gd_loss = sgd.loc[1.0, "test_loss"].mean()
        # F4.1: SGD's test error and minimizer stay at GD's for every split, shuffled or not.
        assert (abs(sgd["test_loss"] - gd_loss) <= 0.05 * gd_loss + 0.002).all(), sgd
        assert (sgd["distance"] <= 0.01).all(), sgd
        # F4.2: AdaGrad's split moves its minimizer ≥ 3× as far as SGD's split moves SGD's (splits ≤ 0.25).
        small = [split for split in sgd.index.get_level_values("split").unique() if split <= 0.25]
        assert (adagrad.loc[small, "distance"] >= 3 * sgd.loc[small, "distance"]).all(), adagrad
        # F4.3: AdaGrad's test error spreads more over the splits than SGD's does.
        spread = {
            name: rows["test_loss"].max() - rows["test_loss"].min()
            for name, rows in (("SGD", sgd), ("AdaGrad", adagrad))
        }
        assert spread["AdaGrad"] > spread["SGD"], spread
        measured[width] = means
    return measured


@pytest.mark.slow
def test_fig4_at_the_papers_widths_and_stop_loss(tmp_path):
    """The gallery's Fig. 4: m = 1000 and 4000, six splits with and without shuffling, SGD and AdaGrad,
    the paper's stop loss 1e-5, fewer inits than the paper's 10 (docs/gallery.txt says how many):
    F4.1–F4.4 hold."""

    gallery_sweep("minimizer_fig4", tmp_path)
    check_fig4(tmp_path)


def check_fig1(sweep_dir) -> pd.DataFrame:
    """Spec F1.1–F1.4 on a Fig. 1 sweep (GD, SGD split 0.1 and AdaGrad at σ = 0.5 and 2 over N), on the means
    over inits; returns those means per (recipe, σ, N)."""
    table = seed003.runs(sweep_dir)
    assert len(table) and table["converged"].all(), "every run reaches the stop loss"
    means = table.groupby(["recipe", "sigma", "n_train"])[["test_loss"]].mean()
    distance = seed003.deviations(sweep_dir).groupby(["recipe", "sigma", "n_train"])["deviation"].mean()
    gd, sgd, adagrad = (means.loc[name] for name in ("GD", "SGD split 0.1", "AdaGrad"))
    # F1.1: a large init costs test error at every N.
    assert (gd.loc[2.0, "test_loss"] > 3 * gd.loc[0.5, "test_loss"]).all(), gd
    # F1.2: SGD's test error is GD's.
    assert (abs(sgd["test_loss"] - gd["test_loss"]) <= 0.1 * gd["test_loss"] + 0.002).all(), sgd
    # F1.3: AdaGrad ends ≥ 5× as far from GD's minimizer as SGD does, pooled (RMS) over every σ and N (the
    # spec says "for every N" for F1.1 and F1.2, not here; no sign asserted).
    pooled = distance.pow(2).groupby(level="recipe").mean().pow(0.5)  # ‖·‖₂ on the same test points
    assert pooled["AdaGrad"] >= 5 * pooled["SGD split 0.1"], pooled
    # F1.4: the σ-gap does not grow with N (one violation allowed).
    gap = (gd.loc[2.0, "test_loss"] - gd.loc[0.5, "test_loss"]).sort_index()
    assert (gap.diff().dropna() > 0).sum() <= 1, gap
    return means


def check_fig10(sweep_dir) -> pd.DataFrame:
    """Fig. 10's claim (spec §2.7: Fig. 1's effects under the binary cross-entropy, qualitatively) on the
    means over inits: GD's test cross-entropy at σ = 2 is above σ = 0.5 at every N, and SGD's lies on GD's;
    returns the means per (recipe, σ, N)."""
    table = seed003.runs(sweep_dir)
    assert len(table) and table["converged"].all(), "every run reaches the stop loss"
    means = table.groupby(["recipe", "sigma", "n_train"])[["test_loss", "test_error"]].mean()
    gd, sgd = means.loc["GD"], means.loc["SGD split 0.1"]
    assert (gd.loc[2.0, "test_loss"] > gd.loc[0.5, "test_loss"]).all(), gd
    assert (abs(sgd["test_loss"] - gd["test_loss"]) <= 0.1 * gd["test_loss"] + 0.002).all(), sgd
    # F10: at N = 100, SGD's test logits stay within 0.2× AdaGrad's distance of GD's (RMS over σ and inits).
    distance = seed003.deviations(sweep_dir).set_index(["recipe", "n_train"])["deviation"].xs(100, level=1)
    rms = distance.pow(2).groupby(level="recipe").mean().pow(0.5)
    assert rms["SGD split 0.1"] < 0.2 * rms["AdaGrad"], rms
    return means


@pytest.mark.slow
def test_fig1_at_the_papers_width(tmp_path):
    """The gallery's Fig. 1: the paper's width m = 2000, 3 inits, N up to 400, stopped at 1e-3 (the paper:
    1e-5, 5 repetitions, N up to 800; about 50 minutes on 2 cores): F1.1–F1.4 hold."""
    gallery_sweep("minimizer_fig1", tmp_path)
    check_fig1(tmp_path)


@pytest.mark.slow
def test_fig10_at_the_papers_width(tmp_path):
    """The gallery's Fig. 10: the paper's width m = 2000, 3 inits, N up to 400, the config's stop loss 1e-3
    (about 40 minutes on 2 cores), AdaGrad's rate searched on the logistic loss's quadratic model: a large
    init hurts under the cross-entropy too, SGD stays on GD and AdaGrad does not."""
    gallery_sweep("minimizer_fig10", tmp_path)
    check_fig10(tmp_path)
