"""Learning from Failure (Nam et al. 2020): a biased network trained to be biased weights the debiased one."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from overparam.data.base import Batch
from overparam.weighting.base import Reweighter


class LearningFromFailure(Reweighter):
    """The module's network is the debiased model D; this reweighter trains a biased model B beside it, with
    the same architecture (started from D's initial weights) and the same optimizer, on the generalized
    cross-entropy GCE = q⁻¹(1 − p_y^q) (its gradient is the cross-entropy's times p_y^q, q = `gce_q`),
    which fits the easy, bias-aligned samples first.

    Each sample keeps exponential moving averages (factor `ema`) of both models' cross-entropies; each is
    divided by its class's largest average, and sample i weighs W_i = L_B / (L_B + L_D). The objective is
    (1/n) Σ_i W_i ℓ_D(x_i), the authors' mean of weighted losses, so the weights sum to less than 1. Needs
    class outputs (the cross-entropy)."""

    observes_batches = True

    def __init__(
        self,
        n_groups: int,
        group_counts: Tensor,
        n_train: int,
        train_classes: Tensor,
        gce_q: float = 0.7,
        ema: float = 0.7,
    ) -> None:
        super().__init__(n_groups, group_counts, n_train)
        if not isinstance(gce_q, (int, float)) or not 0 < gce_q <= 1:
            raise ValueError(f"gce_q must be a number in (0, 1] (the generalized CE's q), got {gce_q!r}")
        if not isinstance(ema, (int, float)) or not 0 <= ema < 1:
            raise ValueError(f"ema must be a number in [0, 1) (the loss averages' factor), got {ema!r}")
        self.gce_q, self.ema = float(gce_q), float(ema)
        self.register_buffer("classes", train_classes.clone())
        self.register_buffer("average_biased", torch.zeros(n_train, dtype=torch.float64))
        self.register_buffer("average_debiased", torch.zeros(n_train, dtype=torch.float64))
        self.register_buffer("seen", torch.zeros(n_train, dtype=torch.bool))
        self.biased: nn.Module | None = None
        self.biased_optimizer: torch.optim.Optimizer | None = None
        self.batch_biased_losses: Tensor | None = None

    def attach(self, net: nn.Module, optimizer) -> None:
        self.biased = copy.deepcopy(net)
        self.biased_optimizer = optimizer(self.biased.parameters())

    def observe(self, batch: Batch) -> None:
        """One step of the biased model on the batch (GCE); its cross-entropies are kept for `forward`."""
        self.biased.train()
        logits = self.biased(batch.x)
        if logits.shape[-1] < 2:
            raise ValueError("lff trains its biased model with class outputs: use loss=cross_entropy")
        cross_entropy = F.cross_entropy(logits, batch.y, reduction="none")
        likelihood = torch.exp(-cross_entropy.detach())
        gce = (cross_entropy * likelihood**self.gce_q).mean()  # ∇ = ∇CE · p_y^q, as the authors' code
        self.biased_optimizer.zero_grad(set_to_none=True)
        gce.backward()
        self.biased_optimizer.step()
        self.batch_biased_losses = cross_entropy.detach()

    def forward(self, losses: Tensor, groups: Tensor, index: Tensor) -> Tensor:
        biased = self.batch_biased_losses
        if biased is None or len(biased) != len(losses):  # not a training batch (a probe): plain ERM
            return torch.full_like(losses, 1.0 / len(losses)).detach()
        biased_average = self.update(self.average_biased, biased, index)
        debiased_average = self.update(self.average_debiased, losses.detach(), index)
        self.seen[index] = True
        weight = biased_average / (biased_average + debiased_average + 1e-8)
        self.batch_biased_losses = None
        return (weight / len(losses)).to(losses.dtype)

    def update(self, average: Tensor, losses: Tensor, index: Tensor) -> Tensor:
        """The moving averages of the batch's samples after this batch, each over its class's largest."""
        previous = torch.where(self.seen[index], self.ema, 0.0).to(average.dtype)
        average[index] = previous * average[index] + (1 - previous) * losses.to(average.dtype)
        largest = torch.zeros(int(self.classes.max()) + 1, dtype=average.dtype, device=average.device)
        largest = largest.scatter_reduce(0, self.classes, average, reduce="amax")
        return average[index] / largest[self.classes[index]].clamp(min=1e-12)

    def max_weight(self) -> float:
        return 1.0 / self.n_train

    def get_extra_state(self) -> dict:
        return {"optimizer": self.biased_optimizer.state_dict() if self.biased_optimizer else None}

    def set_extra_state(self, state: dict) -> None:
        if state.get("optimizer") is not None and self.biased_optimizer is not None:
            self.biased_optimizer.load_state_dict(state["optimizer"])
