"""Waterbirds (Sagawa et al. 2020a): bird type y on a land or water background (the spurious `place`)."""

from __future__ import annotations

from overparam.data.metadata import MetadataImages


class Waterbirds(MetadataImages):
    """Splits from `metadata.csv` (columns img_filename, y, split, place; split 0/1/2 = train/val/test);
    groups = 2·y + place.

    Transforms follow the Group DRO code (seed 001 §5.1): RandomResizedCrop(scale 0.7–1) + flip for
    training; resize to 256/224 of the image size and a centre crop for evaluation. `pipeline=cached`
    stores every image after that resize (256² for size 224) and crops it on the device, so training crops
    are drawn from the resized image rather than the original (the one departure of the cached path).
    """

    known_values = {"label": [0, 1], "attribute": [0, 1]}

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
        columns = {"file": "img_filename", "label": "y", "attribute": "place", "split": "split"}
        super().__init__(
            root,
            batch_size,
            columns=columns,
            image_size=image_size,
            eval_batch_size=eval_batch_size,
            num_workers=num_workers,
            labels=labels,
            seed=seed,
            pipeline=pipeline,
            cache_dir=cache_dir,
        )

    def named_groups(self, label_values: list, attribute_values: list) -> tuple[str, ...]:
        return ("landbird_land", "landbird_water", "waterbird_land", "waterbird_water")
