"""Batched groups: the jobs of a sweep that differ only in batchable keys, trained as one stacked model."""
