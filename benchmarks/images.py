"""Target 3: training images/s of `gdro_celeba` (cached uint8 images augmented on the device, bf16,
channels_last) on a CelebA-sized synthetic set in the real on-disk layout, against

- the published Group DRO code's way: a plain fp32 loop whose DataLoader workers decode and augment every
  JPEG (target ≥ 2×), and
- the same ResNet-18 step in bf16 + channels_last on data already in GPU memory (target ≥ 0.8×).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import torch
import torchvision
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from common import QUIET, StepTimer, config, quietly, report, sync
from overparam.data.celeba import CelebA
from overparam.data.images import normalized
from overparam.data.layouts import make_celeba

CELEBA_PARTITIONS = (162_770, 19_867, 19_962)  # train, val, test
WORKERS = min(16, os.cpu_count() or 1)  # decoding processes, for every loop alike


class Faces(Dataset):
    """One decoded, augmented image per item, as the published code's dataset returns it."""

    def __init__(self, root: Path, count: int, size: int) -> None:
        self.root, self.count = root, count
        self.transform = normalized(
            v2.RandomResizedCrop(size, scale=(0.7, 1.0), ratio=(1.0, 4 / 3)), v2.RandomHorizontalFlip()
        )

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, i: int):
        with Image.open(self.root / "img_align_celeba" / f"{i + 1:06d}.jpg") as image:
            return self.transform(image.convert("RGB")), i % 2


def train_images_per_second(model, batches, warmup: int, steps: int, device: str, bf16: bool) -> float:
    """SGD steps of cross-entropy on `batches`; images/s over the steps after `warmup`."""
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    seen, start = 0, None
    for i, (x, y) in enumerate(batches):
        if i == warmup:
            sync(device)
            start, seen = time.perf_counter(), 0
        if i == warmup + steps:
            break
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=bf16):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        seen += len(y)
    sync(device)
    return seen / (time.perf_counter() - start)


def plain_loop(root: Path, count: int, size: int, batch: int, warmup: int, steps: int, device: str) -> float:
    loader = DataLoader(
        Faces(root, count, size),
        batch_size=batch,
        shuffle=True,
        num_workers=WORKERS,
        pin_memory=device == "cuda",
        drop_last=True,
        persistent_workers=True,
    )
    model = torchvision.models.resnet18(num_classes=2).to(device)
    return train_images_per_second(model, loader, warmup, steps, device, bf16=False)


def in_memory_loop(size: int, batch: int, warmup: int, steps: int, device: str) -> float:
    x = torch.randn(batch, 3, size, size, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 2, (batch,), device=device)
    model = torchvision.models.resnet18(num_classes=2).to(device, memory_format=torch.channels_last)
    batches = ((x, y) for _ in range(warmup + steps + 1))
    return train_images_per_second(model, batches, warmup, steps, device, bf16=device == "cuda")


def framework(root: Path, cache: Path, size: int, batch: int, warmup: int, steps: int, device: str) -> float:
    from overparam.entry import execute as run

    overrides = [
        "+experiment=gdro_celeba",
        f"data.root={root}",
        f"data.cache_dir={cache}",
        f"data.image_size={size}",
        f"data.batch_size={batch}",
        f"data.num_workers={WORKERS}",
        f"trainer.max_steps={warmup + steps}",
        "+trainer.num_sanity_val_steps=0",
        "+callbacks.timer._target_=common.StepTimer",
        f"+callbacks.timer.warmup={warmup}",
        *QUIET,
    ]
    if device != "cuda":
        overrides += ["trainer.accelerator=cpu"]
    with tempfile.TemporaryDirectory() as run_dir:
        quietly(run, config(overrides, Path(run_dir)))
    return StepTimer.last["steps"] * batch / StepTimer.last["seconds"]


def image_pipeline(device: str, quick: bool) -> list[dict]:
    """Writes the synthetic set (202,599 faces; fewer with `quick`), decodes it once into the cache (timed
    apart), then runs the three loops."""
    if quick and device == "cuda":
        partitions, size, batch, warmup, steps = (8000, 400, 400), 224, 100, 5, 20
    elif quick:  # a smoke run of the code path on a CPU
        partitions, size, batch, warmup, steps = (160, 20, 20), 32, 16, 2, 3
    else:
        partitions, size, batch, warmup, steps = CELEBA_PARTITIONS, 224, 400, 20, 200
    count = sum(partitions)
    with tempfile.TemporaryDirectory() as tmp:
        root, cache = Path(tmp) / "celeba", Path(tmp) / "cache"
        start = time.perf_counter()
        make_celeba(root, count, partition_sizes=partitions[1:], workers=os.cpu_count() or 1, smooth=True)
        written = time.perf_counter() - start
        start = time.perf_counter()
        data = CelebA(
            str(root),
            "Blond_Hair",
            "Male",
            size,
            batch,
            num_workers=WORKERS,
            pipeline="cached",
            cache_dir=str(cache),
        )
        data.setup()
        decoded = time.perf_counter() - start
        del data
        ours = framework(root, cache, size, batch, warmup, steps, device)
        plain = plain_loop(root, partitions[0], size, batch, warmup, steps, device)
        memory = in_memory_loop(size, batch, warmup, steps, device)
    setup = f"{count:,} JPEGs written in {written:.0f} s, decoded into the cache in {decoded:.0f} s"
    detail = f"framework {ours:,.0f} img/s, plain fp32 loop decoding JPEGs {plain:,.0f} img/s; {setup}"
    name = f"3  gdro_celeba images/s, ResNet-18 {size}², batch {batch}"
    return [
        report(f"{name} vs plain loader", ours / plain, "≥ 2", detail, device),
        report(
            f"{name} vs data in memory",
            ours / memory,
            "≥ 0.8",
            f"framework {ours:,.0f} img/s, {'bf16' if device == 'cuda' else 'fp32'} + channels_last on data "
            f"in memory {memory:,.0f} img/s",
            device,
        ),
    ]
