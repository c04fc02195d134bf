"""Figure functions draw one line per setting of every swept key (the seed spread around it), never
merging two settings into one line."""

from __future__ import annotations

import itertools
import json

import pandas as pd
import pytest
import torch

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


# ---- every figure function against a sweep with an extra swept key ----------------------------------

EXTRA = "run.lr_scale"  # a key no figure draws along: every figure must split its lines by it
EXTRA_VALUES = ["0.5", "1.0"]
STEPS = [0, 1, 10, 100]
# The config every fake run starts from; its overrides are written into it.
BASE_CONFIG = {
    "seed": 0,
    "weighting": {"_target_": "overparam.weighting.Uniform"},
    "optim": {"_target_": "torch.optim.SGD", "weight_decay": 0.0, "momentum": 0.0},
    "data": {"digits": [0, 1], "targets": "clean", "n_train": 10, "split": None, "batch_size": None},
    "model": {"depth": 2, "width": 8, "sigma": 1.0, "gamma": 1.0, "alpha": 0.5},
    "callbacks": {"stop": {"stopping_threshold": 1.0}},
}
OPTIMIZERS = {"adam": "torch.optim.Adam", "adagrad": "torch.optim.Adagrad", "sgd": "torch.optim.SGD"}


def fake_run(job, overrides: dict[str, str], level: float) -> None:
    """A run directory holding everything any figure function reads, its numbers moved by `level`: the
    overrides and the config they compose to, metrics.json (with a σ-search record), metrics.csv with
    every curve, and the tensors and tables the theory and probe callbacks save."""
    import copy

    import yaml

    config = copy.deepcopy(BASE_CONFIG)
    for key, value in overrides.items():
        if key == "optim":
            config["optim"]["_target_"] = OPTIMIZERS[value]
            continue
        if key in ("weighting", "loss"):  # a config group: its option's class
            config[key] = {"_target_": f"overparam.{key}.{value}"}
            continue
        node, *path = key.split(".")
        target = config.setdefault(node, {}) if path else config
        for part in path[:-1]:
            target = target.setdefault(part, {})
        target[path[-1] if path else node] = yaml.safe_load(value)
    job.mkdir(parents=True)
    record_overrides(job, [f"{k}={v}" for k, v in overrides.items()])
    (job / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    metrics = {
        name: 0.1 + level
        for name in (
            "train/loss",
            "train/residual",
            "train_eval/loss",
            "test/loss",
            "test/avg_acc",
            "test/worst_group_acc",
            "probe/max_weight_change",
            "probe/ntg_change",
            "probe/eig_min",
        )
    }
    record = {
        "rounds": [{"round": r, "sigma": 2.0**-r, "monitor": level + r} for r in (0, 1)],
        "chosen_round": 1,
    }
    metrics["step"] = 100  # Lightning logs the step among the final metrics too
    result = {
        "status": "completed",
        "steps": 100,
        "metrics": metrics,
        "best": {"best/test/worst_group_acc": level},
    }
    (job / "metrics.json").write_text(json.dumps({**result, "config": config, "sigma_search": record}))
    for r in (0, 1):
        (job / f"round={r}").mkdir()
        (job / f"round={r}" / "metrics.json").write_text(json.dumps({**result, "config": config}))
    curve_names = [
        "train/objective", "train/loss", "param/norm", "weights/group/digit0", "weights/group/digit1",
        "train/residual", "theory/predicted_residual", "theory/complexity_measure", "theory/sqrt_yHy",
        "val/worst_group_acc", "train_eval/avg_acc", "test/worst_group_acc", "train_eval/loss",
        "test/loss", "probe/ntg_change_sqrt", "probe/eig_min",
    ]  # fmt: skip
    epochs = range(25)
    pd.DataFrame(
        {"step": [10 * (e + 1) for e in epochs], "epoch": list(epochs)}
        | {name: [level + 1 / (e + 1) for e in epochs] for name in curve_names}
    ).to_csv(job / "metrics.csv", index=False)
    steps = torch.tensor(STEPS)
    theta = torch.ones(len(STEPS), 3) * (1 + level)
    outputs = torch.full((5, 1), level)
    torch.save(
        {"step": steps, "theta": theta, "test_outputs": outputs, "test_targets": torch.zeros(5)},
        job / "snapshots.pt",
    )
    torch.save(
        {
            "eigenvalues": torch.tensor([3.0, 2.0, 1.0]),
            "projections": torch.tensor([1.0, level, 0.1]),
            "label_norm": 1.0,
        },
        job / "kernel_spectrum.pt",
    )
    torch.save(
        {
            "f_lin_test": torch.full((5,), level),
            "f_int_test": torch.full((5,), 2 * level),
            "y_test": torch.zeros(5),
        },
        job / "limits.pt",
    )
    torch.save({"step": steps, "weight_change": torch.rand(len(STEPS), 4) + level}, job / "node_scaling.pt")
    pd.DataFrame(
        [
            {"importance": "magnitude", "split": split, "pruned": k, "risk": level + k}
            for split in ("train", "test")
            for k in (0, 2)
        ]
    ).to_csv(job / "pruning.csv", index=False)
    pd.DataFrame([{"importance": "magnitude", "k": k, "test_risk": level / k} for k in (1, 2)]).to_csv(
        job / "transfer.csv", index=False
    )


def figure_sweep(root, swept: dict[str, list[str]], seeds: int = 2):
    """Every combination of `swept`, the extra key and the seeds, as fake runs."""
    keys = [*swept, EXTRA, "seed"]
    grid = itertools.product(*swept.values(), EXTRA_VALUES, [str(s) for s in range(seeds)])
    for k, values in enumerate(grid):
        fake_run(root / f"job{k}", dict(zip(keys, values)), level=0.01 * (k + 1))
    return root


def labels_of(fig) -> list[str]:
    """Every legend entry, bar label and table cell of a figure."""
    texts = []
    for ax in fig.axes:
        texts += [label for label in ax.get_legend_handles_labels()[1]]
        texts += [tick.get_text() for tick in ax.get_xticklabels()]
        for table in ax.tables:
            texts += [cell.get_text().get_text() for cell in table.get_celld().values()]
    return texts


def assert_split_by_extra(fig) -> None:
    """Every line that carries one value of the extra key has its twin with the other: nothing merged."""
    labels = labels_of(fig)
    counts = [sum(f"{EXTRA}={value}" in label for label in labels) for value in EXTRA_VALUES]
    assert counts[0] > 0 and counts[0] == counts[1], labels


FIGURES = {
    "seed000.fig1": {"weighting": ["erm", "gdro"]},
    "seed000.fig2": {"weighting": ["erm", "iw"], "run.l2_to_init": ["0.1", "10"]},
    "seed000.fig3": {"weighting": ["erm", "iw", "gdro"], "loss": ["logistic", "polynomial_tail"]},
    "seed000.width": {"weighting": ["erm", "iw"], "model.width": ["8", "32"]},
    "seed001.synthetic": {"weighting": ["erm", "iw"]},
    "seed001.table1": {"weighting": ["erm", "gdro"], "optim.weight_decay": ["0.0", "0.1"]},
    "seed001.synthetic_table": {"weighting": ["erm", "iw"], "run.l2_to_init": ["0.0", "0.1"]},
    "seed002.fig1": {"data.digits": ["[0,1]"], "data.targets": ["clean", "random"]},
    "seed002.fig2": {"data.corruption": ["0.0", "0.5"]},
    "seed002.sect6": {"data.n_train": ["10", "20"], "data.power": ["1", "2"]},
    "seed003.fig1": {"model.sigma": ["0.5", "2.0"], "data.n_train": ["10", "20"]},
    "seed003.fig10": {"model.sigma": ["0.5", "2.0"], "data.n_train": ["10", "20"]},
    "seed003.fig2": {"model.sigma": ["0.5", "2.0"]},
    "seed003.fig3": {"optim": ["sgd", "adam"], "model.width": ["8", "32"]},
    "seed003.fig4": {"optim": ["sgd", "adagrad"], "data.split": ["0.1", "1"]},
    "seed003.fig9": {"optim": ["sgd", "adam"]},
    "seed003.sigma_search": {"model.depth": ["2"]},
    "seed004.training": {"model.gamma": ["1.0", "0.5"]},
    "seed004.width": {"model.gamma": ["1.0", "0.5"], "model.width": ["8", "32"]},
    "seed004.grid": {"model.gamma": ["1.0", "0.5"], "model.alpha": ["0.5", "0.7"]},
    "seed004.protocols": {"model.gamma": ["1.0", "0.5"]},
}


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_every_figure_draws_one_line_per_setting_of_every_swept_key(tmp_path, name):
    import importlib

    import matplotlib.pyplot as plt

    module, function = name.split(".")
    draw = getattr(importlib.import_module(f"overparam.results.figures.{module}"), function)
    fig = draw(figure_sweep(tmp_path, FIGURES[name]))
    assert_split_by_extra(fig)
    for ax in fig.axes:
        if ax.get_lines() and ax.get_xlabel():
            assert "GD step" not in ax.get_xlabel() or module in ("seed000", "seed002")  # full-batch GD there
    plt.close(fig)
