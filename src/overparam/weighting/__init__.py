"""Reweighting algorithms: `q = reweighter(losses, groups, index)`, one small class per algorithm."""

from overparam.weighting.base import Reweighter

__all__ = ["Reweighter"]
