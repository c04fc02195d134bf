"""Just Train Twice (Liu et al. 2021): ERM, then a fresh model with the first model's errors up-weighted."""

from __future__ import annotations

import torch
from torch import Tensor

from overparam.weighting.base import Reweighter

MODES = ("auto", "loss", "sampler")


class JTT(Reweighter):
    """Stage 1 (the first `identification_steps` steps) is ERM. After exactly that step the training points
    the model gets wrong form the error set E, the network restarts from θ0 with a fresh optimizer, and
    stage 2 gives each i ∈ E `upweight` times the weight of any other point (seed 000 §2.2). E and the
    stage are buffers, so a resumed run keeps them.

    How stage 2 weighs: `mode=loss` sets q_i ∝ `upweight` for i ∈ E and 1 otherwise on every batch;
    `mode=sampler` draws stage 2's mini-batches with those probabilities (with replacement, n per epoch),
    as the authors' code upsamples E, and averages their losses. On the full batch `loss` is exact; on
    mini-batches it is not (a batch's weights are renormalised over the batch), so `auto` picks `loss` on
    the full batch and `sampler` with mini-batches. The sampler redraws at the start of an epoch, so there
    `identification_steps` must be a whole number of epochs.
    """

    restarts_network = True

    def __init__(
        self,
        n_groups: int,
        group_counts: Tensor,
        n_train: int,
        batch_size: int | None,
        identification_steps: int,
        upweight: float,
        mode: str = "auto",
    ) -> None:
        super().__init__(n_groups, group_counts, n_train)
        if not isinstance(identification_steps, int) or identification_steps < 1:
            raise ValueError(f"identification_steps must be an integer ≥ 1, got {identification_steps!r}")
        if not isinstance(upweight, (int, float)) or upweight < 1:
            raise ValueError(f"upweight must be a number ≥ 1 (λ_up), got {upweight!r}")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.mode = ("loss" if batch_size is None else "sampler") if mode == "auto" else mode
        if self.mode == "sampler" and batch_size is not None:
            per_epoch = -(-n_train // batch_size)
            if identification_steps % per_epoch:
                example = max(1, round(identification_steps / per_epoch)) * per_epoch
                raise ValueError(
                    f"identification_steps must be a whole number of epochs with mode=sampler (its "
                    f"sampler redraws when an epoch starts; an epoch is {per_epoch} steps here, so e.g. "
                    f"{example}), got {identification_steps}"
                )
        self.identification_steps, self.upweight = identification_steps, float(upweight)
        self.register_buffer("error_set", torch.zeros(n_train, dtype=torch.bool))
        self.register_buffer("second_stage", torch.tensor(False))
        self.register_buffer("draw_weights", torch.ones(n_train, dtype=torch.float64))

    def forward(self, losses: Tensor, groups: Tensor, index: Tensor) -> Tensor:
        if not self.second_stage or self.mode == "sampler":
            return torch.full_like(losses, 1.0 / len(losses))
        weights = torch.where(self.error_set[index], self.upweight, 1.0).to(losses.dtype)
        return weights / weights.sum()

    def max_weight(self) -> float:
        if self.mode == "sampler":
            return 1.0 / self.n_train
        return self.upweight / (self.upweight + self.n_train - 1)

    def sample_weights(self, train_groups: Tensor) -> Tensor | None:
        return self.draw_weights if self.mode == "sampler" else None

    def next_event_step(self, step: int) -> int | None:
        return None if self.second_stage or step >= self.identification_steps else self.identification_steps

    def at_event_step(self, training) -> dict[str, float]:
        """The switch: fix E from the current model, restart from θ0 with a fresh optimizer, stage 2."""
        wrong = training.misclassified()
        self.error_set.copy_(wrong)
        self.draw_weights.copy_(torch.where(wrong, self.upweight, 1.0))
        self.second_stage.fill_(True)
        training.restart()
        return {"weights/jtt_error_set_size": float(wrong.sum())}
