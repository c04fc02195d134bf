"""Your own image data: a folder with a metadata CSV, one row per image naming its file, label, spurious
attribute and split (Waterbirds' layout generalized, as BalancingGroups and SubpopBench read MetaShift,
NICO++ and the rest)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch
from torchvision.transforms import v2

from overparam.data.base import GroupDataModule
from overparam.data.files import read_table
from overparam.data.image_cache import CachedPipeline, DeviceTransform
from overparam.data.images import check_image_files, check_pipeline, image_splits, normalized, require_files

SPLITS = ("train", "val", "test")


def shown(value) -> str:
    """A table value as a sentence shows it: numbers plainly, text quoted."""
    return repr(value) if isinstance(value, str) else str(value.item() if hasattr(value, "item") else value)


class MetadataImages(GroupDataModule):
    """Images listed in `root/<metadata>`: the columns named by `columns` (file, label, attribute, split)
    give each image's path under `root`, its class, its spurious attribute and its split (`split_values`
    says which value means train, val and test). Classes are the label values in sorted order, groups
    every (label, attribute) pair, named `<label>_<attribute>` from the values.

    Transforms follow the Group DRO code's Waterbirds: RandomResizedCrop(scale 0.7–1) + flip for
    training; resize to 256/224 of the image size and a centre crop for evaluation. `pipeline=cached`
    stores every image after that resize and crops it on the device.
    """

    def __init__(
        self,
        root: str,
        batch_size: int | None,
        metadata: str = "metadata.csv",
        columns: dict | None = None,
        split_values: dict | None = None,
        image_size: int = 224,
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
        self.metadata = metadata
        self.columns = {
            "file": "filename",
            "label": "y",
            "attribute": "a",
            "split": "split",
            **(columns or {}),
        }
        self.split_values = {"train": 0, "val": 1, "test": 2, **(split_values or {})}
        require_files(type(self).__name__, self.root, [metadata], self.layout())
        self.image_size = image_size
        self.drop_last = True

    def layout(self) -> str:
        columns = ", ".join(self.columns[k] for k in ("file", "label", "attribute", "split"))
        return f"{self.metadata} (columns {columns}) and the images it names"

    def read_metadata(self) -> tuple[pd.DataFrame, Path]:
        path = self.root / self.metadata
        return read_table(path, set(self.columns.values()), self.layout()), path

    def split_ids(self, table: pd.DataFrame, path: Path) -> torch.Tensor:
        """0/1/2 for train/val/test from the split column; a row with another value is named."""
        ids = {str(value): k for k, value in enumerate(self.split_values[name] for name in SPLITS)}
        values = table[self.columns["split"]].astype(str)
        unknown = ~values.isin(list(ids))
        if unknown.any():
            row = int(unknown.values.argmax())
            raise ValueError(
                f"{path} row {row + 1} has split {values.iloc[row]!r}; expected one of "
                f"{', '.join(f'{v} ({n})' for n, v in self.split_values.items())} (data.split_values)."
            )
        return torch.tensor(values.map(ids).values)

    def build_splits(self):
        table, path = self.read_metadata()
        paths = [self.root / str(name) for name in table[self.columns["file"]]]
        check_image_files(paths, path)
        y, label_values = self.value_ids(table, "label", path)
        a, attribute_values = self.value_ids(table, "attribute", path)
        self.n_classes = len(label_values)
        self.group_names = self.named_groups(label_values, attribute_values)
        train_tf, eval_tf, cached = self.transforms()
        return image_splits(
            paths,
            y,
            a,
            self.split_ids(table, path),
            (train_tf, eval_tf, eval_tf),
            self.labels,
            path,
            self.group_names,
            cached,
            n_attributes=len(attribute_values),
        )

    # The values a column may hold ({"label": [...], ...}); a column not named here takes those it holds.
    known_values: dict[str, list] = {}

    def value_ids(self, table: pd.DataFrame, key: str, path: Path) -> tuple[torch.Tensor, list]:
        """Each row's position of its `key` column's value among the known or sorted values found."""
        column = table[self.columns[key]]
        values = self.known_values.get(key) or sorted(column.unique())
        unknown = ~column.isin(values)
        if unknown.any():
            row = int(unknown.values.argmax())
            raise ValueError(
                f"{path} row {row + 1} has {key} {shown(column.iloc[row])}; expected one of "
                f"({', '.join(map(shown, values))})."
            )
        return torch.tensor(column.map({v: k for k, v in enumerate(values)}).values), values

    def named_groups(self, label_values: list, attribute_values: list) -> tuple[str, ...]:
        return tuple(f"{label}_{attribute}" for label in label_values for attribute in attribute_values)

    def transforms(self) -> tuple[v2.Transform, v2.Transform, CachedPipeline | None]:
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
        return train_tf, eval_tf, cached
