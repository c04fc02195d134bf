"""Seed 002 (Arora et al.): Fig. 1 (convergence vs labels, spectrum and projections) and Fig. 2."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from overparam.results.collect import collect, curves, job_dirs, overrides  # noqa: E402
from overparam.results.figures import band_line, joined, lines, mean_std_line, override_keys  # noqa: E402


def fig1(sweep_dir: Path):
    """Per dataset: (a/c) ‖y − u(k)‖/‖y‖ for clean, random and worst-case labels with the kernel prediction
    dashed; (b/d) the eigenvalues of H∞ and |v_iᵀy| for each label vector. One line per label set and
    setting of every other swept key, the mean over seeds (a band for their range)."""
    logged = curves(sweep_dir).dropna(subset=["train/residual"])
    logged["data.digits"] = logged["data.digits"].str.replace(" ", "")
    spectra = spectrum_table(sweep_dir)
    datasets = sorted(logged["data.digits"].unique())
    fig, axes = plt.subplots(len(datasets), 2, figsize=(11, 3.8 * len(datasets)), squeeze=False)
    for row, digits in zip(axes, datasets):
        runs = logged[logged["data.digits"] == digits]
        for targets, setting, part in lines(runs, ["data.targets"]):
            label = joined(f"{targets} labels", setting)
            band_line(row[0], part.groupby("step")["train/residual"], label)
            predicted = part.groupby("step")["theory/predicted_residual"].mean()
            row[0].plot(predicted.index, predicted, "--", color=row[0].get_lines()[-1].get_color())
        row[0].set(
            xlabel="GD step",
            ylabel="‖y − u‖ / ‖y‖",
            title=f"digits {digits}: training residual (dashed: theory)",
        )
        row[0].legend()
        runs = spectra[spectra["data.digits"] == digits]
        for targets, setting, part in lines(runs, ["data.targets"], settings=override_keys(runs["job"])):
            projections = torch.stack(list(part["projections"])).abs().mean(0)
            row[1].plot(projections, ".", markersize=3, label=joined(f"|v_iᵀy|, {targets}", setting))
        eigenvalues = runs["eigenvalues"].iloc[0]
        row[1].plot(eigenvalues / eigenvalues[0], "k-", label="λ_i / λ_1")
        row[1].set(
            xscale="log", yscale="log", xlabel="eigen-index i", title=f"digits {digits}: spectrum of H∞"
        )
        row[1].legend(fontsize=8)
    fig.tight_layout()
    return fig


def spectrum_table(sweep_dir: Path) -> pd.DataFrame:
    """One row per run: its overrides, the digits and label set of its config, the eigenvalues of H∞
    and |v_iᵀy| / ‖y‖ (the projections of its labels on the eigenvectors)."""
    rows = []
    for job in job_dirs(sweep_dir):
        config = OmegaConf.load(job / ".hydra" / "config.yaml")
        saved = torch.load(job / "kernel_spectrum.pt")
        rows.append(
            {
                **overrides(job),
                "data.digits": str(list(config.data.digits)).replace(" ", ""),
                "data.targets": config.data.targets,
                "eigenvalues": saved["eigenvalues"],
                "projections": saved["projections"].abs() / saved["label_norm"],
                "job": job,
            }
        )
    return pd.DataFrame(rows)


def test_l1_losses(sweep_dir: Path) -> dict[str, float]:
    """mean |f(x) − y| on the test split of every job, from the test outputs and targets it saved."""
    out = {}
    for job in job_dirs(sweep_dir):
        saved = torch.load(job / "snapshots.pt")
        out[job.name] = float((saved["test_outputs"].squeeze(-1) - saved["test_targets"]).abs().mean())
    return out


def fig2_table(sweep_dir: Path) -> pd.DataFrame:
    """Every run of the Fig. 2 sweep with its p, test error, test ℓ1 loss, final training residual and
    complexity measure."""
    table = collect(sweep_dir)
    table["p"] = table["data.corruption"].astype(float)
    table["test/l1"] = table["job"].map(test_l1_losses(sweep_dir))
    table["test/error"] = 1 - table["test/avg_acc"]
    # train/residual at the last step is in metrics.json already; the complexity is logged as a curve.
    complexity = curves(sweep_dir).dropna(subset=["theory/complexity_measure"]).groupby("job")
    return table.join(complexity["theory/complexity_measure"].last(), on="job")


def fig2(sweep_dir: Path):
    """Against the fraction p of random labels: (a) training residual at the step budget, (b) test error and
    test ℓ1 loss, (c) the complexity measure sqrt(2yᵀ(H∞)⁻¹y/n); mean ± std over seeds, one line per
    setting of every other swept key."""
    table = fig2_table(sweep_dir)
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    panels = [
        (axes[0], "train/residual", ""),
        (axes[1], "test/error", "test error"),
        (axes[1], "test/l1", "test ℓ1 loss"),
        (axes[2], "theory/complexity_measure", ""),
    ]
    for _, setting, part in lines(table, [], along="p", settings=set(table.columns) - {"p"}):
        for ax, column, name in panels:
            summary = part.groupby("p")[column].agg(["mean", "std"])
            mean_std_line(ax, summary.index, summary, joined(name, setting) or None)
    axes[0].set(xlabel="fraction of random labels p", title="(a) training residual at the budget")
    axes[1].set(xlabel="fraction of random labels p", title="(b) test error and test ℓ1 loss")
    axes[2].set(xlabel="fraction of random labels p", title="(c) complexity sqrt(2yᵀ(H∞)⁻¹y/n)")
    for ax in axes:
        if ax.get_legend_handles_labels()[1]:
            ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def sect6(sweep_dir: Path):
    """sqrt(yᵀ(H∞)⁻¹y) (with the Sect. 6 bound dashed) and the test loss against n, one line per power p
    and setting of every other swept key, mean ± std over seeds."""
    from overparam.theory.arora import learnability_bound

    table = collect(sweep_dir)
    logged = curves(sweep_dir).dropna(subset=["theory/sqrt_yHy"]).groupby("job")["theory/sqrt_yHy"].last()
    table = table.join(logged, on="job")
    table["n"], table["p"] = table["data.n_train"].astype(int), table["data.power"].astype(int)
    settings = set(table.columns) - {"n", "p"}
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for p, setting, part in lines(table, ["p"], along="n", settings=settings):
        label = joined(f"p = {p}", setting)
        for ax, column in zip(axes, ["theory/sqrt_yHy", "test/loss"]):
            summary = part.groupby("n")[column].agg(["mean", "std"])
            mean_std_line(ax, summary.index, summary, label)
        if p == 1 or p % 2 == 0:
            bound = learnability_bound(1.0, 1.0, p)
            axes[0].axhline(bound, ls="--", color=axes[0].get_lines()[-1].get_color())
    axes[0].set(xscale="log", yscale="log", xlabel="training set size n")
    axes[0].set_title("sqrt(yᵀ(H∞)⁻¹y) (dashed: Sect. 6 bound)")
    axes[1].set(xscale="log", yscale="log", xlabel="training set size n", title="test loss ½(f − y)²")
    for ax in axes:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
