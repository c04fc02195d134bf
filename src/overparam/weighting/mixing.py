"""Training on mixed inputs: Mixup (Zhang et al. 2018) and its selective form LISA (Yao et al. 2022)."""

from __future__ import annotations

import torch
from torch import Tensor

from overparam.data.base import Batch
from overparam.weighting.base import Reweighter


class Mixup(Reweighter):
    """Each sample i of a mini-batch is mixed with a partner j from the same batch: the network sees
    x̃_i = λ_i x_i + (1 − λ_i) x_j with λ_i ~ Beta(α, α), and its loss is λ_i ℓ(f(x̃_i), y_i) +
    (1 − λ_i) ℓ(f(x̃_i), y_j) (for the cross-entropy, the loss of the mixed one-hot target). The weights
    are uniform. Plain Mixup draws the partner uniformly from the batch; subclasses choose it.

    The module asks `mix(batch)` for the mixed inputs, the partners and the λ_i before every forward.
    """

    mixes_inputs = True

    def __init__(self, n_groups: int, group_counts: Tensor, n_train: int, alpha: float) -> None:
        super().__init__(n_groups, group_counts, n_train)
        if not isinstance(alpha, (int, float)) or not alpha > 0:
            raise ValueError(f"alpha must be a number > 0 (λ ~ Beta(α, α)), got {alpha!r}")
        self.alpha = float(alpha)

    def forward(self, losses: Tensor, groups: Tensor, index: Tensor) -> Tensor:
        return torch.full_like(losses, 1.0 / len(losses)).detach()

    def max_weight(self) -> float:
        return 1.0 / self.n_train

    def partners(self, batch: Batch) -> Tensor:
        return torch.randperm(len(batch.index), device=batch.index.device)

    def mix(self, batch: Batch) -> tuple[Tensor, Tensor, Tensor]:
        """Mixed inputs, each sample's partner (a position in the batch) and its share λ_i."""
        partner = self.partners(batch)
        beta = torch.distributions.Beta(self.alpha, self.alpha)
        share = beta.sample((len(partner),)).to(batch.x.device, batch.x.dtype)
        shape = (-1,) + (1,) * (batch.x.dim() - 1)
        return share.view(shape) * batch.x + (1 - share.view(shape)) * batch.x[partner], partner, share


class LISA(Mixup):
    """Selective augmentation (Yao et al. 2022): per mini-batch, with probability `p_intra_label` every
    sample mixes with a sample of its own class but another attribute (intra-label), otherwise with a
    sample of its own attribute but another class (intra-domain); a sample with no such partner in the
    batch is left unmixed. As the authors' code draws its batches group by group, mini-batches are drawn
    group-balanced (`balanced_sampling`). Needs groups that are (class, attribute) pairs."""

    def __init__(
        self,
        n_groups: int,
        group_counts: Tensor,
        n_train: int,
        train_groups: Tensor,
        group_attributes: Tensor | None,
        alpha: float,
        p_intra_label: float,
        balanced_sampling: bool = True,
    ) -> None:
        super().__init__(n_groups, group_counts, n_train, alpha)
        if group_attributes is None:
            raise ValueError(
                "groups must be (class, attribute) pairs (group = class·A + attribute) for LISA to tell a "
                "sample's attribute; this data's groups are not"
            )
        if not isinstance(p_intra_label, (int, float)) or not 0 <= p_intra_label <= 1:
            raise ValueError(f"p_intra_label must be a probability in [0, 1], got {p_intra_label!r}")
        self.p_intra_label = float(p_intra_label)
        attributes = int(group_attributes.max()) + 1
        self.register_buffer("group_class", torch.arange(n_groups) // attributes)
        self.register_buffer("group_attribute", group_attributes.clone())
        counts = torch.bincount(train_groups.cpu(), minlength=n_groups).double()
        self.register_buffer(
            "draw_weights", (1.0 / counts)[train_groups.cpu()] if balanced_sampling else None
        )

    def partners(self, batch: Batch) -> Tensor:
        cls, attribute = self.group_class[batch.group], self.group_attribute[batch.group]
        same_class, same_attribute = cls[:, None] == cls[None, :], attribute[:, None] == attribute[None, :]
        if float(torch.rand(())) < self.p_intra_label:
            candidates = same_class & ~same_attribute
        else:
            candidates = ~same_class & same_attribute
        alone = ~candidates.any(1)
        candidates[alone, torch.nonzero(alone).flatten()] = True  # mixed with itself: unchanged
        return torch.multinomial(candidates.double(), 1).flatten()

    def sample_weights(self, train_groups: Tensor) -> Tensor | None:
        return self.draw_weights
