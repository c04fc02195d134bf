"""Seed 002 (Arora et al.): Fig. 1 (convergence vs labels, spectrum and projections) and Fig. 2."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from overparam.results.collect import collect, curves, job_dirs  # noqa: E402


def fig1(sweep_dir: Path):
    """Per dataset: (a/c) ‖y − u(k)‖/‖y‖ for clean, random and worst-case labels with the kernel prediction
    dashed; (b/d) the eigenvalues of H∞ and |v_iᵀy| for each label vector."""
    logged = curves(sweep_dir)
    datasets = sorted(logged["data.digits"].unique())
    fig, axes = plt.subplots(len(datasets), 2, figsize=(11, 3.8 * len(datasets)), squeeze=False)
    for row, digits in zip(axes, datasets):
        for targets, part in logged[logged["data.digits"] == digits].groupby("data.targets"):
            part = part.dropna(subset=["train/residual"])
            line = row[0].plot(part["step"], part["train/residual"], label=f"{targets} labels")[0]
            row[0].plot(part["step"], part["theory/predicted_residual"], "--", color=line.get_color())
        row[0].set(
            xlabel="GD step",
            ylabel="‖y − u‖ / ‖y‖",
            title=f"digits {digits}: training residual (dashed: theory)",
        )
        row[0].legend()
        for job in job_dirs(sweep_dir):
            config = OmegaConf.load(job / ".hydra" / "config.yaml")
            if str(list(config.data.digits)).replace(" ", "") != digits.replace(" ", ""):
                continue
            saved = torch.load(job / "kernel_spectrum.pt")
            eigenvalues = saved["eigenvalues"]
            row[1].plot(
                saved["projections"].abs() / saved["label_norm"],
                ".",
                markersize=3,
                label=f"|v_iᵀy|, {config['data']['targets']}",
            )
        row[1].plot(eigenvalues / eigenvalues[0], "k-", label="λ_i / λ_1")
        row[1].set(
            xscale="log", yscale="log", xlabel="eigen-index i", title=f"digits {digits}: spectrum of H∞"
        )
        row[1].legend(fontsize=8)
    fig.tight_layout()
    return fig


def test_l1_losses(sweep_dir: Path) -> dict[str, float]:
    """mean |f(x) − y| on the test split of every job, from the test outputs and targets it saved."""
    out = {}
    for job in job_dirs(sweep_dir):
        saved = torch.load(job / "snapshots.pt")
        out[job.name] = float((saved["test_outputs"].squeeze(-1) - saved["test_targets"]).abs().mean())
    return out


def fig2(sweep_dir: Path):
    """Against the fraction p of random labels: (a) training residual at the step budget, (b) test error and
    test ℓ1 loss, (c) the complexity measure sqrt(2yᵀ(H∞)⁻¹y/n); means over seeds."""
    table = collect(sweep_dir)
    table["p"] = table["data.corruption"].astype(float)
    table["test/l1"] = table["job"].map(test_l1_losses(sweep_dir))
    # train/residual at the last step is in metrics.json already; the complexity is logged as a curve.
    complexity = curves(sweep_dir).dropna(subset=["theory/complexity_measure"]).groupby("job")
    table = table.join(complexity["theory/complexity_measure"].last(), on="job")
    means = table.groupby("p")[
        ["train/residual", "test/avg_acc", "test/l1", "theory/complexity_measure"]
    ].mean()
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    axes[0].plot(means.index, means["train/residual"], "o-")
    axes[0].set(xlabel="fraction of random labels p", title="(a) training residual at the budget")
    axes[1].plot(means.index, 1 - means["test/avg_acc"], "o-", label="test error")
    axes[1].plot(means.index, means["test/l1"], "s-", label="test ℓ1 loss")
    axes[1].set(xlabel="p", title="(b) generalization")
    axes[1].legend()
    axes[2].plot(means.index, means["theory/complexity_measure"], "o-")
    axes[2].set(xlabel="p", title="(c) complexity sqrt(2yᵀ(H∞)⁻¹y/n)")
    fig.tight_layout()
    return fig


def sect6(sweep_dir: Path):
    """sqrt(yᵀ(H∞)⁻¹y) (with the Sect. 6 bound dashed) and the test loss against n, one line per power p."""
    from overparam.theory.arora import learnability_bound

    table = collect(sweep_dir)
    logged = curves(sweep_dir).dropna(subset=["theory/sqrt_yHy"]).groupby("job")["theory/sqrt_yHy"].last()
    table = table.join(logged, on="job")
    table["n"], table["p"] = table["data.n_train"].astype(int), table["data.power"].astype(int)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for p, part in table.sort_values("n").groupby("p"):
        line = axes[0].plot(part["n"], part["theory/sqrt_yHy"], "o-", label=f"p = {p}")[0]
        if p == 1 or p % 2 == 0:
            axes[0].axhline(learnability_bound(1.0, 1.0, p), ls="--", color=line.get_color())
        axes[1].plot(part["n"], part["test/loss"], "o-", label=f"p = {p}")
    axes[0].set(xscale="log", yscale="log", xlabel="n", title="sqrt(yᵀ(H∞)⁻¹y) (dashed: Sect. 6 bound)")
    axes[1].set(xscale="log", yscale="log", xlabel="n", title="test loss ½(f − y)²")
    for ax in axes:
        ax.legend()
    fig.tight_layout()
    return fig
