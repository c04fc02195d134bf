"""ReweightedModule: the one LightningModule; objective Σ_i q_i ℓ_i with q from a Reweighter."""

from __future__ import annotations

from collections.abc import Callable

import lightning as L
import torch
from torch import Tensor, nn

from overparam.data.base import Batch
from overparam.metrics import GroupMetrics
from overparam.weighting.base import Reweighter


class Diverged(RuntimeError):
    """The training objective became NaN or infinite."""

    def __init__(self, step: int, value: float, last_finite: float | None) -> None:
        super().__init__(
            f"the training objective became {value} at step {step} (last finite value "
            f"{last_finite}); lower optim.lr"
        )
        self.step, self.last_finite = step, last_finite


class ReweightedModule(L.LightningModule):
    """Trains `net` on the q-weighted per-sample loss and measures group metrics on every split.

    Optimisation is manual so that full-batch runs take `inner_steps` optimizer steps per
    `training_step` and pay Lightning's per-step overhead once per chunk; `trainer.max_steps` still counts
    optimizer steps. The reweighter is a submodule: its buffers (Group DRO's g, ...) are checkpointed.
    """

    def __init__(
        self,
        net: nn.Module,
        loss_fn: Callable[[Tensor, Tensor], Tensor],
        reweighter: Reweighter,
        optimizer: Callable[..., torch.optim.Optimizer],
        group_names: tuple[str, ...],
        group_counts: Tensor,
        label_threshold: float,
        inner_steps: int = 1,
    ) -> None:
        super().__init__()
        if not isinstance(inner_steps, int) or inner_steps < 1:
            raise ValueError(f"inner_steps must be an integer ≥ 1, got {inner_steps!r}")
        self.save_hyperparameters(ignore=["net", "loss_fn", "reweighter", "optimizer"])
        self.automatic_optimization = False
        self.net, self.loss_fn, self.reweighter, self.optimizer_factory = net, loss_fn, reweighter, optimizer
        self.inner_steps, self.label_threshold = inner_steps, label_threshold
        self.train_metrics = GroupMetrics(group_names, group_counts)
        self.val_metrics = GroupMetrics(group_names, group_counts)
        self.test_metrics = GroupMetrics(group_names, group_counts)
        self.last_finite_objective: float | None = None

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def correct(self, outputs: Tensor, y: Tensor) -> Tensor:
        if outputs.shape[-1] > 1:
            return outputs.argmax(-1) == y
        return (outputs.squeeze(-1) > self.label_threshold) == (y > self.label_threshold)

    def steps_in_chunk(self) -> int:
        max_steps = self.trainer.max_steps if self.trainer else -1
        if max_steps is None or max_steps < 0:
            return self.inner_steps
        return max(1, min(self.inner_steps, max_steps - self.trainer.global_step))

    def training_step(self, batch: Batch, batch_idx: int) -> dict[str, Tensor]:
        optimizer = self.optimizers()
        for _ in range(self.steps_in_chunk()):
            optimizer.zero_grad(set_to_none=True)
            outputs = self.net(batch.x)
            losses = self.loss_fn(outputs, batch.y)
            q = self.reweighter(losses, batch.group, batch.index)
            objective = (q * losses).sum()
            self.manual_backward(objective)
            optimizer.step()
        value = objective.item()
        if not torch.isfinite(objective):
            raise Diverged(self.trainer.global_step, value, self.last_finite_objective)
        self.last_finite_objective = value
        self.train_metrics.update(self.correct(outputs.detach(), batch.y), losses, batch.group)
        self.log("train/objective", objective.detach(), on_step=True, on_epoch=False)
        return {"loss": objective.detach(), "q": q.detach(), "groups": batch.group}

    def evaluate(self, batch: Batch, metrics: GroupMetrics) -> None:
        outputs = self.net(batch.x)
        metrics.update(self.correct(outputs, batch.y), self.loss_fn(outputs, batch.y), batch.group)

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self.evaluate(batch, self.val_metrics)

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self.evaluate(batch, self.test_metrics)

    def log_split(self, split: str, metrics: GroupMetrics) -> None:
        self.log_dict({f"{split}/{key}": value for key, value in metrics.compute().items()})
        metrics.reset()

    def on_train_epoch_end(self) -> None:
        self.log_split("train", self.train_metrics)

    def on_validation_epoch_end(self) -> None:
        self.log_split("val", self.val_metrics)

    def on_test_epoch_end(self) -> None:
        self.log_split("test", self.test_metrics)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.optimizer_factory(self.net.parameters())
