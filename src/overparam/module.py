"""ReweightedModule: the one LightningModule; objective Σ_i q_i ℓ_i with q from a Reweighter."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import lightning as L
import torch
from torch import Tensor, nn
from torch.nn.utils import parameters_to_vector

from overparam.batched.progress import MemberEnds
from overparam.data.base import Batch, class_ids
from overparam.errors import Diverged
from overparam.events import StepEvents, chunk_end
from overparam.full_batch_step import FullBatchStep
from overparam.metrics import GroupMetrics, GroupwiseClassification
from overparam.weighting.base import Reweighter

# What each split evaluated after an epoch is logged as; `train` is the training set in eval mode
# (evaluation transforms), as seed 001 measures training accuracy, apart from the running `train/` metrics.
EVAL_PREFIXES = {"val": "val", "test": "test", "train": "train_eval"}


class ReweightedModule(L.LightningModule):
    """Trains `net` on the q-weighted per-sample loss and measures group metrics on every split.

    Optimisation is manual so that full-batch runs take `inner_steps` optimizer steps per
    `training_step` and pay Lightning's per-step overhead once per chunk; `trainer.max_steps` still counts
    optimizer steps. A chunk ends early at every step-indexed event (the log grid, the callbacks'
    `next_event_step`, a non-finite objective, the stop loss), so it equals one step per `training_step`.
    The reweighter is a submodule: its buffers (Group DRO's g, ...) are checkpointed; its step hook
    (`at_event_step`) runs inside the chunk, right after the step it named, with `misclassified()` and
    `restart()` at its disposal, and what it returns is logged at that step. It needs none of Lightning's
    hooks, so it does not end the chunk: the chunks of a stacked model whose members act at steps of their
    own are those of each member's single run.
    The datamodule reads what to evaluate (`eval_splits`) and how to draw (`sample_weights`) from here.
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
        n_classes: int = 2,
        inner_steps: int = 1,
        l2_to_init: float | list[float] = 0.0,
        log_grid_per_decade: int | None = None,
        eval_splits: tuple[str, ...] = ("val",),
        extra_metrics: tuple[str, ...] = (),
        loss_reduction: str = "mean",
        stop_loss: float | None = None,
        compile: bool = False,
        compile_unroll: int = 1,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["net", "loss_fn", "reweighter", "optimizer"])
        self.automatic_optimization = False
        self.net, self.loss_fn, self.reweighter, self.optimizer_factory = net, loss_fn, reweighter, optimizer
        self.inner_steps, self.label_threshold = inner_steps, label_threshold
        self.log_grid_per_decade = log_grid_per_decade
        # μ of the init-centred penalty: a float, or one per member of a stacked model.
        self.l2_to_init = (
            l2_to_init
            if isinstance(l2_to_init, float | int)
            else torch.tensor(l2_to_init, dtype=torch.float64)
        )
        self.penalized = bool(torch.as_tensor(l2_to_init).gt(0).any())
        # θ0 of the penalty, checkpointed with the module (only when the penalty is on).
        theta0 = parameters_to_vector(net.parameters()).detach().clone() if self.penalized else None
        self.register_buffer("theta0", theta0)
        members = self.members = getattr(net, "members", 1)  # a stacked model: metrics per member
        self.train_metrics = GroupMetrics(group_names, group_counts, members, n_classes)
        self.eval_splits = list(eval_splits)
        self.loss_reduction = loss_reduction
        # Full batch: a chunk ends at the first step whose objective (the training loss) is below this, so
        # a stop rule on the training loss (seed 003: < 1e-5) sees the first such step, not a chunk's end.
        self.stop_loss = stop_loss
        self.compile, self.compile_unroll = compile, compile_unroll
        self.full_batch_step: FullBatchStep | None = None  # built at the first plain step
        self.reweighter_event: int | None = None  # the step after which the reweighter's hook runs
        self.eval_metrics = nn.ModuleList(
            GroupMetrics(group_names, group_counts, members, n_classes) for _ in self.eval_splits
        )
        self.test_metrics = GroupMetrics(group_names, group_counts, members, n_classes)
        if extra_metrics and members > 1:
            raise ValueError("run.extra_metrics measures one network: train stacked members one by one")
        # torchmetrics' classification metrics of each evaluated split (by name), when asked for.
        self.extra_metrics = nn.ModuleDict(
            {
                split: GroupwiseClassification(tuple(extra_metrics), tuple(group_names), n_classes)
                for split in ([*self.eval_splits, "test"] if extra_metrics else [])
            }
        )
        self.last_finite_objective: float | None = None
        # A stacked model's diverged members: what each one's metrics.json says, and its frozen θ_t.
        self.member_failures: dict[int, dict] = {}
        self.frozen_rows: dict[int, list[Tensor]] = {}
        self.computed_rows: Tensor | None = None  # the members a chunk's forward runs (None: all)
        # Members with their own step budget, ended and frozen at its step while the others go on.
        self.member_ends: MemberEnds | None = None
        self.member_stop_losses: list[float | None] | None = None  # each member's in-chunk stop loss
        self.last_finite_members: list[float | None] = [None] * members
        # A stacked model's per-member values, gathered during a hook and written as one row at its end.
        self.member_values: dict[str, float] = {}
        self.written_member_metrics: dict[str, float] = {}
        # θ0 (parameters and buffers) for a reweighter that restarts the network, checkpointed.
        self.initial_state = copy.deepcopy(net.state_dict()) if reweighter.restarts_network else None
        reweighter.attach(net, optimizer)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def correct(self, outputs: Tensor, y: Tensor) -> Tensor:
        if outputs.shape[-1] > 1:
            return outputs.argmax(-1) == (y.argmax(-1) if y.dim() > 1 else y)  # one-hot or ids
        return (outputs.squeeze(-1) > self.label_threshold) == (y > self.label_threshold)

    def classes(self, y: Tensor) -> Tensor:
        return class_ids(y, self.label_threshold)

    def step_participants(self) -> list[StepEvents]:
        """What ends a chunk: callbacks acting at given steps (they run in Lightning's hooks)."""
        return [c for c in self.trainer.callbacks if isinstance(c, StepEvents)]

    def steps_in_chunk(self) -> int:
        """Optimizer steps of this `training_step`: up to `inner_steps`, ending at the next log-grid step,
        `trainer.max_steps` and every participant's next event."""
        step, steps = self.trainer.global_step, self.inner_steps
        if self.log_grid_per_decade:
            steps = min(steps, next_log_grid_step(step, self.log_grid_per_decade) - step)
        if self.trainer.max_steps is not None and self.trainer.max_steps >= 0:
            steps = min(steps, self.trainer.max_steps - step)
        return max(1, chunk_end(step, steps, self.step_participants()) - step)

    def objective(self, losses: Tensor, q: Tensor, params: dict[str, Tensor] | None = None) -> Tensor:
        """Σ_i q_i ℓ_i (+ μ/2 ‖θ − θ0‖², the penalty centred at the initialization); one value per member
        of a stacked model (losses and q of shape (members, n)). θ: the network's parameters, those named
        in `params` replaced."""
        objective = (q * losses).sum(-1)
        if self.loss_reduction == "sum":  # Σ_i ℓ_i for ERM, so a paper's η means what it says (seed 002)
            objective = objective * losses.shape[-1]
        if self.penalized:
            mu = self.l2_to_init
            mu = mu.to(objective) if isinstance(mu, Tensor) else mu
            objective = objective + 0.5 * mu * self.squared_distance_to_init(params)
        return objective

    def squared_distance_to_init(self, params: dict[str, Tensor] | None = None) -> Tensor:
        """‖θ − θ0‖², per member of a stacked model (row k of every parameter is member k's)."""
        theta = [(params or {}).get(name, param) for name, param in self.net.named_parameters()]
        if self.members == 1:
            return (parameters_to_vector(theta) - self.theta0).pow(2).sum()
        total, start = 0, 0
        for param in theta:
            initial = self.theta0[start : start + param.numel()].view_as(param)
            total = total + (param - initial).pow(2).reshape(self.members, -1).sum(1)
            start += param.numel()
        return total

    def uses_plain_steps(self) -> bool:
        """Inner steps may skip Lightning's per-step hooks when nothing needs them: one device, no loss
        scaling. This is what makes 10^5–10^7 full-batch steps affordable (seed 000 §8)."""
        return self.trainer.world_size == 1 and self.trainer.precision in ("32-true", "64-true", "32", "64")

    def training_step(self, batch: Batch, batch_idx: int) -> dict[str, Tensor]:
        optimizer = self.optimizers()
        start, steps = self.trainer.global_step, self.steps_in_chunk()
        self.reweighter_event = self.reweighter.next_event_step(start)
        # Plain steps skip Lightning's per-step machinery; the last one of a chunk goes through it (hooks).
        plain = (steps > 1 or self.compile) and self.uses_plain_steps() and not self.reweighter.eager_only
        now = None  # a stacked model's outputs, losses, q and objectives at this step
        unroll = self.compile_unroll if plain and self.compile else 1
        i = 0
        try:
            while i < steps:
                if self.member_ends is not None:
                    self.end_members(self.trainer.global_step, now if i > 0 else None)
                self.train_only_active_members()  # before a step, never between its gradients and update
                if unroll > 1 and i + unroll < steps and self.ready_to_unroll(unroll):
                    rows = self.unrolled_steps(batch, first=i == 0)
                    if rows is not None:
                        i += rows.pop("steps")
                        now = rows
                        self.reweighter_acts()
                        continue
                    unroll = 1  # one of those steps is an event: from here this chunk goes step by step
                if plain:
                    objectives, outputs, losses, q = self.plain_step().gradients(batch)
                else:
                    optimizer.zero_grad(set_to_none=True)
                    outputs, losses = self.forward_losses(batch)
                    q = self.reweighter(losses, batch.group, batch.index)
                    objectives = self.objective(losses, q)
                if self.members > 1:
                    now = {"outputs": outputs, "losses": losses, "q": q, "objectives": objectives}
                    objectives = self.check_members(objectives, now, first=i == 0)
                # One network's objective is already a scalar.
                objective = objectives.sum() if objectives.dim() else objectives
                if self.members > 1 and self.all_members_done():
                    break  # every member's run has ended: no further step
                value = objective.item()
                if not math.isfinite(value):  # θ_t is where it broke: no step from there
                    raise Diverged.non_finite(self.trainer.global_step, value, self.last_finite_objective)
                if self.stop_loss is not None and i > 0 and value < self.stop_loss:
                    break  # θ_t is below the threshold: no further step
                self.last_finite_objective = value
                if plain and i < steps - 1:
                    # Count the step in Lightning's progress (global_step) without its hooks.
                    optimizer._on_before_step()
                    self.full_batch_step.update()
                    optimizer._on_after_step()
                else:
                    if not plain:
                        self.manual_backward(objective)
                    optimizer.step()
                self.hold_frozen_members()
                i += 1
                self.reweighter_acts()
        finally:
            self.train_only_active_members(False)
        if self.member_ends is not None:
            rows = self.member_ends.stand_in({**now, "objectives": objectives}, self.trainer.global_step)
            outputs, losses, q, objectives = (rows[name] for name in ("outputs", "losses", "q", "objectives"))
        self.train_metrics.update(
            self.correct(outputs.detach(), batch.y), losses, batch.group, self.classes(batch.y)
        )
        # Logging "step" makes the loggers' x-axis the optimizer step, not the number of training_steps
        # (Lightning then leaves "epoch" out, so it is logged too).
        self.log_dict(
            {"step": float(self.trainer.global_step), "epoch": float(self.current_epoch)},
            on_step=True,
            on_epoch=False,
        )
        self.log("train/objective", objective.detach(), on_step=True, on_epoch=False, prog_bar=True)
        if self.members > 1:
            self.log_members({f"train/member{k}/objective": v for k, v in enumerate(objectives.detach())})
        return {"loss": objective.detach(), "q": q.detach(), "groups": batch.group}

    def forward_losses(self, batch: Batch) -> tuple[Tensor, Tensor]:
        """The network's outputs on the batch and the per-sample losses (on mixed inputs, when the
        reweighter mixes them: each loss the λ-weighted mean of the losses against both targets)."""
        if self.reweighter.observes_batches:
            self.reweighter.observe(batch)
        if not self.reweighter.mixes_inputs:
            outputs = self.net(batch.x)
            return outputs, self.loss_fn(outputs, batch.y)
        mixed, partner, share = self.reweighter.mix(batch)
        outputs = self.net(mixed)
        share = share.to(outputs.dtype)
        return outputs, share * self.loss_fn(outputs, batch.y) + (1 - share) * self.loss_fn(
            outputs, batch.y[partner]
        )

    def reweighter_acts(self) -> None:
        """After the step the reweighter's `next_event_step` named, its hook; what it returns is written at
        that step (a row of its own, before the chunk's)."""
        step = self.trainer.global_step
        if self.reweighter_event != step:
            return
        logs = {key: float(value) for key, value in self.reweighter.at_event_step(self).items()}
        self.reweighter_event = self.reweighter.next_event_step(step)
        if logs:
            self.write_row(logs, step, self.current_epoch)

    def unrolled_steps(self, batch: Batch, first: bool) -> dict | None:
        """`compile_unroll` plain steps in one compiled call, kept when none of them is an event (a
        non-finite objective, a stop loss; not at a chunk's `first` step, as one by one): then the last
        step's outputs, losses, q and objectives, and how many steps were taken. Otherwise None, with
        everything as it was before."""
        full_batch_step = self.plain_step()
        saved = full_batch_step.snapshot()
        unrolled = full_batch_step.unrolled(batch)
        if unrolled is None:
            return None
        objectives, outputs, losses, q = unrolled
        if not self.free_of_events(objectives.detach().reshape(len(objectives), -1), first):
            full_batch_step.restore(saved)
            return None
        optimizer = self.optimizers()
        for _ in range(len(objectives)):  # count the steps in Lightning's progress (global_step)
            optimizer._on_before_step()
            optimizer._on_after_step()
        self.hold_frozen_members()
        return {
            "outputs": outputs,
            "losses": losses,
            "q": q,
            "objectives": objectives[-1],
            "steps": len(objectives),
        }

    def free_of_events(self, objectives: Tensor, first: bool) -> bool:
        """Whether steps with these objectives `(steps, members)` are free of step-indexed events (then
        their last values are kept as the last finite ones)."""
        frozen = {*self.member_failures, *self.ended_members}
        active = [k for k in range(self.members) if k not in frozen]
        values = objectives[:, active] if frozen else objectives
        sums = values.sum(-1)
        if not bool(values.isfinite().all() & sums.isfinite().all()):
            return False
        checked = values[1:] if first else values
        if self.stop_loss is not None and bool((sums[1:] if first else sums).lt(self.stop_loss).any()):
            return False
        if self.member_stop_losses is not None:
            thresholds = [self.member_stop_losses[k] for k in active]
            if any(loss is not None for loss in thresholds):
                limits = checked.new_tensor([-math.inf if loss is None else loss for loss in thresholds])
                if bool((checked < limits).any()):
                    return False
        last = values[-1].tolist()
        self.last_finite_objective = sum(last)
        for k, value in zip(active, last):
            self.last_finite_members[k] = value
        return True

    def ready_to_unroll(self, steps: int) -> bool:
        """Whether the next `steps` steps may be taken at once: a first step has built the optimizer's
        state, no member's own step budget ends and the reweighter does not act after the current step
        and within them."""
        full_batch_step = self.plain_step()
        if full_batch_step.unroll == 1 or not full_batch_step.stepped:  # 1: it could not compile them
            return False
        step = self.trainer.global_step
        if self.reweighter_event is not None and step < self.reweighter_event < step + steps:
            return False  # the reweighter acts after one of them
        if self.member_ends is None:
            return True
        return not self.all_members_done() and not self.member_ends.due_between(step + 1, step + steps)

    def check_members(self, objectives: Tensor, rows: dict[str, Tensor], first: bool) -> Tensor:
        """A stacked member whose objective is not finite at θ_t diverged at this step, as its single run
        would: it is recorded and frozen at θ_t, and the others go on. The group diverges when all have.
        A member whose objective is below its own stop loss (`member_stop_losses`; not at a chunk's
        `first` step, as a single run's chunk) ends here, its `rows` this step's. Returns the objectives
        with the frozen members' set to 0, so the group's objective stays finite; whatever their rows'
        step does to them, `hold_frozen_members` undoes."""
        step = self.trainer.global_step
        ended = self.ended_members
        stop_losses = self.member_stop_losses or [None] * self.members
        for k, value in enumerate(objectives.tolist()):
            if k in self.member_failures or k in ended:
                continue
            if math.isfinite(value):
                self.last_finite_members[k] = value
                if stop_losses[k] is not None and not first and value < stop_losses[k]:
                    self.end_member(k, step, rows)
                continue
            error = Diverged.non_finite(step, value, self.last_finite_members[k])
            self.member_failures[k] = {
                "status": "diverged",
                "steps": step,
                "error": str(error),
                "diverged_at_step": step,
                "last_finite_loss": error.last_finite,
            }
            self.frozen_rows[k] = self.member_rows(k)
        if len(self.member_failures) == self.members:
            first_error = self.member_failures[0]["error"]
            raise Diverged(f"every member diverged (member 0: {first_error})", step, None)
        if not self.member_failures and not ended:
            return objectives
        active = torch.ones(self.members, dtype=torch.bool, device=objectives.device)
        active[[*self.member_failures, *ended]] = False
        return torch.where(active, objectives, torch.zeros_like(objectives))

    def end_members(self, step: int, rows: dict[str, Tensor] | None) -> None:
        """End the members whose own step budget ends at `step`; `rows`: the previous step's outputs,
        losses, q and objectives, as computed (None at a chunk's first step: the last chunk end reported
        them)."""
        for k in self.member_ends.due(step):
            self.end_member(k, step, rows)

    def end_member(self, k: int, step: int, rows: dict[str, Tensor] | None) -> None:
        """Member k's run ends at `step`: frozen at θ_step with its reweighter's state (see
        `overparam.batched.progress`). The group stops when no member trains any more."""
        self.member_ends.end(k, step, rows, self.reweighter.members[k])
        self.frozen_rows[k] = self.member_rows(k)
        if self.all_members_done():
            self.trainer.should_stop = True

    @property
    def ended_members(self) -> dict[int, int]:
        """Members of a stacked model whose runs have ended before the group's, with their last steps."""
        return self.member_ends.ends if self.member_ends is not None else {}

    def all_members_done(self) -> bool:
        ended = self.ended_members
        return len(ended) > 0 and len(ended) + len(self.member_failures) == self.members

    def train_only_active_members(self, on: bool = True) -> None:
        """While a chunk's steps run, a stacked model's forward leaves out its frozen members (off: all of
        them, as evaluation and the callbacks see it). Compiled steps compile their graphs again for a new
        set of rows, so they drop frozen members only once the rows still computed have halved (at most
        log2(members) compilations more); the frozen members kept until then are held as before."""
        if self.members == 1:
            return
        if on:
            frozen = {*self.member_failures, *self.ended_members}
            active = [k for k in range(self.members) if k not in frozen]
            computed = self.members if self.computed_rows is None else len(self.computed_rows)
            if active and len(active) < computed and (not self.compile or len(active) <= computed // 2):
                self.computed_rows = torch.tensor(active, device=self.device)
                if self.compile and self.full_batch_step is not None:
                    self.full_batch_step.compile()
        self.net.training_rows = self.computed_rows if on else None

    def member_rows(self, k: int) -> list[Tensor]:
        """A copy of member k's rows of the stacked parameters."""
        return [param[k].detach().clone() for param in self.net.parameters()]

    def hold_frozen_members(self) -> None:
        """Put the diverged and ended members back at θ_t after a step (momentum, weight decay or Adam
        would move them even without a gradient), and the ended ones' reweighters in their state."""
        ended = self.ended_members
        if not self.member_failures and not ended:
            return
        if ended:
            self.member_ends.hold(self.reweighter.members)
        for k in [*self.member_failures, *ended]:  # resumed: the checkpoint holds them at θ_t
            if k not in self.frozen_rows:
                self.frozen_rows[k] = self.member_rows(k)
        with torch.no_grad():
            for k, rows in self.frozen_rows.items():
                for param, row in zip(self.net.parameters(), rows):
                    param[k] = row

    def plain_step(self) -> FullBatchStep:
        if self.full_batch_step is None:
            self.full_batch_step = FullBatchStep(
                self, self.optimizers().optimizer, self.compile, self.compile_unroll
            )
        return self.full_batch_step

    @property
    def learning_rate(self) -> float:
        return self.trainer.optimizers[0].param_groups[0]["lr"]

    def compile_record(self) -> dict:
        """What metrics.json says of compilation: each part's first-call seconds (summed when a stacked
        group compiled again for fewer members), or why it ran eagerly."""
        step = self.full_batch_step
        if step is None or not self.compile:
            return {}
        return {"compile": {"seconds": step.compile_seconds, "fallback": step.fallback}}

    def misclassified(self) -> Tensor:
        """A boolean mask over the training set (evaluation mode): the points the model gets wrong now;
        `(members, n_train)` for a stacked model."""
        train = self.trainer.datamodule.train_eval
        rows = (self.members,) if self.members > 1 else ()
        wrong = torch.zeros(*rows, len(train), dtype=torch.bool, device=self.device)
        self.net.eval()
        with torch.no_grad():
            for start in range(0, len(train), 1024):
                batch = train[list(range(start, min(start + 1024, len(train))))]
                x, y = batch.x.to(self.device, self.dtype), batch.y.to(self.device)
                wrong[..., batch.index.to(self.device)] = ~self.correct(self.net(x), y)
        self.net.train()
        return wrong

    def restart(self, members: list[int] | None = None) -> None:
        """Back to θ0 (parameters and buffers) with a fresh optimizer state; of a stacked model, only
        `members` (their rows), the others going on as they were."""
        if members is None or self.members == 1:
            self.net.load_state_dict(self.initial_state)
            for optimizer in self.trainer.optimizers:
                optimizer.state.clear()
        else:
            with torch.no_grad():
                for name, value in self.net.state_dict().items():
                    value[members] = self.initial_state[name][members].to(value)
            for optimizer in self.trainer.optimizers:
                optimizer.restart_members(members)  # a MemberwiseOptimizer (see `assemble`)
        if self.full_batch_step is not None:
            self.full_batch_step.forget_state()

    def sample_weights(self, train_groups: Tensor) -> Tensor | None:
        return self.reweighter.sample_weights(train_groups)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["initial_state"] = self.initial_state
        checkpoint["member_failures"] = self.member_failures
        checkpoint["last_finite_members"] = self.last_finite_members
        if self.member_ends is not None:
            checkpoint["member_ends"] = self.member_ends.state_dict()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.initial_state = checkpoint.get("initial_state", self.initial_state)
        self.member_failures = checkpoint.get("member_failures", {})
        self.last_finite_members = checkpoint.get("last_finite_members", self.last_finite_members)
        if self.member_ends is not None and "member_ends" in checkpoint:
            self.member_ends.load_state_dict(checkpoint["member_ends"])

    def evaluate(self, batch: Batch, metrics: GroupMetrics, split: str) -> None:
        outputs, classes = self.net(batch.x), self.classes(batch.y)
        metrics.update(self.correct(outputs, batch.y), self.loss_fn(outputs, batch.y), batch.group, classes)
        if split in self.extra_metrics:
            self.extra_metrics[split].update(self.probabilities(outputs), classes, batch.group)

    def probabilities(self, outputs: Tensor) -> Tensor:
        """Class probabilities `(n, C)`: the softmax of several outputs; of a scalar output, the sigmoid of
        a ±1-label logit, or the output clipped to [0, 1] for 0/1 labels."""
        if outputs.shape[-1] > 1:
            return outputs.softmax(-1)
        scalar = outputs.squeeze(-1)
        positive = torch.sigmoid(scalar) if self.label_threshold == 0 else scalar.clamp(0, 1)
        return torch.stack([1 - positive, positive], -1)

    def validation_step(self, batch: Batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        self.evaluate(batch, self.eval_metrics[dataloader_idx], self.eval_splits[dataloader_idx])

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self.evaluate(batch, self.test_metrics, "test")

    def log_members(self, values: dict) -> None:
        """Per-member values of a stacked model. They bypass Lightning's logging, whose bookkeeping costs
        ~0.6 ms per key (a group logs members × keys), and are written as one row when the hook ends:
        the row a member's single run gets from Lightning."""
        self.member_values.update({key: float(value) for key, value in values.items()})

    def write_members(self, on_step: bool = False) -> None:
        values, self.member_values = self.member_values, {}
        # Lightning writes step-level values every `log_every_n_steps` only; so do these.
        if not values or (on_step and not self.trainer._logger_connector.should_update_logs):
            return
        step, epoch = self.trainer.global_step, self.current_epoch
        rows = {(step, epoch): values}
        if self.member_ends is not None:
            rows = self.member_ends.labelled(values, step, epoch, self.trainer.state.fn == "fit")
        for (step, epoch), part in rows.items():
            self.write_row(part, step, epoch)

    def write_row(self, values: dict[str, float], step: int, epoch: int) -> None:
        """Values written to every logger at `step`, as Lightning writes what is logged."""
        for logger in self.loggers:
            logger.log_metrics({**values, "epoch": float(epoch)}, step=step)
        self.trainer.callback_metrics.update(
            {k: torch.tensor(v, dtype=torch.float64) for k, v in values.items()}
        )
        self.written_member_metrics.update(values)

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        self.write_members(on_step=True)  # after the callbacks' on_train_batch_end (they log too)

    def log_split(self, split: str, metrics: GroupMetrics, extra: str | None = None) -> None:
        logs = {f"{split}/{key}": value for key, value in metrics.compute().items()}
        if extra in self.extra_metrics:
            logs.update(
                {f"{split}/{key}": value for key, value in self.extra_metrics[extra].compute().items()}
            )
            self.extra_metrics[extra].reset()
        if self.members > 1:
            self.log_members(logs)
            self.log_dict({"step": float(self.trainer.global_step), "epoch": float(self.current_epoch)})
            metrics.reset()
            return
        selection = {k: logs.pop(k) for k in [f"{split}/worst_group_acc"] if k in logs}
        self.log_dict({**logs, "step": float(self.trainer.global_step), "epoch": float(self.current_epoch)})
        self.log_dict(selection, prog_bar=True)  # the model-selection metric, beside the loss on the bar
        metrics.reset()

    def on_train_epoch_end(self) -> None:
        if self.train_metrics.update_count:  # not logged with this epoch's validation
            self.log_split("train", self.train_metrics)
        self.write_members()

    def on_validation_epoch_end(self) -> None:
        for split, metrics in zip(self.eval_splits, self.eval_metrics):
            self.log_split(EVAL_PREFIXES[split], metrics, split)
        # The epoch's training metrics are complete when validation closes it: logging them here puts them
        # in the loggers before the epoch-end checkpoint, so a resumed run's curves match exactly.
        if self.trainer.state.fn == "fit" and not self.trainer.sanity_checking and self.trainer.is_last_batch:
            self.log_split("train", self.train_metrics)
        if self.trainer.sanity_checking:
            self.member_values = {}  # Lightning logs nothing of the sanity check either
        self.write_members()

    def on_test_epoch_end(self) -> None:
        self.log_split("test", self.test_metrics, "test")
        self.write_members()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        # An optimizer that builds its state at once (Adagrad's step count) builds it in the parameters'
        # dtype, as one that builds it at its first step does in a float64 run; a compiled update computes
        # with that count, so in float32 it would round the step size.
        previous = torch.get_default_dtype()
        torch.set_default_dtype(next(self.net.parameters()).dtype)
        try:
            return self.optimizer_factory(self.net.parameters())
        finally:
            torch.set_default_dtype(previous)


def next_log_grid_step(step: int, per_decade: int) -> int:
    """The smallest step > `step` on the grid {round(10^(k/per_decade)) : k = 0, 1, ...}."""
    k = max(0, math.floor(per_decade * math.log10(max(step, 1))) - 1)
    while round(10 ** (k / per_decade)) <= step:
        k += 1
    return round(10 ** (k / per_decade))
