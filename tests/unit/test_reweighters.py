"""The Reweighter contract for every `conf/weighting/*.yaml`, and each algorithm's defining behaviour."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from hydra.utils import instantiate

from conftest import CONF, compose_config
from overparam.weighting.gdro import GroupDRO
from overparam.weighting.iw import ImportanceWeighting

WEIGHTINGS = sorted(CONF.glob("weighting/*.yaml"))
COUNTS = torch.tensor([40, 10, 5, 45])
GROUPS = torch.repeat_interleave(torch.arange(4), COUNTS)  # the full training set, group-sorted


def build(path):
    node = compose_config([f"weighting={path.stem}"]).weighting
    return instantiate(node, n_groups=4, group_counts=COUNTS, n_train=int(COUNTS.sum()))


@pytest.mark.parametrize("path", WEIGHTINGS, ids=lambda p: p.stem)
def test_weights_lie_on_the_simplex(path):
    """Σq = 1, but for Group DRO's `missing_groups=drop`, whose mass is that of the groups in the batch."""
    reweighter = build(path)
    generator = torch.Generator().manual_seed(0)
    for _ in range(5):
        batch = torch.randint(0, len(GROUPS), (32,), generator=generator)
        losses = torch.rand(32, generator=generator) * 3
        q = reweighter(losses, GROUPS[batch], batch)
        assert q.shape == (32,) and bool((q >= 0).all())
        drops = getattr(reweighter, "missing_groups", "share") == "drop"
        mass = reweighter.g[GROUPS[batch].unique()].sum() if drops else torch.tensor(1.0)
        assert torch.isclose(q.sum(), mass.to(q.dtype), atol=1e-6)


@pytest.mark.parametrize("path", WEIGHTINGS, ids=lambda p: p.stem)
def test_state_survives_a_state_dict_round_trip(path):
    reweighter, fresh = build(path), build(path)
    losses = torch.linspace(0, 2, len(GROUPS))
    for _ in range(3):
        reweighter(losses, GROUPS, torch.arange(len(GROUPS)))
    fresh.load_state_dict(reweighter.state_dict())
    assert torch.equal(
        fresh(losses, GROUPS, torch.arange(len(GROUPS))),
        reweighter(losses, GROUPS, torch.arange(len(GROUPS))),
    )


def test_iw_gives_each_group_equal_total_mass():
    q = ImportanceWeighting(4, COUNTS, int(COUNTS.sum()), mode="loss")(
        torch.rand(len(GROUPS)), GROUPS, torch.arange(len(GROUPS))
    )
    mass = torch.bincount(GROUPS, weights=q)
    torch.testing.assert_close(mass, torch.full((4,), 0.25, dtype=mass.dtype))
    torch.testing.assert_close(q, 1 / (4 * COUNTS[GROUPS].double()), check_dtype=False)


def test_iw_sampler_draws_each_group_a_quarter_of_the_time():
    weights = ImportanceWeighting(4, COUNTS, int(COUNTS.sum()), mode="sampler").sample_weights(GROUPS)
    draws = torch.multinomial(weights, 40_000, replacement=True, generator=torch.Generator().manual_seed(0))
    frequency = torch.bincount(GROUPS[draws], minlength=4) / 40_000
    torch.testing.assert_close(frequency, torch.full((4,), 0.25), atol=0.01, rtol=0)


def test_gdro_moves_mass_to_the_group_with_the_highest_loss():
    gdro = GroupDRO(4, COUNTS, int(COUNTS.sum()), eta=0.5)
    losses = torch.tensor([0.1, 0.2, 2.0, 0.3])[GROUPS]
    for _ in range(20):
        q = gdro(losses, GROUPS, torch.arange(len(GROUPS)))
    assert int(gdro.g.argmax()) == 2 and float(gdro.g[2]) > 0.99
    mass = torch.bincount(GROUPS, weights=q)
    assert int(mass.argmax()) == 2


def test_gdro_update_is_exponentiated_gradient():
    gdro = GroupDRO(4, COUNTS, int(COUNTS.sum()), eta=0.1)
    group_loss = torch.tensor([1.0, 2.0, 0.5, 0.0])
    gdro(group_loss[GROUPS], GROUPS, torch.arange(len(GROUPS)))
    expected = torch.exp(0.1 * group_loss) / torch.exp(0.1 * group_loss).sum()
    torch.testing.assert_close(gdro.g, expected)


def test_gdro_with_an_absent_group_renormalises_over_present_ones():
    gdro = GroupDRO(4, COUNTS, int(COUNTS.sum()), eta=0.1)
    groups = torch.tensor([0, 0, 1, 3])
    q = gdro(torch.ones(4), groups, torch.arange(4))
    present = gdro.g[[0, 1, 3]] / gdro.g[[0, 1, 3]].sum()
    torch.testing.assert_close(q, torch.stack([present[0] / 2, present[0] / 2, present[1], present[2]]))
    assert float(gdro.g[2]) < 0.25  # absent group: L_k = 0, so it shrinks relative to the rest


def test_cvar_puts_mass_one_over_alpha_n_on_the_worst_losses():
    from overparam.weighting.cvar import cvar_weights

    losses = torch.tensor([0.3, 2.0, 0.1, 1.5, 0.2, 0.9, 0.4, 0.0, 0.8, 1.1])
    q = cvar_weights(losses, alpha=0.25)  # αn = 2.5: two samples at 0.4, the third at 0.2
    expected = torch.zeros(10)
    expected[[1, 3]] = 0.4
    expected[9] = 0.2
    torch.testing.assert_close(q, expected)
    assert float((q * losses).sum()) == pytest.approx((2.0 + 1.5) * 0.4 + 1.1 * 0.2)


def test_chi2_weights_solve_the_dual_exactly():
    from scipy.optimize import minimize_scalar

    from overparam.weighting.chi2 import chi2_dual_eta, chi2_weights, radius_from_alpha

    losses = torch.rand(50, generator=torch.Generator().manual_seed(3), dtype=torch.float64) ** 2 * 4
    for rho in (0.1, 1.0, radius_from_alpha(0.2)):
        scale = (1 + 2 * rho) ** 0.5

        def dual(eta, rho_scale=scale):
            return eta + rho_scale * float(((losses - eta).clamp(min=0) ** 2).mean()) ** 0.5

        reference = minimize_scalar(
            dual, bounds=(-20, float(losses.max())), method="bounded", options={"xatol": 1e-12}
        )
        eta = chi2_dual_eta(losses, rho)
        assert dual(eta) <= reference.fun + 1e-10
        q = chi2_weights(losses, rho)
        chi2_divergence = 0.5 * float(((q * len(q) - 1) ** 2).mean())
        assert chi2_divergence == pytest.approx(rho, rel=1e-6)  # the constraint is active at the optimum
        order = torch.argsort(losses)
        assert bool((q[order].diff() >= -1e-12).all())  # monotone in the loss


def test_doro_matches_the_authors_robust_cvar_slice():
    from overparam.weighting.doro import DORO

    losses = torch.rand(200, generator=torch.Generator().manual_seed(0))
    eps, alpha, n = 0.05, 0.1, 200
    q = DORO(1, torch.tensor([n]), n, eps=eps, base="cvar", alpha=alpha, rho=1.0)(
        losses, torch.zeros(n, dtype=torch.long), torch.arange(n)
    )
    n1, n2 = int(n * (eps + alpha * (1 - eps))), int(n * eps)
    ranked = torch.sort(losses).values
    authors = ranked[n - n1 : n - n2].mean()
    assert float((q * losses).sum()) == pytest.approx(float(authors), rel=2e-2)
    assert float(q[torch.argsort(losses, descending=True)[: int(n * eps)]].sum()) == 0.0


def test_jtt_upweights_the_error_set_of_its_first_stage_and_restarts_the_model(tmp_path):
    from conftest import QUIET
    from overparam.entry import execute

    cfg = compose_config(
        [
            *QUIET,
            "weighting=jtt",
            "weighting.identification_steps=30",
            "weighting.upweight=20",
            "trainer.max_epochs=3",
            "+callbacks.probe._target_=test_reweighters.InitProbe",
        ],
        tmp_path,
    )
    execute(cfg)
    state = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)
    error_set, stage = (
        state["state_dict"]["reweighter.error_set"],
        state["state_dict"]["reweighter.second_stage"],
    )
    assert bool(stage) and 0 < int(error_set.sum()) < len(error_set) // 2
    assert InitProbe.restarted  # the network went back to θ0 at the switch
    jtt = instantiate(cfg.weighting, n_groups=4, group_counts=COUNTS, n_train=len(error_set))
    jtt.at_event_step(FakeTraining(error_set))
    index = torch.arange(len(error_set))
    q = jtt(torch.ones(len(error_set)), torch.zeros(len(error_set), dtype=torch.long), index)
    assert torch.isclose(q[error_set][0] / q[~error_set][0], torch.tensor(20.0))


class InitProbe(L.Callback):
    """Records whether the network's parameters returned to their initial values during training."""

    restarted = False

    def on_fit_start(self, trainer, pl_module):
        self.start = [p.detach().clone() for p in pl_module.net.parameters()]

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        now = list(pl_module.net.parameters())
        if trainer.global_step > 0 and all(torch.equal(a, b) for a, b in zip(self.start, now)):
            InitProbe.restarted = True


class FakeTraining:
    """What a reweighter's step hook may use of the training run: the current errors and a restart."""

    def __init__(self, wrong: torch.Tensor) -> None:
        self.wrong, self.restarts = wrong, 0

    def misclassified(self) -> torch.Tensor:
        return self.wrong

    def restart(self) -> None:
        self.restarts += 1


def test_jtt_acts_once_after_its_identification_step_and_then_weights_its_error_set():
    from overparam.weighting.jtt import JTT

    jtt = JTT(2, torch.tensor([3, 3]), n_train=6, identification_steps=4, upweight=5.0)
    losses, groups, index = torch.rand(6), torch.tensor([0, 0, 0, 1, 1, 1]), torch.arange(6)
    assert torch.equal(jtt(losses, groups, index), torch.full((6,), 1 / 6))  # stage 1 is ERM
    assert [jtt.next_event_step(step) for step in (0, 3)] == [4, 4]
    training = FakeTraining(torch.tensor([True, False, False, False, False, True]))
    assert jtt.at_event_step(training) == {"weights/jtt_error_set_size": 2.0}
    assert training.restarts == 1 and jtt.next_event_step(4) is None and jtt.next_event_step(0) is None
    # q_i ∝ λ_up on E, 1 elsewhere: 5/(2·5 + 4) and 1/14.
    expected = torch.tensor([5, 1, 1, 1, 1, 5]) / 14
    torch.testing.assert_close(jtt(losses, groups, index), expected)
    # The batch's own members of E, renormalised over a mini-batch.
    torch.testing.assert_close(jtt(losses[:3], groups[:3], index[:3]), torch.tensor([5, 1, 1]) / 7)


def test_erm_is_uniform_over_any_batch():
    from overparam.weighting.erm import ERM

    erm = ERM(2, torch.tensor([3, 3]), n_train=6)
    assert erm.uniform and erm.static
    torch.testing.assert_close(
        erm(torch.rand(4), torch.tensor([0, 1, 1, 0]), torch.arange(4)), torch.full((4,), 0.25)
    )


def test_chi2_weights_of_stacked_rows_equal_each_row_solved_alone():
    from overparam.weighting.chi2 import chi2_weights, chi2_weights_rows

    generator = torch.Generator().manual_seed(0)
    losses = torch.rand(5, 40, dtype=torch.float64, generator=generator) * torch.tensor(
        [[1.0], [3.0], [0.1], [2.0], [1.0]]
    )
    losses[3] = 0.7  # a flat row: uniform weights
    rho = torch.tensor([0.5, 1.0, 2.0, 1.0, 10.0])
    stacked = chi2_weights_rows(losses, rho)
    for k in range(5):
        torch.testing.assert_close(stacked[k], chi2_weights(losses[k], float(rho[k])), rtol=1e-12, atol=1e-14)
    assert not torch.allclose(stacked[0], stacked[1])


@pytest.mark.parametrize(
    "rule,expected",
    [
        # Three groups with uniform g and zero losses (so g stays 1/3); the batch holds groups 0, 0, 1.
        ("drop", [1 / 6, 1 / 6, 1 / 3]),  # the authors' Σ_k g_k L_k: group 2's third leaves the step
        ("share", [1 / 4, 1 / 4, 1 / 2]),  # its third goes to the groups present: q on the simplex
    ],
)
def test_group_dro_with_a_group_missing_from_the_batch(rule, expected):
    gdro = GroupDRO(3, torch.tensor([10, 10, 10]), 30, eta=0.5, missing_groups=rule)
    q = gdro(torch.zeros(3, dtype=torch.float64), torch.tensor([0, 0, 1]), torch.arange(3))
    torch.testing.assert_close(q, torch.tensor(expected, dtype=torch.float64))


def test_group_dro_rules_agree_when_every_group_is_in_the_batch():
    losses, groups = torch.tensor([0.3, 1.2, 0.7, 2.0], dtype=torch.float64), torch.tensor([0, 1, 2, 1])
    drop, share = (
        GroupDRO(3, torch.tensor([4, 4, 4]), 12, eta=0.5, missing_groups=r) for r in ("drop", "share")
    )
    torch.testing.assert_close(drop(losses, groups, torch.arange(4)), share(losses, groups, torch.arange(4)))
    with pytest.raises(ValueError, match="missing_groups must be one of share, drop"):
        GroupDRO(3, torch.tensor([4, 4, 4]), 12, eta=0.5, missing_groups="ignore")


def test_stacked_group_dro_applies_each_members_own_missing_group_rule():
    members = [
        GroupDRO(3, torch.tensor([10, 10, 10]), 30, eta=0.5, missing_groups=r) for r in ("drop", "share")
    ]
    q = GroupDRO.stacked(
        members, torch.zeros(2, 3, dtype=torch.float64), torch.tensor([0, 0, 1]), torch.arange(3)
    )
    expected = torch.tensor([[1 / 6, 1 / 6, 1 / 3], [1 / 4, 1 / 4, 1 / 2]], dtype=torch.float64)
    torch.testing.assert_close(q, expected)
