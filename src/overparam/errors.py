"""The exception types that end a run with a one-sentence reason."""

from __future__ import annotations


class InputError(ValueError):
    """Bad input (a config value, a data file), reported as one sentence that names it."""


class ConfigError(InputError):
    """A bad config value, reported as one sentence that names the key."""


class Diverged(RuntimeError):
    """Training diverged (a NaN/inf objective) or would (a step size beyond the known stability bound).

    The run ends with status "diverged", the step and the last finite objective in metrics.json.
    """

    def __init__(self, message: str, step: int, last_finite: float | None) -> None:
        super().__init__(message)
        self.step, self.last_finite = step, last_finite

    @classmethod
    def non_finite(cls, step: int, value: float, last_finite: float | None) -> Diverged:
        return cls(
            f"the training objective became {value} at step {step} (last finite value {last_finite}); "
            "lower optim.lr",
            step,
            last_finite,
        )
