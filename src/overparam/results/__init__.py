"""Sweep results: `collect` a multirun directory into tables, draw each paper figure from them."""

from overparam.results.collect import collect, curves, snapshots, summarize

__all__ = ["collect", "curves", "snapshots", "summarize"]
