"""run(cfg): one configuration, top to bottom: validate → plan the run directory → build → fit →
evaluate → write `metrics.json`. Procedures (searches, sweeps) call it; it calls none of them."""

from __future__ import annotations

import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

from overparam import loggers, rundir
from overparam.components import Components, assemble
from overparam.ensemble import Member, seed_members, write_members
from overparam.errors import Diverged
from overparam.evaluation import evaluate
from overparam.report import print_end, print_report, print_start
from overparam.validate import validate


@dataclass(frozen=True)
class RunResult:
    """What a run's metrics.json says: how it ended, its final and best metrics, steps and seconds."""

    status: str  # completed | diverged | stopped | failed
    metrics: dict[str, float] = field(default_factory=dict)
    best: dict[str, float | str] = field(default_factory=dict)
    steps: int = 0
    seconds: float = 0.0
    error: str | None = None

    @classmethod
    def from_record(cls, record: dict) -> RunResult:
        fields = ("metrics", "best", "steps", "seconds", "error")
        return cls(record["status"], **{k: record[k] for k in fields if record.get(k) is not None})

    def flat(self) -> dict[str, float]:
        """Final and best metrics in one mapping (`best/checkpoint`, a file name, left out)."""
        return {**self.metrics, **{k: v for k, v in self.best.items() if k != "best/checkpoint"}}


def run(
    cfg: DictConfig,
    record: dict | None = None,
    members: list[Member] | None = None,
    memory_budget: int | None = None,
) -> RunResult:
    """Train one configuration in `cfg.run_dir` and write its `metrics.json` (with `record` added).

    A directory holding this config's finished run is skipped; one holding its checkpoint resumes from it
    (see `overparam.rundir`). Every start writes metrics.json, a failure included. With `members` (a
    batched group; `run.ensemble=S` makes its own) `cfg.run_dir` is the group's directory and every member
    is also written to its own, as its single run would be; their stacked model may need `memory_budget`.
    """
    validate(cfg)
    members = members or seed_members(cfg)
    for member in members:  # a batched group's members differ from `cfg` in their own values
        validate(member.cfg)
    run_dir = Path(cfg.run_dir)
    config = OmegaConf.to_container(cfg, resolve=False)
    with rundir.claimed(run_dir, config) as plan:
        if plan.action == "skip":
            print(f"skipped: {run_dir} already holds a {plan.previous['status']} run of this config")
            return RunResult.from_record(plan.previous)
        print_start(cfg, run_dir)
        parts: Components | None = None
        outcome, started = {"status": "completed", "steps": 0}, time.time()
        try:
            member_cfgs = [member.cfg for member in members]
            parts = assemble(cfg, plan.action == "resume", member_cfgs, memory_budget)
            if parts.unstable:
                raise Diverged(parts.unstable, step=0, last_finite=None)
            parts.trainer.fit(
                parts.module, datamodule=parts.data, ckpt_path=plan.ckpt_path or cfg.get("ckpt_path")
            )
            outcome.update(evaluate(parts.trainer, parts.module, parts.data))
        except Diverged as error:
            outcome.update(status="diverged", error=str(error), diverged_at_step=error.step)
            outcome["last_finite_loss"] = error.last_finite
            print(f"diverged: {error}", file=sys.stderr)
        except BaseException as error:
            stopped = isinstance(error, (KeyboardInterrupt, SystemExit))  # Ctrl-C, SIGTERM (preemption)
            outcome.update(
                status="stopped" if stopped else "failed", error=str(error) or type(error).__name__
            )
            if isinstance(error, SIGTERMException):  # exit as a terminated process does, not with status 0
                raise SystemExit(128 + signal.SIGTERM) from error
            raise
        finally:
            if parts is not None:
                outcome.update(parts.record())
            seconds = plan.seconds_before + time.time() - started  # every attempt's time
            outcome.update(seconds=round(seconds, 3), config=config, **(record or {}))
            if not rundir.is_secondary_rank():
                rundir.write_json(run_dir / "metrics.json", outcome)
            if parts is not None:
                loggers.finish(parts.loggers, outcome["status"])
            if outcome["status"] in ("stopped", "failed"):
                print_end(run_dir, outcome["status"])
    report(parts, run_dir, outcome, members)
    return RunResult.from_record(outcome)


def report(parts: Components | None, run_dir: Path, outcome: dict, members: list[Member]) -> None:
    """A group's members get run directories of their own; a single run prints its table; every run
    says where its files are."""
    if parts is not None and parts.members > 1:
        if outcome["status"] == "completed":  # a member of a group that stopped may not have stopped alone
            write_members(run_dir, outcome, members)
    elif parts is not None and outcome["status"] == "completed":
        print_report(outcome["metrics"], parts.data.group_names, outcome["best"], parts.data.regression)
    print_end(run_dir, outcome["status"])
