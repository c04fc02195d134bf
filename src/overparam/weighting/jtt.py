"""Just Train Twice (Liu et al. 2021): ERM, then a fresh model with the first model's errors up-weighted."""

from __future__ import annotations

import torch
from torch import Tensor

from overparam.weighting.base import Reweighter


class JTT(Reweighter):
    """Stage 1 (the first `identification_steps` steps) is ERM. After exactly that step the training points
    the model gets wrong form the error set E, the network restarts from θ0 with a fresh optimizer, and
    stage 2 weights q_i ∝ `upweight` for i ∈ E and 1 otherwise (seed 000 §2.2). E and the stage are
    buffers, so a resumed run keeps them.
    """

    restarts_network = True

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

    def next_event_step(self, step: int) -> int | None:
        return None if self.second_stage or step >= self.identification_steps else self.identification_steps

    def at_event_step(self, training) -> dict[str, float]:
        """The switch: fix E from the current model, restart from θ0 with a fresh optimizer, stage 2."""
        wrong = training.misclassified()
        self.error_set.copy_(wrong)
        self.second_stage.fill_(True)
        training.restart()
        return {"weights/jtt_error_set_size": float(wrong.sum())}
