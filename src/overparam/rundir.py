"""A run directory is a run's identity: restarting into it resumes, a finished run in it is never redone.

`claimed(run_dir, config)` holds the directory for one process while the run lives, and `prepare` decides
what a (re)started job does:
- the directory holds a finished run (metrics.json says completed or diverged): skip it, report its result;
- it holds a started run of another config: refuse (nothing in it is touched);
- it holds `checkpoints/last.ckpt`: resume from it, dropping the curve rows logged after that checkpoint;
- otherwise start afresh (an earlier attempt's metrics.json and metrics.csv are kept as metrics.attempt<k>.*).
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from overparam.errors import ConfigError

FINAL_STATUSES = ("completed", "diverged")
LAST_CHECKPOINT = Path("checkpoints") / "last.ckpt"
# Keys that may change between attempts without changing what is computed.
COSMETIC_PREFIXES = (
    "run_dir",
    "ckpt_path",
    "logger",
    "callbacks.progress",
    "trainer.enable_progress_bar",
    "data.cache_dir",  # the decoded images are keyed by their files, wherever the cache is
    "hydra",
)


@dataclass
class Plan:
    action: str  # "skip" | "resume" | "start"
    ckpt_path: str | None = None
    previous: dict | None = None  # the finished run's metrics.json, when skipping
    seconds_before: float = 0.0  # training time of earlier attempts up to the checkpoint resumed from


def write_json(path: Path, payload: dict) -> None:
    """Write atomically: a reader never sees half a file."""
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True))
    os.replace(tmp, path)


def flatten(tree, prefix: str = "") -> dict:
    if isinstance(tree, dict):
        items = {}
        for key, value in tree.items():
            items.update(flatten(value, f"{prefix}{key}."))
        return items
    return {prefix[:-1]: tree}


def config_changes(before: dict, after: dict) -> list[str]:
    """`key: old → new` for every setting that differs, ignoring the cosmetic ones."""
    old, new = flatten(before), flatten(after)
    changed = []
    for key in sorted(set(old) | set(new)):
        if key.startswith(COSMETIC_PREFIXES) or old.get(key, "<unset>") == new.get(key, "<unset>"):
            continue
        changed.append(f"{key}: {old.get(key, '<unset>')} → {new.get(key, '<unset>')}")
    return changed


class DirectoryInUse(ConfigError):
    """Another live process holds the run directory."""


class RunLock:
    """An exclusive `flock` on `<run_dir>/run.lock` with the holder's pid, host and start time in it.

    The OS releases it when the holder exits or is killed (even by SIGKILL), so a crash never blocks a
    resume. Written with fcntl rather than `filelock` because filelock truncates the file when it tries a
    held lock, which would erase the holder a refused process names.
    """

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / "run.lock"
        self.fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 4096).decode(errors="replace")
            os.close(fd)
            raise DirectoryInUse(
                f"{self.path.parent} is in use by {describe_holder(holder)}; wait for it to "
                "finish or choose another hydra.run.dir"
            ) from None
        os.ftruncate(fd, 0)
        started = time.strftime("%Y-%m-%d %H:%M:%S")
        os.write(
            fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": started}).encode()
        )
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


def describe_holder(text: str) -> str:
    try:
        holder = json.loads(text)
        return f"process {holder['pid']} on {holder['host']} (started {holder['started']})"
    except (ValueError, KeyError, TypeError):
        return "another process"


def is_secondary_rank() -> bool:
    """Whether this process is a further rank of a multi-process run (Lightning's DDP launcher and SLURM
    start one process per device with the same command): the first rank owns the run directory."""
    return any(int(os.environ.get(name, "0") or 0) > 0 for name in ("LOCAL_RANK", "RANK", "SLURM_PROCID"))


def plan_of_rank(run_dir: Path) -> Plan:
    """What a further rank does, read from the directory its first rank prepared (it writes nothing)."""
    checkpoint = run_dir / LAST_CHECKPOINT
    return Plan("resume", ckpt_path=str(checkpoint)) if checkpoint.exists() else Plan("start")


@contextlib.contextmanager
def claimed(run_dir: Path, config: dict) -> Iterator[Plan]:
    """Hold `run_dir` for this process (a second one is refused before anything is written) and say what
    to do in it; the lock is released when the block ends. A further rank of the same run neither locks
    nor writes: it follows its first rank."""
    if is_secondary_rank():
        yield plan_of_rank(run_dir)
        return
    lock = RunLock(run_dir)
    lock.acquire()
    try:
        yield prepare(run_dir, config)
    finally:
        lock.release()


def prepare(run_dir: Path, config: dict) -> Plan:
    """What to do in `run_dir` for `config` (the unresolved config as a plain dict)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    metrics_path, started_path = run_dir / "metrics.json", run_dir / "started.json"
    previous = json.loads(metrics_path.read_text()) if metrics_path.exists() else None
    started = json.loads(started_path.read_text()) if started_path.exists() else None
    recorded = (previous or started or {}).get("config")
    if recorded is not None:
        changes = config_changes(recorded, config)
        if changes:
            raise ConfigError(
                f"{run_dir} already holds a run of another config ({'; '.join(changes[:3])}); "
                "restart it with its own overrides or choose a new hydra.run.dir"
            )
    if previous is not None and previous.get("status") in FINAL_STATUSES:
        return Plan("skip", previous=previous)
    attempt = (started or {}).get("attempt", 0) + 1
    if previous is not None:  # a failed or stopped attempt: keep its record
        os.replace(metrics_path, run_dir / f"metrics.attempt{attempt - 1}.json")
    write_json(started_path, {"attempt": attempt, "config": config})
    checkpoint = run_dir / LAST_CHECKPOINT
    if checkpoint.exists():
        import torch  # here only: importing the package (its config resolvers) must not cost torch's import

        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        keep_rows(run_dir / "metrics.csv", state.get("csv_rows", 0))
        return Plan("resume", ckpt_path=str(checkpoint), seconds_before=float(state.get("seconds", 0.0)))
    if (run_dir / "metrics.csv").exists():  # an attempt that ended before its first checkpoint
        os.replace(run_dir / "metrics.csv", run_dir / f"metrics.attempt{attempt - 1}.csv")
    return Plan("start")


def holds_finished_run(run_dir: Path) -> bool:
    """Whether `run_dir` holds a run that `prepare` would skip (completed or diverged)."""
    path = run_dir / "metrics.json"
    return path.exists() and json.loads(path.read_text()).get("status") in FINAL_STATUSES


def record_failure(run_dir: Path, config: dict, error: str) -> None:
    """metrics.json of a job that could not start (a bad value in its config), unless the directory
    already holds a record: that one is kept."""
    metrics_path = run_dir / "metrics.json"
    if not metrics_path.exists():
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json(
            metrics_path, {"status": "failed", "error": error, "steps": 0, "seconds": 0.0, "config": config}
        )


def keep_rows(path: Path, count: int) -> None:
    """Keep the first `count` curve rows (those logged before the checkpoint); the resumed run logs the
    rest again."""
    if not path.exists():
        return
    with path.open(newline="") as file:
        reader = csv.DictReader(file)
        fields, rows = reader.fieldnames or [], list(reader)[:count]
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)
