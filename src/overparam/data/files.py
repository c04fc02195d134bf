"""Readers for user-supplied files in their standard formats: MNIST / Fashion-MNIST IDX, CIFAR-10, and the
metadata tables of image and text datasets."""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np
import pandas as pd

IDX_DTYPES = {
    0x08: np.uint8,
    0x09: np.int8,
    0x0B: np.int16,
    0x0C: np.int32,
    0x0D: np.float32,
    0x0E: np.float64,
}
MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
CIFAR_FILES = tuple(f"data_batch_{k}" for k in range(1, 6)) + ("test_batch",)


def read_table(path: Path, columns: set[str], layout: str, **options) -> pd.DataFrame:
    """A CSV metadata table holding `columns` (pandas `options`); a file that is not CSV, or lacks one of
    them, is named in one sentence that says what the `layout` expects."""
    try:
        table = pd.read_csv(path, **options)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not a readable CSV file ({str(error).splitlines()[0]})") from error
    missing = columns - set(table.columns)
    if missing:
        raise ValueError(f"{path} lacks the column(s) {', '.join(sorted(missing))}; expected {layout}.")
    return table


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (optionally gzipped): two zero bytes, a type byte, the number of dimensions, the sizes."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        raw = handle.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_DTYPES:
        raise ValueError(f"{path} is not an IDX file (bad magic number {raw[:4].hex()})")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * k : 8 + 4 * k], "big") for k in range(ndim))
    dtype = np.dtype(IDX_DTYPES[raw[2]]).newbyteorder(">")
    data = np.frombuffer(raw, dtype=dtype, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{path} is truncated: its header promises {shape} values, it holds {data.size}")
    return data.reshape(shape)


def find(root: Path, name: str, layout: str) -> Path:
    for candidate in (root / name, root / f"{name}.gz"):
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"{root / name} (or .gz) is missing; data.root must hold {layout}.")


def load_mnist_files(root: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """MNIST or Fashion-MNIST from the four IDX files in `root`: images `(n, 28, 28)` in [0, 1] and labels,
    the 60,000 training images first, then the 10,000 test images."""
    root = Path(root).expanduser()
    layout = "the four IDX files " + ", ".join(MNIST_FILES)
    arrays = [read_idx(find(root, name, layout)) for name in MNIST_FILES]
    images = np.concatenate([arrays[0], arrays[2]]).astype(np.float32) / 255.0
    return images, np.concatenate([arrays[1], arrays[3]]).astype(np.int64)


def load_cifar10(root: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10 from the python batches in `root` (the `cifar-10-batches-py` folder): images `(n, 32, 32, 3)`
    in [0, 1] and labels, the five training batches first, then the test batch."""
    root = Path(root).expanduser()
    layout = "the CIFAR-10 python batches " + ", ".join(CIFAR_FILES)
    images, labels = [], []
    for name in CIFAR_FILES:
        with open(find(root, name, layout), "rb") as handle:
            batch = pickle.load(handle, encoding="bytes")
        images.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labels.append(np.asarray(batch[b"labels"], dtype=np.int64))
    return np.concatenate(images).astype(np.float32) / 255.0, np.concatenate(labels)
