"""User-supplied MNIST (IDX) and CIFAR-10 (python batches) files, generated here in their real formats."""

from __future__ import annotations

import gzip
import pickle

import numpy as np
import pytest

from overparam.data.digit_pairs import DigitPairs
from overparam.data.files import read_idx


def write_idx(path, array: np.ndarray, compress: bool) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    if compress:
        with gzip.open(f"{path}.gz", "wb") as handle:
            handle.write(payload)
    else:
        path.write_bytes(payload)


def make_mnist_files(root, n_train=40, n_test=20, compress=True):
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(root / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)), compress)
        write_idx(root / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10, compress)
    return root


def make_cifar_files(root, per_batch=20):
    rng = np.random.default_rng(1)
    for name in [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]:
        batch = {
            b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
            b"labels": [k % 10 for k in range(per_batch)],
        }
        with open(root / name, "wb") as handle:
            pickle.dump(batch, handle)
    return root


@pytest.mark.parametrize("compress", [True, False])
def test_mnist_idx_files_feed_a_digit_pair(tmp_path, compress):
    make_mnist_files(tmp_path, compress=compress)
    data = DigitPairs(
        "mnist_files",
        [0, 1],
        n_train=6,
        n_val=2,
        n_test=4,
        input_norm="unit",
        batch_size=None,
        root=str(tmp_path),
    )
    data.setup()
    assert data.in_shape == (784,) and set(data.train.y.tolist()) <= {-1.0, 1.0}
    assert len(data.train) + len(data.val) + len(data.test) == 12  # 6 zeros and 6 ones in 60 images


def test_cifar10_batches_feed_a_class_pair(tmp_path):
    make_cifar_files(tmp_path)
    data = DigitPairs(
        "cifar10_files",
        [0, 1],
        n_train=12,
        n_val=4,
        n_test=8,
        input_norm="unit",
        batch_size=None,
        root=str(tmp_path),
    )
    data.setup()
    assert data.in_shape == (3072,)


def test_missing_or_truncated_files_are_named(tmp_path):
    make_mnist_files(tmp_path, compress=False)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(
        FileNotFoundError, match=r"t10k-labels-idx1-ubyte \(or \.gz\) is missing; data.root must hold"
    ):
        DigitPairs("mnist_files", [0, 1], 2, 1, 1, "unit", None, root=str(tmp_path)).setup()
    images = tmp_path / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:-100])
    with pytest.raises(ValueError, match="is truncated"):
        read_idx(images)
