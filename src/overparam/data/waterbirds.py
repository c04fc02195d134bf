"""Waterbirds (Sagawa et al. 2020a): bird type y on a land or water background (the spurious `place`)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch
from torchvision.transforms import v2

from overparam.data.base import GroupDataModule
from overparam.data.image_cache import CachedPipeline, DeviceTransform
from overparam.data.images import check_image_files, check_pipeline, image_splits, normalized, require_files

LAYOUT = "metadata.csv (columns img_filename, y, split, place) and the image folders it names"


class Waterbirds(GroupDataModule):
    """Splits from `metadata.csv` (split 0/1/2 = train/val/test); groups = 2·y + place.

    Transforms follow the Group DRO code (seed 001 §5.1): RandomResizedCrop(scale 0.7–1) + flip for
    training; resize to 256/224 of the image size and a centre crop for evaluation. `pipeline=cached`
    stores every image after that resize (256² for size 224) and crops it on the device, so training crops
    are drawn from the resized image rather than the original (the one departure of the cached path).
    """

    group_names = ("landbird_land", "landbird_water", "waterbird_land", "waterbird_water")

    def __init__(
        self,
        root: str,
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
        require_files("Waterbirds", self.root, ["metadata.csv"], LAYOUT)
        self.image_size = image_size
        self.drop_last = True

    def build_splits(self):
        metadata = self.root / "metadata.csv"
        table = pd.read_csv(metadata)
        missing = {"img_filename", "y", "split", "place"} - set(table.columns)
        if missing:
            raise ValueError(
                f"{metadata} lacks the column(s) {', '.join(sorted(missing))}; expected {LAYOUT}."
            )
        paths = [self.root / name for name in table["img_filename"]]
        check_image_files(paths, metadata)
        y, place = torch.tensor(table["y"].values), torch.tensor(table["place"].values)
        split = torch.tensor(table["split"].values)
        size = self.image_size
        train_tf = normalized(
            v2.RandomResizedCrop(size, scale=(0.7, 1.0), ratio=(0.75, 4 / 3)), v2.RandomHorizontalFlip()
        )
        resized = round(size * 256 / 224)
        eval_tf = normalized(v2.Resize((resized, resized)), v2.CenterCrop(size))
        cached = None
        if self.pipeline == "cached":
            cached = CachedPipeline(
                stored_size=(resized, resized),
                train=DeviceTransform(size, train=True, scale=(0.7, 1.0), ratio=(0.75, 4 / 3)),
                eval=DeviceTransform(size, train=False, eval_crop=size),
                cache_dir=self.cache_dir,
                workers=self.num_workers,
            )
        return image_splits(
            paths,
            y,
            place,
            split,
            (train_tf, eval_tf, eval_tf),
            self.labels,
            metadata,
            self.group_names,
            cached,
        )
