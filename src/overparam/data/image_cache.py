"""The fast image path (`data.pipeline=cached`): every image decoded once into a uint8 array kept on disk,
loaded whole into the accelerator's memory, and augmented there, per sample, by one resampling call per batch.

The published Group DRO code decodes every JPEG again at every epoch in DataLoader workers; on a GPU that
loader, not the network, sets the pace. Here a batch is an index into the cached uint8 images on the device;
`DeviceTransform` then crops, resizes, flips and normalizes it in one `grid_sample`. With the same crop box
it gives what torchvision's `resized_crop` (bilinear) gives on the decoded image, except that it does not
antialias when it shrinks (the Group DRO crops of 178×218 CelebA faces to 224² only ever enlarge).
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from filelock import FileLock
from PIL import Image
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from overparam.data.base import Batch
from overparam.errors import InputError

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
PIPELINES = ("files", "cached")


def default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "overparam" / "images"


class UnreadableImage(InputError):
    """An image file that cannot be decoded, named in one sentence (also when raised in a DataLoader
    worker, whose re-raise wraps the message in the worker's traceback)."""

    def __init__(self, message: str) -> None:
        marker = f"{type(self).__name__}: "
        super().__init__(message.rsplit(marker, 1)[-1].strip() if marker in message else message)


def read_rgb(path: Path) -> Image.Image:
    """An image file as RGB, or one sentence naming the file that cannot be decoded."""
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (OSError, SyntaxError, ValueError) as error:  # PIL: truncated, unidentified, corrupt
        reason = str(error).split("\n")[0].replace(str(path), "the file")
        raise UnreadableImage(
            f"{path} cannot be decoded ({reason}); replace or remove it, then rerun the same command "
            "(a run resumes from its last checkpoint)"
        ) from None


class Decode(Dataset):
    """Image files as uint8 tensors (3, H, W), resized to `size` (antialiased, as `v2.Resize`) if given."""

    def __init__(self, paths: list[Path], size: tuple[int, int] | None) -> None:
        self.paths, self.size = paths, size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> Tensor:
        decoded = v2.functional.pil_to_tensor(read_rgb(self.paths[i]))
        if self.size is None:
            return decoded
        return v2.functional.resize(decoded, list(self.size), antialias=True)


def cache_key(paths: list[Path], size: tuple[int, int] | None) -> str:
    """Changes when a file is added, removed, replaced or touched, or when the stored size changes."""
    digest = hashlib.sha256(repr(size).encode())
    for path in paths:
        stat = path.stat()
        digest.update(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:20]


def decoded_images(
    paths: list[Path], size: tuple[int, int] | None, cache_dir: str | None, workers: int
) -> Tensor:
    """All `paths` as one uint8 tensor (N, 3, H, W), decoded once into `<cache_dir>/<key>.npy` and read
    from there afterwards. Without `size` every image must have the first one's size."""
    folder = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    file = folder / f"{cache_key(paths, size)}.npy"
    with FileLock(str(file.with_suffix(".lock"))):  # concurrent jobs of a sweep decode it once
        if not file.exists():
            write_cache(paths, size, file, workers)
    # Mapped, not read: pages come from the OS's file cache as batches (or the copy to a GPU) touch them,
    # so the decoded set costs no process memory of its own (copy-on-write keeps the tensor writable).
    return torch.from_numpy(np.load(file, mmap_mode="c"))


def write_cache(paths: list[Path], size: tuple[int, int] | None, file: Path, workers: int) -> None:
    decode = Decode(paths, size)
    first = decode[0]
    tmp = file.with_name(f"{file.stem}.{os.getpid()}.tmp.npy")
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(paths), *first.shape))
    loader = DataLoader(decode, batch_size=None, num_workers=workers)
    for i, image in enumerate(loader):
        if image.shape != first.shape:
            del out
            tmp.unlink()
            raise ValueError(
                f"data.pipeline=cached stores images of one size, but {paths[i]} is {tuple(image.shape[1:])} "
                f"where {paths[0]} is {tuple(first.shape[1:])}; use data.pipeline=files for this dataset."
            )
        out[i] = image.numpy()
    out.flush()
    del out
    os.replace(tmp, file)


@dataclass(frozen=True)
class DeviceTransform:
    """uint8 images (n, 3, H, W) on any device -> float (n, 3, size, size) normalized with ImageNet's
    statistics. Training: RandomResizedCrop(size, scale, ratio) with a box drawn per sample as torchvision
    draws it (from the global RNG), and a horizontal flip with probability ½. Evaluation: a centre crop of
    `eval_crop` pixels (None: the square of the shorter side), resized to `size`."""

    size: int
    train: bool
    scale: tuple[float, float] = (0.7, 1.0)
    ratio: tuple[float, float] = (0.75, 4 / 3)
    eval_crop: int | None = None

    def __call__(self, images: Tensor) -> Tensor:
        n, _, height, width = images.shape
        if self.train:
            boxes, flips = random_boxes(n, height, width, self.scale, self.ratio), torch.rand(n) < 0.5
        else:
            boxes, flips = centre_box(n, height, width, self.eval_crop), torch.zeros(n, dtype=torch.bool)
        resized = crop_resize(images, boxes.to(images.device), self.size, flips.to(images.device))
        mean = torch.tensor(IMAGENET_MEAN, device=images.device).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=images.device).view(1, 3, 1, 1)
        return ((resized / 255 - mean) / std).contiguous(memory_format=torch.channels_last)


def crop_resize(images: Tensor, boxes: Tensor, size: int, flips: Tensor) -> Tensor:
    """Each image's box (top, left, height, width in pixels) resized to size × size by bilinear sampling
    (torch's resize convention: pixel centres, the box's edges clamped), mirrored where `flips`; float in
    [0, 255]."""
    n, channels, height, width = images.shape
    top, left, box_h, box_w = boxes.double().unbind(1)
    theta = torch.zeros(n, 2, 3, dtype=torch.float64, device=images.device)
    # Output x ∈ [-1, 1] (pixel edges) maps to the box's edges in the input's normalized coordinates.
    theta[:, 0, 0] = torch.where(flips, -box_w, box_w) / width
    theta[:, 0, 2] = (2 * left + box_w) / width - 1
    theta[:, 1, 1] = box_h / height
    theta[:, 1, 2] = (2 * top + box_h) / height - 1
    dtype = torch.float32 if images.dtype == torch.uint8 else images.dtype
    grid = F.affine_grid(theta.to(dtype), [n, channels, size, size], align_corners=False)
    # Clamp at the box's outer pixel centres, as resizing the cropped image clamps at its edges.
    for axis, start, extent, full in ((0, left, box_w, width), (1, top, box_h, height)):
        low = ((2 * start + 1) / full - 1).to(dtype)[:, None, None]
        high = ((2 * (start + extent) - 1) / full - 1).to(dtype)[:, None, None]
        grid[..., axis] = torch.clamp(grid[..., axis], low, high)
    return F.grid_sample(images.to(dtype), grid, mode="bilinear", padding_mode="border", align_corners=False)


def random_boxes(
    n: int, height: int, width: int, scale: tuple[float, float], ratio: tuple[float, float]
) -> Tensor:
    """`n` boxes drawn as `v2.RandomResizedCrop.get_params` draws one: up to 10 tries of an area fraction
    in `scale` and a log-uniform aspect ratio in `ratio`, else the centred box of the clamped ratio."""
    tries = 10
    area = height * width * torch.empty(n, tries).uniform_(*scale)
    aspect = torch.exp(torch.empty(n, tries).uniform_(math.log(ratio[0]), math.log(ratio[1])))
    box_w = torch.round(torch.sqrt(area * aspect))
    box_h = torch.round(torch.sqrt(area / aspect))
    fits = (box_w > 0) & (box_w <= width) & (box_h > 0) & (box_h <= height)
    first = fits.double().argmax(1)  # the first try that fits (0 when none does: replaced below)
    box_w, box_h = box_w.gather(1, first[:, None])[:, 0], box_h.gather(1, first[:, None])[:, 0]
    top = torch.floor(torch.rand(n) * (height - box_h + 1))
    left = torch.floor(torch.rand(n) * (width - box_w + 1))
    boxes = torch.stack([top, left, box_h, box_w], 1)
    none_fit = ~fits.any(1)
    if none_fit.any():
        boxes[none_fit] = fallback_box(height, width, ratio)
    return boxes


def fallback_box(height: int, width: int, ratio: tuple[float, float]) -> Tensor:
    in_ratio = width / height
    if in_ratio < min(ratio):
        box_w, box_h = width, round(width / min(ratio))
    elif in_ratio > max(ratio):
        box_h, box_w = height, round(height * max(ratio))
    else:
        box_w, box_h = width, height
    return torch.tensor([(height - box_h) // 2, (width - box_w) // 2, box_h, box_w], dtype=torch.float32)


def centre_box(n: int, height: int, width: int, crop: int | None) -> Tensor:
    """torchvision's `center_crop` box, for every image."""
    side = min(height, width) if crop is None else crop
    top, left = round((height - side) / 2), round((width - side) / 2)
    return torch.tensor([[top, left, side, side]], dtype=torch.float32).expand(n, 4)


class ImageStore:
    """The decoded images of a split, with at most one copy per device (a split and the same split seen
    with evaluation transforms share it)."""

    def __init__(self, images: Tensor) -> None:
        self.copies = {images.device: images}

    def on(self, device: torch.device | str) -> Tensor:
        device = torch.device(device)
        if device not in self.copies:
            self.copies[device] = next(iter(self.copies.values())).to(device)
        return self.copies[device]


class CachedImageSplit(Dataset):
    """A split of decoded uint8 images; indexed by a list of positions it returns a uint8 `Batch`, which
    the datamodule's `on_after_batch_transfer` turns into network inputs with `device_transform`."""

    def __init__(
        self,
        store: ImageStore,
        y: Tensor,
        group: Tensor,
        device_transform: DeviceTransform,
        device: torch.device | str = "cpu",
    ) -> None:
        self.store, self.y, self.group = store, y.to(device), group.long().to(device)
        self.images, self.device_transform = store.on(device), device_transform

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, index: list[int] | Tensor) -> Batch:
        index = torch.as_tensor(index, dtype=torch.long, device=self.images.device)
        return Batch(self.images[index], self.y[index], self.group[index], index)

    @property
    def out_shape(self) -> tuple[int, int, int]:
        return (self.images.shape[1], self.device_transform.size, self.device_transform.size)

    def to(self, device: torch.device) -> CachedImageSplit:
        return CachedImageSplit(self.store, self.y, self.group, self.device_transform, device)


@dataclass(frozen=True)
class CachedPipeline:
    """How a dataset is cached: images stored at `stored_size` (None: as they are, all of one size) and the
    device transforms of training and evaluation."""

    stored_size: tuple[int, int] | None
    train: DeviceTransform
    eval: DeviceTransform
    cache_dir: str | None
    workers: int

    def split(self, paths: list[Path], y: Tensor, group: Tensor, train: bool) -> CachedImageSplit:
        store = ImageStore(decoded_images(paths, self.stored_size, self.cache_dir, self.workers))
        return CachedImageSplit(store, y, group, self.train if train else self.eval)
