"""Image files on disk as group-labelled splits, decoded with PIL and transformed with torchvision."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset
from torchvision.transforms import v2

from overparam.data.base import Batch, check_every_split_has_every_group, encode_labels
from overparam.data.image_cache import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    PIPELINES,
    CachedImageSplit,
    CachedPipeline,
    read_rgb,
)


class ImageSplit(Dataset):
    """A split of image files; indexed by a list of positions it decodes and stacks them into a `Batch`."""

    def __init__(self, paths: list[Path], y: Tensor, group: Tensor, transform: v2.Transform) -> None:
        self.paths, self.y, self.group, self.transform = paths, y, group.long(), transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: list[int] | Tensor) -> Batch:
        index = torch.as_tensor(index, dtype=torch.long)
        x = torch.stack([self.transform(self.load(i)) for i in index.tolist()])
        return Batch(x, self.y[index], self.group[index], index)

    def load(self, i: int) -> Image.Image:
        return read_rgb(self.paths[i])


def normalized(*steps: v2.Transform) -> v2.Compose:
    """PIL image -> float tensor normalised with the ImageNet statistics, after the given steps."""
    return v2.Compose(
        [
            v2.ToImage(),
            *steps,
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )


def image_splits(
    paths: list[Path],
    y: Tensor,
    spurious: Tensor,
    split: Tensor,
    transforms: tuple[v2.Transform, ...],
    labels: str,
    table: Path,
    group_names: tuple[str, ...],
    cached: CachedPipeline | None = None,
    n_attributes: int = 2,
) -> tuple[ImageSplit | CachedImageSplit, ...]:
    """Train/val/test `ImageSplit`s (split ids 0/1/2) with groups y·A + the spurious attribute (A =
    `n_attributes` values; len(group_names) / A classes), then the training split again with the
    evaluation transform (for train accuracy measured as the paper does). With `cached`,
    `CachedImageSplit`s of decoded images instead (the training split's images shared).

    `table` (the metadata file) is named when a row holds a label or attribute out of range or a split
    lacks a group.
    """
    n_classes = len(group_names) // n_attributes
    for name, values, allowed in (
        ("label", y, tuple(range(n_classes))),
        ("attribute", spurious, tuple(range(n_attributes))),
        ("split", split, (0, 1, 2)),
    ):
        bad = torch.nonzero(~torch.isin(values, torch.tensor(allowed))).flatten()
        if len(bad):
            raise ValueError(
                f"{table} row {int(bad[0]) + 1} has {name} {int(values[bad[0]])}; expected one of {allowed}."
            )
    group = y * n_attributes + spurious
    check_every_split_has_every_group(group, split, group_names, table)
    if cached is not None:
        splits = []
        for k in range(3):
            rows = torch.nonzero(split == k).flatten()
            targets, groups = encode_labels(y[rows], labels), group[rows]
            splits.append(cached.split([paths[i] for i in rows], targets, groups, train=k == 0))
        train = splits[0]
        return (*splits, CachedImageSplit(train.store, train.y, train.group, cached.eval))
    splits = []
    for k, transform in [*enumerate(transforms), (0, transforms[-1])]:
        rows = torch.nonzero(split == k).flatten()
        splits.append(
            ImageSplit(
                [paths[i] for i in rows],
                encode_labels(y[rows], labels),
                group[rows],
                transform,
            )
        )
    return tuple(splits)


def require_files(dataset: str, root: Path, needed: list[str], layout: str) -> None:
    """Stop at once, in one sentence, when a file of a dataset's standard layout is missing."""
    for name in needed:
        options = name.split("|")
        if not any((root / option).exists() for option in options):
            missing = " or ".join(str(root / option) for option in options)
            raise FileNotFoundError(
                f"{dataset} not found: {missing} is missing; data.root must hold {layout}."
            )


# A file that starts with one of these signatures and ends (give or take padding) with its end marker.
IMAGE_FORMATS = {
    "JPEG": (b"\xff\xd8\xff", b"\xff\xd9"),
    "PNG": (b"\x89PNG\r\n\x1a\n", b"IEND\xaeB`\x82"),
}
TAIL_BYTES = 64  # JPEG writers may pad after the end marker


def image_file_problem(path: Path) -> str | None:
    """Why `path` is not a complete JPEG or PNG file, judged from its first and last bytes, or None."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return "it does not exist"
    except OSError as error:
        return f"it cannot be read ({error.strerror})"
    try:  # positioned reads: four system calls a file
        size = os.fstat(fd).st_size
        head, tail = os.pread(fd, 8, 0), os.pread(fd, TAIL_BYTES, max(0, size - TAIL_BYTES))
    finally:
        os.close(fd)
    if not head:
        return "it is empty"
    for kind, (start, end) in IMAGE_FORMATS.items():
        if head.startswith(start):
            return None if end in tail else f"it is a truncated {kind} (no end marker)"
    return "it is neither a JPEG nor a PNG"


def check_image_files(paths: list[Path], table: Path) -> None:
    """Before training: every image a metadata table names is present, non-empty and complete (a few
    seconds for 200k files: two small reads each; threads only add contention here). Names the first bad
    file in one sentence, and how many others are bad."""
    problems = [image_file_problem(path) for path in paths]
    bad = [(row, path, problem) for row, (path, problem) in enumerate(zip(paths, problems), 1) if problem]
    if bad:
        row, path, problem = bad[0]
        n = len(bad) - 1
        others = f"; {n} other {'file is' if n == 1 else 'files are'} bad too" if n else ""
        raise FileNotFoundError(f"{table} row {row} names {path}, but {problem}{others}.")


def check_pipeline(pipeline: str) -> None:
    if pipeline not in PIPELINES:
        raise ValueError(
            f"data.pipeline must be files (decode JPEGs in DataLoader workers) or cached (decode once, "
            f"augment on the device), got {pipeline!r}"
        )
