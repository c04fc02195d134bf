"""Deep Feature Reweighting (Kirichenko et al. 2023, DFR^Val as the authors' code runs it).

Stage 1 is the config's own run (ERM in the `dfr_*` experiments), in `<run_dir>/stage1/`. Stage 2 freezes
its final network and takes each split's features once (the input of the network's last linear layer,
cached on disk); then
(a) tuning: half of the validation set, subsampled to equal groups, is standardized and fits an
    ℓ1-penalized logistic regression for each C of the grid; the C with the best worst-group accuracy on
    the other half is kept;
(b) retraining: `subsets` group-balanced subsets of the whole validation set (standardized with the
    training features' statistics) each fit that regression; their coefficients are averaged.
The procedure's metrics are the retrained last layer's, on every split; stage 1's are kept under
`stage1/`. Draws come from `dfr.seed`.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

if TYPE_CHECKING:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

from overparam.components import build, member_networks, set_up
from overparam.data.base import class_ids
from overparam.errors import ConfigError
from overparam.procedures import derived_config
from overparam.run import run

SPLITS = ("train", "val", "test")


def deep_feature_reweighting(cfg: DictConfig) -> dict:
    """Both stages; returns the procedure's metrics.json payload (without config and timing)."""
    settings = OmegaConf.to_object(cfg.dfr)
    first = run(derived_config(cfg, Path(cfg.run_dir) / "stage1", dfr=None))
    stage1 = {f"stage1/{key}": value for key, value in first.metrics.items()}
    if first.status != "completed":
        return {"status": first.status, "error": f"stage 1 {first.status}: {first.error}", "metrics": stage1}
    checkpoint = Path(cfg.run_dir) / "stage1" / "checkpoints" / "last.ckpt"
    if not checkpoint.exists():
        raise ConfigError(f"dfr retrains the last layer of stage 1's final network, but {checkpoint} is "
                          "missing: keep callbacks.resume (it writes last.ckpt)")  # fmt: skip
    features, group_names = split_features(cfg, checkpoint, settings.cache_dir)
    rng = np.random.default_rng(settings.seed)
    penalty, tuning = tune_penalty(features, settings.c_grid, rng)
    layer = retrained_layer(features, penalty, settings.subsets, rng)
    metrics = {**stage1}
    for split in SPLITS:
        metrics.update(group_accuracies(layer, features[split], group_names, split))
    record = {"C": penalty, "worst_group_acc_by_C": tuning, "features": features["val"][0].shape[1]}
    return {"status": "completed", "metrics": metrics, "best": {}, "dfr": record}


def split_features(cfg: DictConfig, checkpoint: Path, cache_dir: str | None) -> tuple[dict, tuple]:
    """{split: (features, classes, groups)} of stage 1's network (numpy), read from the cache when the
    same checkpoint and data settings made them before."""
    data = build(cfg, "data")
    set_up(data)
    key = feature_key(checkpoint, OmegaConf.to_yaml(cfg.data))
    folder = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    file = folder / f"{key}.pt"
    if file.exists():
        stored = torch.load(file)
        return {s: tuple(v.numpy() for v in stored[s]) for s in SPLITS}, data.group_names
    net = member_networks(cfg, [cfg], data)[0]
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)["state_dict"]
    net.load_state_dict({k.removeprefix("net."): v for k, v in state.items() if k.startswith("net.")})
    splits = {"train": data.train_eval, "val": data.val, "test": data.test}
    size = data.eval_batch_size or 256
    stored = {name: penultimate(net, split, size, data.label_threshold) for name, split in splits.items()}
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(stored, file.with_suffix(".tmp"))
    os.replace(file.with_suffix(".tmp"), file)
    return {s: tuple(v.numpy() for v in stored[s]) for s in SPLITS}, data.group_names


def default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "overparam" / "features"


def feature_key(checkpoint: Path, data_settings: str) -> str:
    """Changes when the checkpoint is replaced or touched, or the data settings change."""
    stat = checkpoint.stat()
    described = f"{checkpoint.resolve()}|{stat.st_size}|{stat.st_mtime_ns}\n{data_settings}"
    return hashlib.sha256(described.encode()).hexdigest()[:20]


@torch.no_grad()
def penultimate(
    net: nn.Module, split, batch_size: int, threshold: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The inputs of the network's last linear layer for every example of `split` (evaluation mode),
    with each example's class (a scalar target's: whether it exceeds `threshold`) and group."""
    last = [module for module in net.modules() if isinstance(module, nn.Linear)]
    if not last:
        raise ConfigError("dfr retrains a last linear layer, but the model has no nn.Linear")
    captured = []
    hook = last[-1].register_forward_hook(lambda module, inputs, output: captured.append(inputs[0]))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    net.to(device).eval()
    transform = getattr(split, "device_transform", None)
    classes, groups = [], []
    try:
        for start in range(0, len(split), batch_size):
            batch = split[list(range(start, min(start + batch_size, len(split))))]
            x = batch.x.to(device)
            net(transform(x) if transform is not None else x)
            classes.append(class_ids(batch.y, threshold))
            groups.append(batch.group)
    finally:
        hook.remove()
    return torch.cat(captured).flatten(1).double().cpu(), torch.cat(classes), torch.cat(groups)


def balanced(groups: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Positions of a random subset holding every group as often as the rarest group."""
    members = [rng.permutation(np.flatnonzero(groups == g)) for g in np.unique(groups)]
    smallest = min(len(m) for m in members)
    return np.concatenate([m[:smallest] for m in members])


def worst_group_accuracy(
    model: LogisticRegression, x: np.ndarray, y: np.ndarray, groups: np.ndarray
) -> float:
    right = model.predict(x) == y
    return float(min(right[groups == g].mean() for g in np.unique(groups)))


def tune_penalty(features: dict, grid: list[float], rng: np.random.Generator) -> tuple[float, dict]:
    """(a): the C whose regression, fit on a balanced half of the validation set, has the best
    worst-group accuracy on the other half; and that accuracy for every C."""
    x, y, groups = features["val"]
    order = rng.permutation(len(y))
    held_out, fitting = order[: len(y) // 2], order[len(y) // 2 :]
    fitting = fitting[balanced(groups[fitting], rng)]
    from sklearn.linear_model import LogisticRegression  # scikit-learn's import costs every run ½ s
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x[fitting])
    scores = {}
    for c in grid:
        model = LogisticRegression(penalty="l1", C=c, solver="liblinear").fit(
            scaler.transform(x[fitting]), y[fitting]
        )
        scores[c] = worst_group_accuracy(model, scaler.transform(x[held_out]), y[held_out], groups[held_out])
    return max(scores, key=scores.get), scores


class RetrainedLayer:
    """The averaged regression of (b), applied to raw features."""

    def __init__(self, scaler: StandardScaler, coef: np.ndarray, intercept: np.ndarray, classes: np.ndarray):
        self.scaler, self.coef, self.intercept, self.classes = scaler, coef, intercept, classes

    def predict(self, x: np.ndarray) -> np.ndarray:
        scores = self.scaler.transform(x) @ self.coef.T + self.intercept
        if scores.shape[1] == 1:
            return self.classes[(scores[:, 0] > 0).astype(int)]
        return self.classes[scores.argmax(1)]


def retrained_layer(features: dict, penalty: float, subsets: int, rng: np.random.Generator) -> RetrainedLayer:
    """(b): regressions on `subsets` balanced subsets of the validation set, coefficients averaged."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    x, y, groups = features["val"]
    scaler = StandardScaler().fit(features["train"][0])
    fits = []
    for _ in range(subsets):
        chosen = balanced(groups, rng)
        fits.append(
            LogisticRegression(penalty="l1", C=penalty, solver="liblinear").fit(
                scaler.transform(x[chosen]), y[chosen]
            )
        )
    coef = np.mean([fit.coef_ for fit in fits], axis=0)
    intercept = np.mean([fit.intercept_ for fit in fits], axis=0)
    return RetrainedLayer(scaler, coef, intercept, fits[0].classes_)


def group_accuracies(layer: RetrainedLayer, split: tuple, group_names: tuple, name: str) -> dict[str, float]:
    """avg_acc, worst_group_acc and group_acc/<group> of the retrained layer on one split."""
    x, y, groups = split
    right = layer.predict(x) == y
    prefix = "train_eval" if name == "train" else name
    per_group = {
        f"{prefix}/group_acc/{group_names[g]}": float(right[groups == g].mean()) for g in np.unique(groups)
    }
    return {
        f"{prefix}/avg_acc": float(right.mean()),
        f"{prefix}/worst_group_acc": min(per_group.values()),
        **per_group,
    }
