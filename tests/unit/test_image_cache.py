"""The cached image path (`data.pipeline=cached`): decoded once, augmented on the device, and giving what
the plain torchvision path gives."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from torchvision.transforms import v2

from conftest import QUIET, compose_config
from overparam.data.celeba import CelebA
from overparam.data.image_cache import IMAGENET_STD, crop_resize, decoded_images, random_boxes
from overparam.data.layouts import make_celeba, make_waterbirds, write_jpeg
from overparam.data.waterbirds import Waterbirds
from overparam.entry import execute
from overparam.models.resnet import ResNet


def face(seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (3, 218, 178), dtype=torch.uint8, generator=generator)


@pytest.mark.parametrize("flip", [False, True])
def test_device_crop_is_torchvisions_resized_crop(flip):
    image = face()
    boxes = torch.tensor([[0, 0, 218, 178], [31, 12, 150, 140], [5, 40, 170, 127]], dtype=torch.float32)
    out = crop_resize(image.expand(3, -1, -1, -1), boxes, 224, torch.full((3,), flip))
    for box, resized in zip(boxes.int().tolist(), out):
        expected = v2.functional.resized_crop(image.float(), *box, [224, 224], antialias=False)
        if flip:
            expected = v2.functional.horizontal_flip(expected)
        assert (resized - expected).abs().max() < 0.02  # of 255 levels: float32 sampling coordinates


def test_random_boxes_are_drawn_as_torchvision_draws_them():
    torch.manual_seed(0)
    ours = random_boxes(20000, 218, 178, scale=(0.7, 1.0), ratio=(1.0, 4 / 3))
    params = v2.RandomResizedCrop(224, scale=(0.7, 1.0), ratio=(1.0, 4 / 3)).make_params
    theirs = torch.tensor(
        [[p["top"], p["left"], p["height"], p["width"]] for p in (params([face()]) for _ in range(4000))],
        dtype=torch.float32,
    )
    top, left, h, w = ours.unbind(1)
    assert (top >= 0).all() and (left >= 0).all() and (top + h <= 218).all() and (left + w <= 178).all()
    for stat in (lambda b: b[:, 2] * b[:, 3] / (218 * 178), lambda b: b[:, 2] / b[:, 3], lambda b: b[:, 0]):
        a, b = stat(ours), stat(theirs)
        assert abs(a.mean() - b.mean()) < 4 * b.std() / len(b) ** 0.5
        assert abs(a.std() - b.std()) < 0.05 * b.std()
    # No try fits a 10 × 1000 strip: both fall back to the centred box of the clamped ratio.
    fallback = random_boxes(5, 10, 1000, scale=(0.7, 1.0), ratio=(0.75, 4 / 3))
    expected = v2.RandomResizedCrop(8, scale=(0.7, 1.0), ratio=(0.75, 4 / 3)).make_params(
        [torch.zeros(3, 10, 1000)]
    )
    box = [expected["top"], expected["left"], expected["height"], expected["width"]]
    assert fallback.tolist() == [box] * 5


def eval_batches(data, split: str, rows: list[int]):
    data.setup()
    batch = getattr(data, split)[rows]
    transform = getattr(getattr(data, split), "device_transform", None)
    return batch._replace(x=transform(batch.x)) if transform else batch


@pytest.mark.parametrize("dataset", ["celeba", "waterbirds"])
def test_cached_evaluation_inputs_equal_the_decoded_files_path(tmp_path, dataset):
    if dataset == "celeba":
        root = make_celeba(tmp_path / "data")
        build = lambda pipeline: CelebA(  # noqa: E731
            str(root), "Blond_Hair", "Male", 224, 4, pipeline=pipeline, cache_dir=str(tmp_path / "cache")
        )
    else:
        root = make_waterbirds(tmp_path / "data")
        build = lambda pipeline: Waterbirds(  # noqa: E731
            str(root), 224, 4, pipeline=pipeline, cache_dir=str(tmp_path / "cache")
        )
    for split in ("val", "test", "train_eval"):
        plain, cached = (eval_batches(build(p), split, [0, 1, 3]) for p in ("files", "cached"))
        assert cached.x.shape == plain.x.shape == (3, 3, 224, 224)
        assert torch.equal(cached.y, plain.y) and torch.equal(cached.group, plain.group)
        # In 255ths: torchvision resizes uint8 images with fixed-point weights and rounds the result (which
        # alone is ¼ of a level on average), moving a pixel by at most about one level.
        levels = (cached.x - plain.x).abs() * 255 * torch.tensor(IMAGENET_STD).view(3, 1, 1)
        assert levels.max() < 1.5 and levels.mean() < 0.35
    data = build("cached")
    data.setup()
    assert data.in_shape == (3, 224, 224)


def test_training_batches_are_augmented_on_the_device_reproducibly(tmp_path):
    root = make_celeba(tmp_path / "data")
    data = CelebA(str(root), "Blond_Hair", "Male", 64, 8, pipeline="cached", cache_dir=str(tmp_path / "c"))
    data.setup()
    raw = data.train[list(range(8))]
    assert raw.x.dtype == torch.uint8 and raw.x.shape == (8, 3, 218, 178)
    draws = []
    for _ in range(2):
        torch.manual_seed(3)
        draws.append(data.train.device_transform(raw.x))
    x = draws[0]
    assert x.shape == (8, 3, 64, 64) and x.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(draws[0], draws[1])
    assert not torch.allclose(x, data.val.device_transform(raw.x))  # random crops, not the centre one


def test_decoded_images_are_cached_once_and_rebuilt_when_a_file_changes(tmp_path):
    rng = np.random.default_rng(0)
    paths = [tmp_path / f"{i}.jpg" for i in range(3)]
    for path in paths:
        write_jpeg(path, rng, (20, 30))
    first = decoded_images(paths, None, str(tmp_path / "cache"), workers=0)
    assert first.shape == (3, 3, 30, 20) and first.dtype == torch.uint8
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 1
    assert torch.equal(decoded_images(paths, None, str(tmp_path / "cache"), workers=0), first)
    write_jpeg(paths[1], rng, (20, 30))
    os.utime(paths[1], ns=(1, 1))
    second = decoded_images(paths, None, str(tmp_path / "cache"), workers=0)
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 2 and not torch.equal(second[1], first[1])
    write_jpeg(paths[2], rng, (24, 30))
    message = r"2\.jpg is \(30, 24\) where .*0\.jpg is \(30, 20\); use data.pipeline=files"
    with pytest.raises(ValueError, match=message):
        decoded_images(paths, None, str(tmp_path / "cache"), workers=0)
    assert not list((tmp_path / "cache").glob("*.tmp.npy"))  # nothing half-written left behind


def test_an_unknown_pipeline_is_named(tmp_path):
    with pytest.raises(ValueError, match="data.pipeline must be files .* or cached .*, got 'gpu'"):
        CelebA(str(make_celeba(tmp_path)), "Blond_Hair", "Male", 32, 4, pipeline="gpu")


def test_channels_last_resnet_computes_the_same_function():
    torch.manual_seed(0)
    plain = ResNet((3, 32, 32), 2, "resnet18", False, None).eval()
    nhwc = ResNet((3, 32, 32), 2, "resnet18", False, None, channels_last=True).eval()
    nhwc.load_state_dict(plain.state_dict())
    x = torch.randn(4, 3, 32, 32)
    weight = nhwc.net.conv1.weight
    assert weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()
    assert torch.allclose(nhwc(x), plain(x), atol=1e-4)


def test_gdro_celeba_trains_through_the_cached_pipeline(tmp_path):
    root = make_celeba(tmp_path / "data")
    overrides = [
        "+experiment=gdro_celeba",
        f"data.root={root}",
        f"data.cache_dir={tmp_path / 'cache'}",
        *QUIET,
        "trainer.max_steps=2",
        "data.image_size=32",
        "data.batch_size=8",
        "data.eval_batch_size=8",
        "data.num_workers=0",
    ]
    cfg = compose_config(overrides, tmp_path / "run")
    assert cfg.data.pipeline == "cached" and cfg.model.channels_last
    execute(cfg)
    result = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert result["status"] == "completed" and result["steps"] == 2
    assert 0.0 <= result["metrics"]["test/worst_group_acc"] <= 1.0


def test_in_memory_splits_go_to_the_accelerator_once_and_share_one_copy(tmp_path):
    """What a GPU run does, on the `meta` device: the cached splits (and a full-batch training set) are
    copied to the trainer's device once, and the training split and its eval view share that copy."""
    from types import SimpleNamespace

    from overparam.data.digit_pairs import DigitPairs

    served = SimpleNamespace(eval_splits=["val", "train"], sample_weights=lambda groups: None)
    on_meta = SimpleNamespace(
        strategy=SimpleNamespace(root_device=torch.device("meta")), world_size=1, lightning_module=served
    )
    root = make_celeba(tmp_path / "data")
    data = CelebA(str(root), "Blond_Hair", "Male", 32, 8, pipeline="cached", cache_dir=str(tmp_path / "c"))
    data.setup()
    data.trainer = on_meta
    first, again = data.train_dataloader(), data.train_dataloader()
    assert first.dataset is again.dataset and first.dataset.images.is_meta
    train_eval = data.val_dataloader()[1].dataset
    assert train_eval.images is first.dataset.images and train_eval.device_transform.train is False
    full_batch = DigitPairs("digits", [0, 1], 20, 10, 10, input_norm="unit", batch_size=None)
    full_batch.setup()
    full_batch.trainer = on_meta
    loaders = full_batch.train_dataloader(), full_batch.train_dataloader()
    assert loaders[0].dataset is loaders[1].dataset and loaders[0].dataset.x.is_meta
