"""Figure functions draw one line per setting of every swept key (the seed spread around it), never
merging two settings into one line."""

from __future__ import annotations

import itertools

import pandas as pd
import pytest

from conftest import record_overrides
from overparam.results.figures.seed001 import synthetic


def fake_sweep(root, swept: dict[str, list], seeds: int = 2):
    """Run directories as a sweep leaves them: overrides and a metrics.csv whose curves differ by setting."""
    for k, values in enumerate(itertools.product(*swept.values(), range(seeds))):
        job = root / f"job{k}"
        job.mkdir(parents=True)
        overrides = [f"{key}={value}" for key, value in zip([*swept, "seed"], values)]
        record_overrides(job, overrides)
        level = 0.1 * k
        steps = [1, 10, 100]
        pd.DataFrame(
            {
                "step": steps,
                "epoch": [0, 1, 2],
                "val/worst_group_acc": [level] * 3,
                "train/loss": [1 + level] * 3,
            }
        ).to_csv(job / "metrics.csv", index=False)
        (job / "metrics.json").write_text('{"status": "completed", "steps": 100, "metrics": {}}')


def test_the_synthetic_figure_keeps_every_swept_setting_apart(tmp_path):
    fake_sweep(tmp_path, {"weighting": ["erm", "iw"], "optim.weight_decay": [0.0, 0.001]})
    fig = synthetic(tmp_path)
    labels = sorted(line.get_label() for line in fig.axes[0].get_lines())
    assert len(labels) == 4 and all("optim.weight_decay=" in label for label in labels)
    assert fig.axes[0].get_xlabel() == "optimizer step"
    assert "helps" not in fig.axes[0].get_title()  # it describes, it does not conclude


def test_seed000_method_lines_split_every_other_swept_key_and_average_seeds():
    import matplotlib.pyplot as plt

    from overparam.results.figures.seed000 import plot_by_method

    rows = [
        {"weighting": w, "optim.lr": lr, "seed": str(seed), "step": step, "train/loss": 1.0 / step + seed}
        for w in ("erm", "gdro_nu1")
        for lr in ("0.01", "0.1")
        for seed in (0, 1)
        for step in (1, 10, 100)
    ]
    fig, ax = plt.subplots()
    plot_by_method(ax, pd.DataFrame(rows), "train/loss")
    lines = ax.get_lines()
    assert sorted(line.get_label() for line in lines) == [
        "ERM, optim.lr=0.01",
        "ERM, optim.lr=0.1",
        "Group DRO, optim.lr=0.01",
        "Group DRO, optim.lr=0.1",
    ]
    assert list(lines[0].get_ydata()) == pytest.approx([1.5, 0.6, 0.51])  # the mean over both seeds
    # A plotted value without a "/" in its name (the weight gaps) is not a setting to split by.
    fig, ax = plt.subplots()
    gaps = pd.DataFrame(rows).rename(columns={"train/loss": "gap"})
    plot_by_method(ax, gaps, "gap")
    assert len(ax.get_lines()) == 4
