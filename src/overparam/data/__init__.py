"""Datamodules; every batch is a `Batch(x, y, group, index)`."""

from overparam.data.base import Batch, GroupDataModule

__all__ = ["Batch", "GroupDataModule"]
