"""Seed-batched training: S members of a small model family trained as one batched model (torch.func).

`run.ensemble=S` builds member k exactly as the single run with `seed=<seed + k>` would build its network,
stacks the members' parameters along a leading dimension and evaluates them all with one `vmap`ped call.
Elementwise optimizers (SGD, momentum, weight decay, AdaGrad, Adam) update stacked parameters exactly as
they would update each member alone, the objective is the sum of the members' objectives, and each member
keeps its own reweighter state, so member k follows the single run with its seed. Per-member metrics are
written to `<run_dir>/member=<k>/` as if they were separate runs.
"""

from __future__ import annotations

import copy
import functools
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
import yaml
from omegaconf import DictConfig, OmegaConf, open_dict
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state

from overparam.rundir import write_json
from overparam.weighting.base import Reweighter


class EnsembleNet(nn.Module):
    """S networks of one architecture as stacked parameters; `forward(x)` returns `(S, n, out)`."""

    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        params, buffers = stack_module_state(members)
        self.names = list(params)
        self.stacked = nn.ParameterList(nn.Parameter(params[name]) for name in self.names)
        for i, value in enumerate(buffers.values()):
            self.register_buffer(f"buffer{i}", value)
        self.buffer_names = list(buffers)
        # The architecture, without parameters of its own (kept outside the module tree on purpose).
        self.__dict__["template"] = copy.deepcopy(members[0]).to("meta")
        self.members = len(members)
        # The members a training step computes (their rows, in order), set while a chunk's steps run: the
        # others (ended or diverged, held at θ_t) are left out of the forward, so a group whose members
        # stop at different steps costs about what its members still training cost. None: all of them.
        self.training_rows: Tensor | None = None

    def member_state(self) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        params = dict(zip(self.names, self.stacked))
        buffers = {name: getattr(self, f"buffer{i}") for i, name in enumerate(self.buffer_names)}
        return params, buffers

    def forward(self, x: Tensor) -> Tensor:
        params, buffers = self.member_state()

        def one(member_params, member_buffers, inputs):
            return functional_call(self.template, (member_params, member_buffers), (inputs,))

        rows = self.training_rows
        if rows is None:
            return torch.vmap(one, in_dims=(0, 0, None))(params, buffers, x)
        params = {name: value[rows] for name, value in params.items()}
        kept = {name: value[rows] for name, value in buffers.items()}
        outputs = torch.vmap(one, in_dims=(0, 0, None))(params, kept, x)
        with torch.no_grad():  # what the members changed in their buffers (a norm's running statistics)
            for name, value in kept.items():
                buffers[name].index_copy_(0, rows, value)
        # The members left out give zeros: their rows are held, and their last ones stand in for them.
        return outputs.new_zeros((self.members, *outputs.shape[1:])).index_copy(0, rows, outputs)


def plain_attributes(module: nn.Module) -> str:
    """A module's settings kept as plain attributes (a scale as a float, a name), not as tensors or
    submodules: what two members must share beyond their tensors' shapes."""
    return repr(
        {
            k: v
            for k, v in vars(module).items()
            if not k.startswith("_") and k != "training" and not isinstance(v, (Tensor, nn.Module))
        }
    )


def same_reweighter(first: Reweighter, other: Reweighter) -> bool:
    """The same class with the same settings and state (a sweep over its parameters differs here)."""
    first_state, other_state = first.state_dict(), other.state_dict()
    return (
        type(first) is type(other)
        and plain_attributes(first) == plain_attributes(other)
        and first_state.keys() == other_state.keys()
        and all(torch.equal(first_state[k], other_state[k]) for k in first_state)
    )


def rows_alike(items: list, same) -> list[tuple[int, list[int]]]:
    """The positions of `items` grouped by `same(a, b)`, each group as (its first position, all of them)."""
    groups: list[tuple[int, list[int]]] = []
    for k, item in enumerate(items):
        for first, rows in groups:
            if same(items[first], item):
                rows.append(k)
                break
        else:
            groups.append((k, [k]))
    return groups


def member_order(parts: list[list[int]]) -> Tensor:
    """The index that puts the rows of `parts` (lists of members), concatenated, back in member order."""
    return torch.argsort(torch.tensor([k for rows in parts for k in rows]))


def same_function(first, other) -> bool:
    """Two loss functions compute alike: the same function with the same bound arguments."""
    if isinstance(first, functools.partial) and isinstance(other, functools.partial):
        return (first.func, first.args, first.keywords) == (other.func, other.args, other.keywords)
    return first is other


class EnsembleLoss:
    """Per-sample losses of every member: `(S, n, out)` outputs and shared targets -> `(S, n)`. Member k
    uses `loss_fns[k]`; members whose functions compute alike are evaluated together."""

    def __init__(self, loss_fns: list) -> None:
        self.loss_fns = loss_fns
        self.rows_by_loss = rows_alike(loss_fns, same_function)
        self.unsorted = member_order([rows for _, rows in self.rows_by_loss])

    def __call__(self, outputs: Tensor, targets: Tensor) -> Tensor:
        if len(self.rows_by_loss) == 1:
            return torch.vmap(self.loss_fns[0], in_dims=(0, None))(outputs, targets)
        parts = [
            torch.vmap(self.loss_fns[first], in_dims=(0, None))(outputs[rows], targets)
            for first, rows in self.rows_by_loss
        ]
        return torch.cat(parts)[self.unsorted.to(outputs.device)]


class EnsembleReweighter(Reweighter):
    """One reweighter per member (each with its own state); q is `(S, n)`, each row on the simplex."""

    def __init__(self, members: list[Reweighter]) -> None:
        nn.Module.__init__(self)
        self.members = nn.ModuleList(members)
        self.static = all(member.static for member in members)
        self.uniform = all(member.uniform for member in members)
        self.restarts_network = any(member.restarts_network for member in members)
        self.n_groups, self.n_train = members[0].n_groups, members[0].n_train
        # Members whose q depends on the groups alone and who compute it alike share one q (a sweep of
        # ERM and importance weighting over step sizes computes two); the others are handled class by
        # class, each class's members at once.
        static = [k for k, member in enumerate(members) if member.static]
        self.alike = [
            (static[first], [static[i] for i in rows])
            for first, rows in rows_alike([members[k] for k in static], same_reweighter)
        ]
        self.rows_by_class: dict[type, list[int]] = {}
        for k, member in enumerate(members):
            if not member.static:
                self.rows_by_class.setdefault(type(member), []).append(k)
        # q's parts, concatenated, go back in member order by one gather (a compiled graph fuses it; row
        # assignments would each be a copy of their own). A buffer, so it moves to the device with q.
        parts = [rows for _, rows in self.alike] + list(self.rows_by_class.values())
        self.register_buffer("unsorted", member_order(parts), persistent=False)

    def forward(self, losses: Tensor, groups: Tensor, index: Tensor) -> Tensor:
        if len(self.alike) == 1 and not self.rows_by_class:
            first, _ = self.alike[0]
            return self.members[first](losses[first], groups, index).expand_as(losses)
        parts = [
            self.members[first](losses[first], groups, index).expand(len(rows), -1)
            for first, rows in self.alike
        ]
        for kind, rows in self.rows_by_class.items():
            parts.append(kind.stacked([self.members[k] for k in rows], losses[rows], groups, index))
        return torch.cat(parts)[self.unsorted].to(losses.dtype)

    def next_event_step(self, step: int) -> int | None:
        return min(filter(None, (member.next_event_step(step) for member in self.members)), default=None)

    def at_event_step(self, training) -> dict[str, float]:
        """Each member whose event is this step acts on its own rows of the stacked model (members that
        have ended or diverged do not); what they return is logged under their own names."""
        step, frozen = training.global_step, {*training.member_failures, *training.ended_members}
        view = MemberTraining(training)
        logs = {}
        for k, member in enumerate(self.members):
            if k not in frozen and member.next_event_step(step - 1) == step:
                view.k = k
                logs.update({member_key(key, k): value for key, value in member.at_event_step(view).items()})
        return logs


class MemberTraining:
    """What a member's `at_event_step` may do to the training run of a stacked model, on member `k` only:
    `misclassified()` (computed once for all members at this step) and `restart()`."""

    def __init__(self, training) -> None:
        self.training, self.k = training, 0
        self.wrong: Tensor | None = None

    def misclassified(self) -> Tensor:
        if self.wrong is None:
            self.wrong = self.training.misclassified()
        return self.wrong[self.k]

    def restart(self) -> None:
        self.training.restart([self.k])


@dataclass
class Member:
    """One run of a stacked group: its own single-run config (whose `run_dir` is the member's directory)
    and, where no launcher wrote them, the overrides to record in its `.hydra/overrides.yaml`."""

    cfg: DictConfig
    overrides: list[str] | None = None


def seed_members(cfg: DictConfig) -> list[Member]:
    """`run.ensemble=S`: the single runs with seeds seed, …, seed+S−1, in `<run_dir>/member=<k>/` (none
    for S = 1)."""
    if cfg.run.ensemble == 1:
        return []
    run_dir = Path(cfg.run_dir)
    parent_overrides = run_dir / ".hydra" / "overrides.yaml"
    overrides = yaml.safe_load(parent_overrides.read_text()) if parent_overrides.exists() else []
    overrides = [o for o in overrides or [] if not o.lstrip("+~").startswith(("run.ensemble=", "seed="))]
    members = []
    for k in range(cfg.run.ensemble):
        member = copy.deepcopy(cfg)
        with open_dict(member):
            member.seed, member.run.ensemble, member.run_dir = cfg.seed + k, 1, str(run_dir / f"member={k}")
        members.append(Member(member, [*overrides, f"seed={cfg.seed + k}"]))
    return members


MEMBER_TAG = re.compile(r"(^|/)member(\d+)/")


def member_key(key: str, k: int) -> str:
    """Member k's column of a metric: `theory/dist` → `theory/member3/dist`, `lr` → `member3/lr`."""
    split, slash, name = key.partition("/")
    return f"{split}/member{k}/{name}" if slash else f"member{k}/{key}"


@functools.cache  # a group's keys are few and asked for at every chunk end, by every member's callbacks
def member_of(key: str) -> tuple[int | None, str]:
    """Which member a logged column belongs to (None: the group as a whole), and its name in that member's
    own run (the inverse of `member_key`)."""
    match = MEMBER_TAG.search(key)
    if match is None:
        return None, key
    return int(match.group(2)), key[: match.start()] + match.group(1) + key[match.end() :]


def write_members(run_dir: Path, result: dict, members: list[Member]) -> None:
    """Every member's directory as its single run writes it: metrics.json (its own metrics, config and
    step size), metrics.csv (its own columns) and, where given, `.hydra/overrides.yaml` (the collector then
    sees one run per member)."""
    curves = pd.read_csv(run_dir / "metrics.csv") if (run_dir / "metrics.csv").exists() else None
    failures = {int(k): failure for k, failure in (result.get("member_failures") or {}).items()}
    ends = {int(k): end for k, end in (result.get("member_ends") or {}).items()}
    for k, member in enumerate(members):
        own = {}
        for key, value in result.get("metrics", {}).items():
            owner, name = member_of(key)
            if owner == k or (owner is None and key != "train/objective"):  # not the sum over members
                own[name] = value
        if k in ends:  # it ended before the group: its own last step and epoch
            own.update({key: float(value) for key, value in ends[k].items() if key in own})
        member_dir = Path(member.cfg.run_dir)
        (member_dir / ".hydra").mkdir(parents=True, exist_ok=True)
        if member.overrides is not None:
            (member_dir / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(member.overrides))
        group_keys = ("members", "rates", "member_failures", "member_ends", "member_best")
        record = {key: value for key, value in result.items() if key not in group_keys}
        record.update(
            metrics=own,
            best=(result.get("member_best") or {}).get(k, {}),
            lr=result["rates"][k],
            config=OmegaConf.to_container(member.cfg, resolve=False),
        )
        if k in ends:
            record["steps"] = ends[k]["step"]
        if k in failures:  # what its single run writes when it diverges: no final metrics
            record = {key: value for key, value in record.items() if key not in ("metrics", "best")}
            record.update(failures[k])
        record["batched_group"] = {"run_dir": str(run_dir), "index": k, "members": len(members)}
        write_json(member_dir / "metrics.json", record)
        if curves is not None:
            owners = {c: member_of(c) for c in curves.columns}
            own_names = {name for owner, name in owners.values() if owner == k}
            # The group's own columns, except those a member has its own value of (the summed objective).
            columns = [
                c
                for c, (owner, name) in owners.items()
                if owner == k or (owner is None and name not in own_names)
            ]
            own_curves = curves[columns].rename(columns={c: owners[c][1] for c in columns})
            values = [c for c in own_curves.columns if c not in ("step", "epoch")]
            own_curves = own_curves.dropna(how="all", subset=values)
            if k in failures:  # its single run logged nothing after the step it diverged at
                own_curves = own_curves[own_curves["step"] <= failures[k]["diverged_at_step"]]
            own_curves.to_csv(member_dir / "metrics.csv", index=False)
