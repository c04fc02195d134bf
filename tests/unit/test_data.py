"""The embedded datamodules: real images, the promised correlations and group balance, full-batch mode."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from overparam.data.cmnist import ColoredMNIST
from overparam.data.digit_pairs import DigitPairs
from overparam.data.gauss_spurious import GaussSpurious


def test_colored_mnist_colour_agrees_with_label_in_train_and_is_balanced_elsewhere():
    data = ColoredMNIST(3000, 1000, 1000, p_agree=0.95, label_noise=0.0, downsample=2, batch_size=128)
    data.setup()
    agree = (data.train.group == 0) | (data.train.group == 3)
    assert 0.93 < agree.float().mean() < 0.97
    for split in (data.val, data.test):
        counts = torch.bincount(split.group, minlength=4)
        assert counts.max() - counts.min() <= 30, (
            counts
        )  # label classes are ~50/50; colour exactly halves each
    assert data.in_shape == (2, 14, 14) and data.n_groups == 4
    batch = next(iter(data.train_dataloader()))
    assert batch.x.shape == (128, 2, 14, 14) and batch.y.dtype == torch.long
    red_pixels, green_pixels = batch.x[:, 0].flatten(1).sum(1), batch.x[:, 1].flatten(1).sum(1)
    colour = (batch.group % 2).bool()
    assert bool((green_pixels[colour] > 0).all()) and bool((red_pixels[colour] == 0).all())


def test_digit_pairs_give_pm1_labels_unit_norm_and_full_batch():
    data = DigitPairs("mnist", [0, 1], n_train=6, n_val=10, n_test=10, input_norm="unit", batch_size=None)
    data.setup()
    batches = list(data.train_dataloader())
    assert len(batches) == 1 and batches[0].x.shape == (6, 784)
    torch.testing.assert_close(batches[0].x.norm(dim=1), torch.ones(6))
    assert set(batches[0].y.tolist()) <= {-1.0, 1.0}
    assert torch.equal(batches[0].group, (batches[0].y > 0).long())


def test_sklearn_digit_pairs_with_01_labels():
    data = DigitPairs(
        "digits", [3, 8], n_train=50, n_val=20, n_test=20, input_norm="raw", batch_size=16, labels="01"
    )
    data.setup()
    assert data.in_shape == (64,) and data.n_outputs == 1 and data.label_threshold == 0.5
    assert set(data.train.y.tolist()) == {0.0, 1.0}


def test_gauss_spurious_group_sizes_and_norm():
    data = GaussSpurious([95, 5, 5, 95], 100, 10, 10, 1000, 2.0, 0.1, batch_size=None)
    data.setup()
    assert data.group_counts.tolist() == [95, 5, 5, 95]
    assert float(data.train.x.norm(dim=1).max()) <= 1.0 + 1e-6
    spurious = data.train.x[:, 10:20].sum(1)
    assert bool(((spurious > 0) == (data.train.group % 2 == 1)).all())  # the spurious block is clean


def test_seed000_six_images_are_the_first_five_zeros_and_the_first_one():
    data = DigitPairs(
        "mnist",
        [0, 1],
        n_train=6,
        n_val=20,
        n_test=200,
        input_norm="raw",
        batch_size=None,
        class_counts=[5, 1],
        pick="first",
    )
    data.setup()
    norms = data.train.x.norm(dim=1)
    # Row norms of seed 000's fixture (spec §9): 10.19, 10.96, 11.30, 11.34, 12.62 and 7.64 for the 1.
    torch.testing.assert_close(
        norms, torch.tensor([10.189, 10.963, 11.297, 11.341, 12.624, 7.642]), atol=2e-3, rtol=0
    )
    assert data.train.y.tolist() == [-1.0] * 5 + [1.0] and data.group_counts.tolist() == [5, 1]
    assert len(data.test) == 200 and not set(data.test.x.sum(1).tolist()) & set(data.train.x.sum(1).tolist())


def test_a_feature_file_with_a_spurious_attribute_has_a_group_per_class_and_attribute(tmp_path):
    from conftest import QUIET_NO_CHECKPOINTS, compose_config
    from overparam.data.classes import FeatureFile
    from overparam.entry import execute

    rng = np.random.default_rng(0)
    y, a = rng.integers(0, 2, 400), rng.integers(0, 3, 400)
    x = np.concatenate([y[:, None] + 0.5 * rng.normal(size=(400, 4)), a[:, None] * 1.0], axis=1)
    np.savez(tmp_path / "f.npz", x_train=x[:300], y_train=y[:300], a_train=a[:300], x_test=x[300:],
             y_test=y[300:], a_test=a[300:])  # fmt: skip
    data = FeatureFile(str(tmp_path / "f.npz"), n_val=100)
    data.setup()
    assert data.group_names == tuple(f"class{c}_attr{k}" for c in (0, 1) for k in (0, 1, 2))
    torch.testing.assert_close(data.val.group, torch.from_numpy(y[200:300] * 3 + a[200:300]))
    np.savez(tmp_path / "g.npz", x_train=x, y_train=y, a_train=a, x_test=x, y_test=y)
    with pytest.raises(ValueError, match=r"g\.npz has a_train but lacks a_test: every split needs"):
        FeatureFile(str(tmp_path / "g.npz"), n_val=100).setup()
    args = [*QUIET_NO_CHECKPOINTS, "data=feature_file", f"data.path={tmp_path / 'f.npz'}", "data.n_val=100"]
    execute(compose_config([*args, "weighting=gdro", "trainer.max_epochs=1"], tmp_path / "run"))
    final = json.loads((tmp_path / "run" / "metrics.json").read_text())["metrics"]
    assert {f"test/group_acc/class{c}_attr{k}" for c in (0, 1) for k in (0, 1, 2)} <= set(final)
