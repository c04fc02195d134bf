"""The Reweighter contract shared by every algorithm."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from overparam.events import StepEvents


class Reweighter(StepEvents, nn.Module):
    """Maps per-sample losses to weights q ≥ 0 with Σ q = 1 over the batch; state lives in buffers.

    Every reweighter is built with the facts of the training set (`n_groups`, `group_counts`, `n_train`)
    plus its own hyperparameters. Subclasses implement `forward(losses, groups, index)`.

    What an algorithm supports is said by class attributes, what it does during training by hooks:
    - `uniform`: q = 1/n on every batch, so a full-batch objective is the plain training loss;
    - `static`: q depends only on the groups (closed forms θ*_μ exist then);
    - `restarts_network`: a hook may restart the network from θ0 (the module then keeps θ0);
    - `mixes_inputs`: the network trains on mixed inputs: `mix(batch)` returns them, each sample's
      partner in the batch and its share λ_i, and the module takes λ_i ℓ(f(x̃_i), y_i) +
      (1 − λ_i) ℓ(f(x̃_i), y_partner) as sample i's loss (eager steps only);
    - `observes_batches`: `observe(batch)` sees every training batch before the network's forward (a
      reweighter that trains a network of its own on it; eager steps only);
    - `attach(net, optimizer)`: called once with the network the module trains and its optimizer's factory
      (a reweighter that trains a network of its own builds it and its optimizer from them);
    - `sample_weights(train_groups)`: per-sample draw probabilities for a sampler, or None;
    - `next_event_step(step)` / `at_event_step(training)`: a step after which the algorithm acts on the
      training run (`training` offers `misclassified()` and `restart()`); the module calls it after
      exactly that step and logs what it returns;
    - `stacked(members, losses, groups, index)`: q of several members of a stacked model at once (by
      default one after another; a class whose update vectorizes over members overrides it).
    """

    uniform = False
    static = False
    restarts_network = False
    mixes_inputs = False
    observes_batches = False

    def __init__(self, n_groups: int, group_counts: Tensor, n_train: int) -> None:
        super().__init__()
        self.n_groups, self.n_train = n_groups, n_train
        self.smallest_group = int(torch.as_tensor(group_counts).min())

    def forward(self, losses: Tensor, groups: Tensor, index: Tensor) -> Tensor:
        raise NotImplementedError

    @property
    def eager_only(self) -> bool:
        """Whether its steps must run eagerly, one network at a time (it mixes inputs or sees batches)."""
        return self.mixes_inputs or self.observes_batches

    @classmethod
    def stacked(cls, members: list[Reweighter], losses: Tensor, groups: Tensor, index: Tensor) -> Tensor:
        """q of `members` (instances of this class) from their losses `(members, n)`: `(members, n)`."""
        return torch.stack([member(row, groups, index) for member, row in zip(members, losses)])

    def sample_weights(self, train_groups: Tensor) -> Tensor | None:
        return None

    def attach(self, net: nn.Module, optimizer) -> None:
        """The network the module trains and its optimizer factory (most reweighters need neither)."""

    def max_weight(self) -> float:
        """An upper bound on any q_i over the full training batch (sets the stable full-batch step size)."""
        return 1.0

    def at_event_step(self, training) -> dict[str, float]:
        """What the algorithm does after the step `next_event_step` named; returns metrics to log."""
        return {}


def spread_over_groups(group_mass: Tensor, groups: Tensor, renormalize: bool = True) -> Tensor:
    """Give each sample its group's mass divided evenly among the group's members in the batch (the mass
    of the last dimension; leading dimensions are members of a stacked model): g_k / |B ∩ D_k|.

    Groups absent from the batch have no one to carry their mass: by default the result is renormalised
    over the groups present (the simplex contract); with `renormalize=False` their mass drops out of the
    batch's objective (Σq = 1 − the absent mass). With every group present the two agree.
    """
    counts = group_membership(groups, group_mass.shape[-1], group_mass.dtype).sum(0)
    present_mass = torch.where(counts > 0, group_mass, torch.zeros_like(group_mass))
    q = (present_mass / counts.clamp(min=1))[..., groups]
    return q / q.sum(-1, keepdim=True) if renormalize else q


def group_membership(groups: Tensor, n_groups: int, dtype: torch.dtype) -> Tensor:
    """The (n, n_groups) 0/1 matrix of which group each sample is in: `values @ it` sums by group. A
    matmul, not a bincount, so that a compiled step fuses it."""
    return torch.nn.functional.one_hot(groups, n_groups).to(dtype)
