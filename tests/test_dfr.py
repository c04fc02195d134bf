"""Deep Feature Reweighting: the balanced last-layer retraining on known features, and both stages end to
end (with the feature cache)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import QUIET, compose_config
from overparam.entry import execute
from overparam.procedures.dfr import balanced, retrained_layer, tune_penalty


def spurious_features(n: int, rng: np.random.Generator, p_agree: float) -> tuple:
    """A core feature (sign = the class, noisy) and a clean spurious one (sign = the attribute) that agrees
    with the class on a fraction p_agree; groups (class, attribute) = 2y + a."""
    y = rng.integers(0, 2, n)
    a = np.where(rng.random(n) < p_agree, y, 1 - y)
    x = np.stack([(2 * y - 1) + 0.8 * rng.normal(size=n), 3 * (2 * a - 1) + 0.1 * rng.normal(size=n)], 1)
    return x, y, 2 * y + a


def test_balanced_subsets_hold_every_group_as_often_as_the_rarest():
    groups = np.repeat([0, 1, 2, 3], [50, 5, 7, 40])
    chosen = balanced(groups, np.random.default_rng(0))
    assert np.bincount(groups[chosen]).tolist() == [5, 5, 5, 5] and len(set(chosen)) == 20


def test_retraining_on_balanced_validation_data_ignores_the_spurious_feature():
    """Trained on data where the attribute agrees with the class 95% of the time, a plain regression
    follows the clean attribute; DFR's balanced retraining follows the core feature (worst group ≥ 80%)."""
    rng = np.random.default_rng(0)
    features = {split: spurious_features(n, rng, 0.95) for split, n in (("train", 2000), ("val", 800))}
    features["test"] = spurious_features(2000, rng, 0.5)
    penalty, scores = tune_penalty(features, [1.0, 0.1, 0.01], rng)
    layer = retrained_layer(features, penalty, subsets=10, rng=rng)
    x, y, groups = features["test"]
    right = layer.predict(x) == y
    worst = min(right[groups == g].mean() for g in range(4))
    assert worst >= 0.8 and set(scores) == {1.0, 0.1, 0.01}
    from sklearn.linear_model import LogisticRegression

    plain = LogisticRegression().fit(*features["train"][:2]).predict(x) == y
    assert min(plain[groups == g].mean() for g in range(4)) < 0.6  # what a plain last layer does


def test_dfr_runs_both_stages_improves_the_worst_group_and_caches_the_features(tmp_path, monkeypatch):
    """Colored MNIST, whose colour agrees with the label on most training images: retraining the ERM
    network's last layer on balanced validation data raises the test worst-group accuracy (DFR's claim)."""
    from overparam.procedures import dfr

    cache = tmp_path / "features"
    args = [*QUIET, "+dfr=default", f"dfr.cache_dir={cache}", "trainer.max_epochs=3"]
    cfg = compose_config(args, tmp_path / "run")
    execute(cfg)
    result = json.loads((tmp_path / "run" / "metrics.json").read_text())
    metrics, by_penalty = result["metrics"], result["dfr"]["worst_group_acc_by_C"]
    assert result["status"] == "completed"
    assert result["dfr"]["C"] == float(max(by_penalty, key=by_penalty.get))  # tuned on the held-out half
    assert metrics["test/worst_group_acc"] > metrics["stage1/test/worst_group_acc"] + 0.03
    # Stage 1's features are computed once per checkpoint and data settings.
    monkeypatch.setattr(dfr, "penultimate", lambda *args: pytest.fail("features recomputed"))
    checkpoint = tmp_path / "run" / "stage1" / "checkpoints" / "last.ckpt"
    features, _ = dfr.split_features(cfg, checkpoint, str(cache))
    assert len(list(cache.glob("*.pt"))) == 1 and features["val"][0].shape[1] == result["dfr"]["features"]


def test_dfr_without_stage_ones_checkpoint_says_what_to_keep(tmp_path):
    from overparam.errors import ConfigError

    args = [*QUIET, "~callbacks.resume", "+dfr=default", "trainer.max_epochs=1"]
    with pytest.raises(ConfigError, match="last.ckpt is missing: keep callbacks.resume"):
        execute(compose_config(args, tmp_path / "run"))
