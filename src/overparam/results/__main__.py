"""python -m overparam.results <sweep dir> [--out DIR]: tables and the sweep's figure."""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path

import yaml

from overparam.results.collect import collect, curves, job_dirs


def declared_figure(sweep_dir: Path) -> str | None:
    for job in job_dirs(sweep_dir):
        config = yaml.safe_load((job / ".hydra" / "config.yaml").read_text())
        if config.get("figure"):
            return config["figure"]
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument(
        "--out", type=Path, default=None, help="where to write the figure (default: the sweep)"
    )
    args = parser.parse_args()
    if not job_dirs(args.sweep_dir):
        parser.error(f"{args.sweep_dir} holds no run directory with a metrics.json")
    collect(args.sweep_dir).to_csv(args.sweep_dir / "results.csv", index=False)
    curves(args.sweep_dir).to_csv(args.sweep_dir / "curves.csv", index=False)
    print(f"wrote {args.sweep_dir / 'results.csv'} and {args.sweep_dir / 'curves.csv'}")
    figure = declared_figure(args.sweep_dir)
    if figure:
        module, name = figure.rsplit(".", 1)
        fig = getattr(importlib.import_module(module), name)(args.sweep_dir)
        out = (args.out or args.sweep_dir) / f"{module.rsplit('.', 1)[-1]}_{name}.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=130, bbox_inches="tight")
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
