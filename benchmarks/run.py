"""`make bench`: the framework against bare PyTorch loops doing the same math, side by side in one process.

Each benchmark prints its ratio next to its target, and the peak memory (the process's peak RSS on CPU; the
peak allocated memory on a GPU). Options: `--device cuda` on a GPU machine, `--quick` for a smoke run,
`--only 1a,3` for some of them. On a CPU the image pipeline (3) runs only when asked for, at 64² with
`--quick`: its targets are a GPU's. `benchmarks/README.md` says how to run them on a GPU machine.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from batched import batched_sweep, fig3_at_paper_scale
from compiled import compiled_step
from ensemble import ensemble
from full_batch import linear_six_images, paper_scale_step, two_layer_relu
from images import image_pipeline
from overparam.host_memory import keep_freed_memory

NAMES = ("1a", "1b", "2", "3", "4", "5a", "5b", "5c", "5d")


def benchmarks(device: str, quick: bool) -> dict:
    """Each target's benchmarks, by name, as functions of nothing."""
    scale = 0.1 if quick else 1.0
    gpu = device == "cuda"
    # Paper scale on a GPU; on a CPU m = n = 2,000 (a step of the paper's 10,000 takes seconds there).
    width = (2000 if gpu else 1000) if quick else (10000 if gpu else 2000)
    return {
        "1a": lambda: [linear_six_images(device, int(20000 * scale))],
        "1b": lambda: [two_layer_relu(device, max(2, int(40 * scale)))],
        "2": lambda: [
            ensemble(device, max(10, int(100 * scale)), width=1000),
            ensemble(device, max(10, int(300 * scale)), width=100),
        ],
        "3": lambda: image_pipeline(device, quick),
        "4": lambda: [
            paper_scale_step(device, max(3, int((1000 if gpu else 20) * scale)), width, width, precision)
            for precision in (("highest", "high") if gpu else ("highest",))
        ],
        # The long runs' 16 steps per graph; a smoke run compiles 2 (the same code, less compiling).
        "5a": lambda: [compiled_step(device, int(20000 * scale), members=1, unroll=2 if quick else 16)],
        "5b": lambda: [batched_sweep(device, 64 if not quick else 16, int(10000 * scale))],
        "5c": lambda: [compiled_step(device, int(20000 * scale), members=64, unroll=2 if quick else 16)],
        "5d": lambda: [fig3_at_paper_scale(device, 100000 if not quick else 5000, unroll=2 if quick else 16)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help="fewer steps: a smoke run, not a measurement")
    parser.add_argument("--only", default=None, help=f"comma-separated, among {', '.join(NAMES)}")
    parser.add_argument("--out", type=Path, default=None, help="also write the results as JSON here")
    args = parser.parse_args()
    chosen = args.only.split(",") if args.only else [n for n in NAMES if n != "3" or args.device == "cuda"]
    unknown = sorted(set(chosen) - set(NAMES))
    if unknown:
        parser.error(f"--only names unknown benchmarks {', '.join(unknown)}; choose among {', '.join(NAMES)}")
    print(
        f"device: {torch.cuda.get_device_name() if args.device == 'cuda' else 'CPU'} "
        f"({torch.get_num_threads()} threads), torch {torch.__version__}",
        flush=True,
    )
    keep_freed_memory()  # what every run sets for its process, here before both sides of each benchmark
    table = benchmarks(args.device, args.quick)
    results = [result for name in chosen for result in table[name]()]
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    sys.exit(main())
