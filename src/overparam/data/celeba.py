"""CelebA (Liu et al. 2015) as a spurious-correlation set: target Blond_Hair, spurious attribute Male."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch
from torchvision.transforms import v2

from overparam.data.base import GroupDataModule
from overparam.data.image_cache import CachedPipeline, DeviceTransform
from overparam.data.images import check_image_files, check_pipeline, image_splits, normalized, require_files

LAYOUT = "img_align_celeba/, list_attr_celeba.txt (or .csv) and list_eval_partition.txt (or .csv)"


class CelebA(GroupDataModule):
    """The official train/val/test partition; groups = 2·target + spurious (4 groups).

    Reads the standard layout, either the original text files or the Kaggle CSV files. Transforms follow
    the Group DRO code (seed 001 §5.1): RandomResizedCrop(scale 0.7–1, ratio 1–4/3) + flip for training,
    a centre square crop then resize for evaluation. `pipeline=cached` stores the 178×218 faces decoded
    (23.6 GB of uint8 for all 202,599) and applies the same transforms on the device.
    """

    def __init__(
        self,
        root: str,
        target: str,
        spurious: str,
        image_size: int,
        batch_size: int | None,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        labels: str = "index",
        seed: int = 0,
        pipeline: str = "files",
        cache_dir: str | None = None,
    ) -> None:
        super().__init__(batch_size, eval_batch_size, num_workers, labels, seed)
        check_pipeline(pipeline)
        self.root, self.pipeline, self.cache_dir = Path(root).expanduser(), pipeline, cache_dir
        require_files(
            "CelebA",
            self.root,
            [
                "img_align_celeba",
                "list_attr_celeba.txt|list_attr_celeba.csv",
                "list_eval_partition.txt|list_eval_partition.csv",
            ],
            LAYOUT,
        )
        self.target, self.spurious, self.image_size = target, spurious, image_size
        self.drop_last = True  # as the published Group DRO / GRW code trains
        self.group_names = tuple(f"{target}{y}_{spurious}{a}" for y in (0, 1) for a in (0, 1))

    def read_table(self, stem: str) -> pd.DataFrame:
        csv = self.root / f"{stem}.csv"
        if csv.exists():
            return pd.read_csv(csv).set_index("image_id")
        text = self.root / f"{stem}.txt"
        if stem == "list_attr_celeba":  # line 1: count, line 2: attribute names, then rows
            return pd.read_csv(text, sep=r"\s+", skiprows=1)
        return pd.read_csv(text, sep=r"\s+", header=None, names=["image_id", "partition"]).set_index(
            "image_id"
        )

    def build_splits(self):
        attrs, partition = self.read_table("list_attr_celeba"), self.read_table("list_eval_partition")
        for attr in (self.target, self.spurious):
            if attr not in attrs.columns:
                raise ValueError(
                    f"CelebA has no attribute {attr!r} in list_attr_celeba; choose one of its 40 columns."
                )
        table = attrs.join(partition, how="inner")
        paths = [self.root / "img_align_celeba" / name for name in table.index]
        check_image_files(paths, self.root / "list_attr_celeba")
        y = torch.tensor((table[self.target].values > 0).astype("int64"))
        a = torch.tensor((table[self.spurious].values > 0).astype("int64"))
        part = torch.tensor(table["partition"].values)
        size = self.image_size
        train_tf = normalized(
            v2.RandomResizedCrop(size, scale=(0.7, 1.0), ratio=(1.0, 4 / 3)), v2.RandomHorizontalFlip()
        )
        eval_tf = normalized(SquareCenterCrop(), v2.Resize((size, size)))
        cached = None
        if self.pipeline == "cached":
            cached = CachedPipeline(
                stored_size=None,
                train=DeviceTransform(size, train=True, scale=(0.7, 1.0), ratio=(1.0, 4 / 3)),
                eval=DeviceTransform(size, train=False, eval_crop=None),
                cache_dir=self.cache_dir,
                workers=self.num_workers,
            )
        return image_splits(
            paths,
            y,
            a,
            part,
            (train_tf, eval_tf, eval_tf),
            self.labels,
            self.root / "list_attr_celeba",
            self.group_names,
            cached,
        )


class SquareCenterCrop(v2.Transform):
    """Centre crop to a square of the shorter side (CenterCrop(178) on 178×218 CelebA faces)."""

    def forward(self, image):
        height, width = v2.functional.get_size(image)
        return v2.functional.center_crop(image, [min(height, width)] * 2)
