"""Just Train Twice (Liu et al. 2021): ERM, then a fresh model with the first model's errors up-weighted."""

from __future__ import annotations

import torch
from torch import Tensor

from overparam.weighting.base import Reweighter


class JTT(Reweighter):
    """Stage 1 (the first `identification_steps` steps) is ERM. Then the training points the model gets
    wrong form the error set E, the network restarts from θ0, and stage 2 weights q_i ∝ `upweight` for
    i ∈ E and 1 otherwise (seed 000 §2.2). The switch is made by `ReweightingCallback`; E and the stage
    are buffers, so a resumed run keeps them.
    """

    static = False

    def __init__(
        self, n_groups: int, group_counts: Tensor, n_train: int, identification_steps: int, upweight: float
    ) -> None:
        super().__init__(n_groups, group_counts, n_train)
        if not isinstance(identification_steps, int) or identification_steps < 1:
            raise ValueError(f"identification_steps must be an integer ≥ 1, got {identification_steps!r}")
        if not isinstance(upweight, (int, float)) or upweight < 1:
            raise ValueError(f"upweight must be a number ≥ 1 (λ_up), got {upweight!r}")
        self.identification_steps, self.upweight = identification_steps, float(upweight)
        self.register_buffer("error_set", torch.zeros(n_train, dtype=torch.bool))
        self.register_buffer("second_stage", torch.tensor(False))

    def forward(self, losses: Tensor, groups: Tensor, index: Tensor) -> Tensor:
        if not self.second_stage:
            return torch.full_like(losses, 1.0 / len(losses))
        weights = torch.where(self.error_set[index], self.upweight, 1.0).to(losses.dtype)
        return weights / weights.sum()

    def max_weight(self) -> float:
        return self.upweight / (self.upweight + self.n_train - 1)

    def start_second_stage(self, wrong: Tensor) -> None:
        """Fix the error set E (a boolean mask over the training set) and switch to stage 2."""
        self.error_set.copy_(wrong)
        self.second_stage.fill_(True)
