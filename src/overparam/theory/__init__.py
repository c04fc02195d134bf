"""Closed forms as plain torch functions (no Lightning): interpolators, kernels, bounds."""
