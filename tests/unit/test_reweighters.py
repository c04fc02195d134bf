"""The Reweighter contract for every `conf/weighting/*.yaml`, and each algorithm's defining behaviour."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import pytest
import torch
from hydra.utils import instantiate

from conftest import CONF, TrainingFacts, compose_config
from overparam.weighting.gdro import GroupDRO
from overparam.weighting.iw import ImportanceWeighting

WEIGHTINGS = sorted(CONF.glob("weighting/*.yaml"))
COUNTS = torch.tensor([40, 10, 5, 45])
GROUPS = torch.repeat_interleave(torch.arange(4), COUNTS)  # the full training set, group-sorted


CLASSES = GROUPS // 2  # groups (class, attribute): 0 and 1 are class 0, 2 and 3 class 1


def build(path, batch_size: int | None = 32, data: TrainingFacts | None = None):
    from overparam.components import build_reweighter

    cfg = compose_config([f"weighting={path.stem}"] if isinstance(path, Path) else [f"weighting={path}"])
    return build_reweighter(cfg, data or TrainingFacts(GROUPS, CLASSES, batch_size))


def draw_batch(reweighter, size: int, generator: torch.Generator) -> torch.Tensor:
    """A mini-batch's positions as the datamodule draws them: by the reweighter's sampler when it has one."""
    weights = reweighter.sample_weights(GROUPS)
    if weights is None:
        return torch.randint(0, len(GROUPS), (size,), generator=generator)
    return torch.multinomial(weights.double(), size, replacement=True, generator=generator)


@pytest.mark.parametrize("path", WEIGHTINGS, ids=lambda p: p.stem)
def test_weights_lie_on_the_simplex(path):
    """Σq = 1, but for Group DRO's `missing_groups=drop`, whose mass is that of the groups in the batch."""
    reweighter = build(path)
    generator = torch.Generator().manual_seed(0)
    for _ in range(5):
        batch = draw_batch(reweighter, 32, generator)
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
            "weighting.mode=loss",
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
    jtt = instantiate(cfg.weighting, n_groups=4, group_counts=COUNTS, n_train=len(error_set), batch_size=128)
    jtt.at_event_step(FakeTraining(error_set))
    index = torch.arange(len(error_set))
    q = jtt(torch.ones(len(error_set)), torch.zeros(len(error_set), dtype=torch.long), index)
    assert torch.isclose(q[error_set][0] / q[~error_set][0], torch.tensor(20.0))


def test_jtt_on_mini_batches_draws_stage_two_from_its_error_set_from_the_first_batch_on(tmp_path):
    """mode=auto on mini-batches is the sampler: stage 1 draws exactly the batches of ERM, and from the first
    batch after the switch (one epoch here: 3000 images in batches of 128) every draw is from E (λ_up =
    10^9 leaves the others a chance of about 10^-5 per draw)."""
    from conftest import QUIET_NO_CHECKPOINTS
    from overparam.entry import execute

    drawn = {}
    jtt = ["weighting=jtt", "weighting.upweight=1e9", "weighting.identification_steps=24"]
    for name, weighting in (("erm", ["weighting=erm"]), ("jtt", jtt)):
        args = [*QUIET_NO_CHECKPOINTS, *weighting, "trainer.max_steps=40"]
        execute(
            compose_config(
                [*args, "+callbacks.batches._target_=test_reweighters.BatchProbe"], tmp_path / name
            )
        )
        drawn[name] = BatchProbe.drawn.copy()
    assert all(torch.equal(drawn["jtt"][step], drawn["erm"][step]) for step in range(24))
    stage_two = torch.cat([drawn["jtt"][step] for step in range(24, 40)])
    error_set = BatchProbe.error_set
    assert 0 < int(error_set.sum()) < len(error_set) // 2 and bool(error_set[stage_two].all())


class BatchProbe(L.Callback):
    """Records each step's batch positions, and the reweighter's error set at the end."""

    drawn: dict = {}

    def on_fit_start(self, trainer, pl_module):
        BatchProbe.drawn = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        BatchProbe.drawn[trainer.global_step] = batch.index.clone()

    def on_fit_end(self, trainer, pl_module):
        BatchProbe.error_set = getattr(pl_module.reweighter, "error_set", None)
        BatchProbe.kept = getattr(pl_module.reweighter, "kept", None)


def test_a_subsampled_run_visits_its_subset_once_per_epoch(tmp_path):
    from conftest import QUIET_NO_CHECKPOINTS
    from overparam.entry import execute

    probe = "+callbacks.batches._target_=test_reweighters.BatchProbe"
    execute(
        compose_config([*QUIET_NO_CHECKPOINTS, "weighting=subg", "trainer.max_epochs=2", probe], tmp_path)
    )
    kept = torch.nonzero(BatchProbe.kept).flatten()
    per_epoch = -(-len(kept) // 128)
    epochs = [
        torch.cat([BatchProbe.drawn[s] for s in range(e * per_epoch, (e + 1) * per_epoch)]) for e in (0, 1)
    ]
    assert len(BatchProbe.drawn) == 2 * per_epoch and len(kept) < 3000
    assert all(torch.equal(torch.sort(drawn).values, kept) for drawn in epochs)
    assert not torch.equal(epochs[0], epochs[1])  # reshuffled


def test_jtt_sampler_refuses_a_switch_inside_an_epoch():
    from overparam.weighting.jtt import JTT

    with pytest.raises(ValueError, match="whole number of epochs .* an epoch is 24 steps here, so e.g. 24"):
        JTT(4, COUNTS, n_train=3000, batch_size=128, identification_steps=30, upweight=5.0)
    assert JTT(4, COUNTS, n_train=3000, batch_size=None, identification_steps=30, upweight=5.0).mode == "loss"


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

    jtt = JTT(2, torch.tensor([3, 3]), n_train=6, batch_size=None, identification_steps=4, upweight=5.0)
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


def test_group_dro_adjustment_offsets_small_groups_in_the_update_of_g():
    """C/√n_k is added to L_k before the update: with n = (4, 1), C = 2 and batch losses (1, 0), the
    adjusted losses are (1 + 1, 0 + 2), equal, so g stays uniform; unadjusted, g moves to group 0."""
    losses, groups = torch.tensor([1.0, 1.0, 0.0], dtype=torch.float64), torch.tensor([0, 0, 1])
    adjusted = GroupDRO(2, torch.tensor([4, 1]), 5, eta=0.5, adjustment=2.0).double()
    plain = GroupDRO(2, torch.tensor([4, 1]), 5, eta=0.5).double()
    adjusted(losses, groups, torch.arange(3)), plain(losses, groups, torch.arange(3))
    torch.testing.assert_close(adjusted.g, torch.tensor([0.5, 0.5], dtype=torch.float64))
    e = torch.exp(torch.tensor(0.5, dtype=torch.float64))
    torch.testing.assert_close(plain.g, torch.stack([e, torch.ones_like(e)]) / (e + 1))
    per_group = GroupDRO(2, torch.tensor([4, 1]), 5, eta=0.5, adjustment=[0.0, 3.0]).double()
    per_group(losses, groups, torch.arange(3))  # adjusted (1, 3): g ∝ (e^0.5, e^1.5)
    torch.testing.assert_close(per_group.g, torch.softmax(torch.tensor([0.5, 1.5], dtype=torch.float64), 0))
    with pytest.raises(ValueError, match="one number ≥ 0 or one per group \\(2\\)"):
        GroupDRO(2, torch.tensor([4, 1]), 5, eta=0.5, adjustment=[1.0, 2.0, 3.0])


def test_group_dro_normalized_loss_divides_the_group_losses_by_their_sum():
    # Group losses (3, 1) become (0.75, 0.25): g ∝ exp(η·0.75), exp(η·0.25) with η = 2.
    gdro = GroupDRO(2, torch.tensor([2, 2]), 4, eta=2.0, normalize_loss=True).double()
    gdro(torch.tensor([3.0, 3.0, 1.0, 1.0], dtype=torch.float64), torch.tensor([0, 0, 1, 1]), torch.arange(4))
    torch.testing.assert_close(gdro.g, torch.softmax(torch.tensor([1.5, 0.5], dtype=torch.float64), 0))


def test_greedy_group_dro_weighs_the_top_loss_groups_up_to_alpha():
    """Training fractions (0.5, 0.3, 0.2), α = 0.6, losses ranking groups 1, 2, 0: the top two hold
    0.5 ≤ α, so they get 0.3/0.6 and 0.2/0.6 and group 0 the remaining 1/6 (the authors' greedy rule)."""
    from overparam.weighting.gdro import GreedyGroupDRO

    btl = GreedyGroupDRO(3, torch.tensor([50, 30, 20]), 100, alpha=0.6, gamma=0.1)
    losses, groups = torch.tensor([0.1, 2.0, 1.0], dtype=torch.float64), torch.tensor([0, 1, 2])
    q = btl(losses, groups, torch.arange(3))
    expected = torch.tensor([1 / 6, 0.5, 1 / 3], dtype=torch.float64)
    torch.testing.assert_close(btl.g, expected)
    torch.testing.assert_close(q, expected)  # one sample per group, all present
    # The loss average: first sight sets it, then it moves by γ towards a present group's loss; an absent
    # group keeps its average (group 0 is absent from the second batch).
    btl(torch.tensor([3.0, 0.0], dtype=torch.float64), torch.tensor([1, 2]), torch.arange(2))
    torch.testing.assert_close(btl.average_loss, torch.tensor([0.1, 2.1, 0.9], dtype=torch.float64))


def test_subsampling_keeps_every_group_or_class_as_often_as_the_smallest():
    classes = (GROUPS == 3).long()  # 55 and 45
    subg, suby = build(Path("subg.yaml")), build(Path("suby.yaml"), data=TrainingFacts(GROUPS, classes))
    assert torch.equal(torch.bincount(GROUPS[subg.kept], minlength=4), torch.full((4,), 5))
    assert torch.equal(torch.bincount(classes[suby.kept]), torch.tensor([45, 45]))
    # Drawn from the run's seed, so a rerun (or a stacked member) keeps the same subset.
    assert torch.equal(build(Path("subg.yaml")).kept, subg.kept)
    # Mini-batches come from the subset; a full batch weighs it, q = 1/|S| on it and 0 elsewhere.
    assert torch.equal(subg.sample_weights(GROUPS) > 0, subg.kept)
    full = build(Path("subg.yaml"), batch_size=None)
    assert full.sample_weights(GROUPS) is None
    q = full(torch.rand(len(GROUPS)), GROUPS, torch.arange(len(GROUPS)))
    torch.testing.assert_close(q, full.kept.float() / 20)


def test_subsampling_needs_every_group():
    groups = torch.tensor([0, 0, 2, 2])
    with pytest.raises(ValueError, match="no samples of group \\[1\\]"):
        build(Path("subg.yaml"), data=TrainingFacts(groups, groups // 2))


def test_class_balanced_sampling_draws_each_class_equally_often():
    rwy = build(Path("rwy.yaml"))
    weights = rwy.sample_weights(GROUPS).double()
    class_mass = torch.bincount(CLASSES, weights=weights / weights.sum())
    torch.testing.assert_close(class_mass, torch.tensor([0.5, 0.5], dtype=torch.float64))
    q = rwy(torch.rand(len(GROUPS)), GROUPS, torch.arange(len(GROUPS)))
    torch.testing.assert_close(q, torch.full((len(GROUPS),), 1 / len(GROUPS)))  # the draws do the weighing


@pytest.mark.parametrize("p_intra_label", [1.0, 0.0], ids=["intra-label", "intra-domain"])
def test_lisa_mixes_within_a_label_across_attributes_or_within_an_attribute_across_labels(p_intra_label):
    from overparam.data.base import Batch

    lisa = build(Path("lisa.yaml"))
    lisa.p_intra_label = p_intra_label
    groups = torch.tensor([0, 0, 1, 2, 3, 3, 3])  # (class, attribute): (0,0) (0,0) (0,1) (1,0) (1,1) ...
    x = torch.randn(7, 3)
    batch = Batch(x, groups // 2, groups, torch.arange(7))
    torch.manual_seed(0)
    mixed, partner, share = lisa.mix(batch)
    cls, attribute = groups // 2, groups % 2
    if p_intra_label == 1.0:
        assert bool((cls[partner] == cls).all() and (attribute[partner] != attribute).all())
    else:  # group 1 = (0, 1) has no partner of attribute 1 and class 1 but group 3's
        assert bool((cls[partner] != cls).all() and (attribute[partner] == attribute).all())
    torch.testing.assert_close(mixed, share[:, None] * x + (1 - share[:, None]) * x[partner])
    assert bool(((share > 0) & (share < 1)).all())


def test_lisa_leaves_a_sample_without_a_partner_unmixed_and_draws_group_balanced():
    from overparam.data.base import Batch

    lisa = build(Path("lisa.yaml"))
    lisa.p_intra_label = 1.0
    groups = torch.tensor([0, 0, 3])  # no class-0 sample of attribute 1, no class-1 sample of attribute 0
    mixed, partner, _ = lisa.mix(Batch(torch.randn(3, 2), groups // 2, groups, torch.arange(3)))
    assert partner.tolist() == [0, 1, 2]
    weights = lisa.sample_weights(GROUPS)
    torch.testing.assert_close(torch.bincount(GROUPS, weights=weights), torch.ones(4, dtype=torch.float64))


def test_mixing_trains_end_to_end_and_refuses_what_it_cannot_do(tmp_path):
    from conftest import QUIET_NO_CHECKPOINTS
    from overparam.entry import execute
    from overparam.errors import ConfigError

    small = [
        *QUIET_NO_CHECKPOINTS,
        "data.n_train=600",
        "data.n_val=200",
        "data.n_test=200",
        "trainer.max_steps=10",
    ]
    execute(compose_config([*small, "weighting=lisa"], tmp_path / "lisa"))
    assert json.loads((tmp_path / "lisa" / "metrics.json").read_text())["status"] == "completed"
    with pytest.raises(ConfigError, match="Mixup mixes inputs, which eager steps of one network do"):
        execute(
            compose_config(
                [*small, "weighting=mixup", "run.compile=true", "data.batch_size=null"], tmp_path / "c"
            )
        )


def test_lff_weighs_each_sample_by_its_class_normalized_biased_and_debiased_loss_averages():
    from overparam.weighting.lff import LearningFromFailure

    lff = LearningFromFailure(2, torch.tensor([2, 2]), 4, train_classes=torch.tensor([0, 0, 1, 1])).double()
    index = torch.arange(4)
    lff.batch_biased_losses = torch.tensor([1.0, 2.0, 3.0, 1.0], dtype=torch.float64)
    q = lff(torch.tensor([1.0, 1.0, 1.0, 3.0], dtype=torch.float64), torch.zeros(4, dtype=torch.long), index)
    # First sight: the averages are the losses. Over each class's largest: biased (1/2, 1, 1, 1/3),
    # debiased (1, 1, 1/3, 1); W = b / (b + d), and q = W / n (the authors' mean of weighted losses).
    expected = torch.tensor([0.5 / 1.5, 0.5, 0.75, 0.25], dtype=torch.float64) / 4
    torch.testing.assert_close(q, expected, rtol=1e-6, atol=0)
    # Then each average moves by 0.3 towards the new loss: sample 0's biased average 0.7·1 + 0.3·4.
    lff.batch_biased_losses = torch.tensor([4.0], dtype=torch.float64)
    lff(torch.tensor([1.0], dtype=torch.float64), torch.zeros(1, dtype=torch.long), index[:1])
    assert float(lff.average_biased[0]) == pytest.approx(1.9)


def test_lff_up_weights_the_samples_its_biased_twin_gets_wrong(tmp_path):
    """Colored MNIST (colour agrees with the label on 95% of training images): after two epochs the
    bias-conflicting images (groups y0_green, y1_red) weigh far more than the aligned ones."""
    from conftest import QUIET_NO_CHECKPOINTS
    from overparam.entry import execute

    probe = "+callbacks.batches._target_=test_reweighters.ReweighterProbe"
    args = [
        *QUIET_NO_CHECKPOINTS,
        "weighting=lff",
        "optim=adam",
        "optim.lr=1e-3",
        "trainer.max_epochs=2",
        probe,
    ]
    execute(compose_config(args, tmp_path))
    lff, groups = ReweighterProbe.reweighter, ReweighterProbe.groups

    def by_class(average: torch.Tensor) -> torch.Tensor:
        largest = torch.zeros(2, dtype=average.dtype).scatter_reduce(0, lff.classes, average, reduce="amax")
        return average / largest[lff.classes]

    biased, debiased = by_class(lff.average_biased), by_class(lff.average_debiased)
    weight = biased / (biased + debiased)
    conflicting = (groups == 1) | (groups == 2)
    assert float(weight[conflicting].mean()) > 2 * float(weight[~conflicting].mean())


class ReweighterProbe(L.Callback):
    """Keeps the reweighter and the training groups at the end of fitting."""

    def on_fit_end(self, trainer, pl_module):
        ReweighterProbe.reweighter = pl_module.reweighter
        ReweighterProbe.groups = trainer.datamodule.train.group
