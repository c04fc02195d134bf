"""A one-node SLURM cluster on localhost, owned by the process that starts it.

munged, slurmctld and slurmd run as background daemons with every file (key, sockets, state, spool, logs,
pid files) in one folder and ports chosen free, so the cluster touches nothing system-wide and several can
coexist. The tests use it through `LocalSlurm`; a user can start one to try `hydra/launcher=slurm`:

    python tests/cluster/local_slurm.py start /tmp/slurm   # prints the export line for SLURM_CONF
    python tests/cluster/local_slurm.py stop /tmp/slurm
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

NODE = "localnode"
PARTITION = "debug"
DAEMONS = ("slurmd", "slurmctld", "munged")  # stopped in this order
COMMANDS = ("munged", "slurmctld", "slurmd", "sbatch", "srun", "scontrol", "squeue", "sinfo", "scancel")


class ClusterUnavailable(RuntimeError):
    """SLURM is not installed here, or its daemons cannot start (the sentence says which)."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def memory_mb() -> int:
    """What slurmd will find on this machine (a node configured with more is drained)."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024 * 9 // 10
    return 1024


def slurm_conf(folder: Path, cpus: int) -> str:
    host = socket.gethostname().split(".")[0]
    return f"""\
ClusterName=overparam
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={folder}/munge.socket
CredType=cred/munge
StateSaveLocation={folder}/state
SlurmdSpoolDir={folder}/spool
SlurmctldPidFile={folder}/slurmctld.pid
SlurmdPidFile={folder}/slurmd.pid
SlurmctldLogFile={folder}/slurmctld.log
SlurmdLogFile={folder}/slurmd.log
# cgroups off: processes are tracked by their parents, tasks are not confined
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
ReturnToService=2
MpiDefault=none
SwitchType=switch/none
KillWait=10
NodeName={NODE} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb()} State=UNKNOWN
PartitionName={PARTITION} Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


class LocalSlurm:
    """Start with `start()`, use `env` for every SLURM client (sbatch, submitit), `stop()` at the end."""

    def __init__(self, folder: Path, cpus: int | None = None) -> None:
        self.folder = Path(folder)
        self.cpus = cpus or os.cpu_count() or 1
        self.conf = self.folder / "slurm.conf"

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def command(self, *args: str, check: bool = True) -> str:
        result = subprocess.run(args, env=self.env, capture_output=True, text=True, timeout=60)
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout.strip()

    def start(self, timeout: float = 60) -> LocalSlurm:
        missing = [name for name in COMMANDS if shutil.which(name) is None]
        if missing:
            raise ClusterUnavailable(
                f"SLURM is not installed ({', '.join(missing)} missing): apt-get install slurm-wlm munge"
            )
        if os.geteuid() != 0:
            raise ClusterUnavailable("slurmd launches jobs as their user and must run as root here")
        for sub in ("state", "spool"):
            (self.folder / sub).mkdir(parents=True, exist_ok=True)
        self.folder.chmod(0o700)  # munged refuses a key or socket in a folder others can write to
        key = self.folder / "munge.key"
        key.write_bytes(secrets.token_bytes(1024))
        key.chmod(0o400)
        self.conf.write_text(slurm_conf(self.folder, self.cpus))
        f = self.folder
        self.daemon(
            "munged",
            f"--key-file={key}",
            f"--socket={f}/munge.socket",
            f"--pid-file={f}/munged.pid",
            f"--log-file={f}/munged.log",
            f"--seed-file={f}/munge.seed",
            "--force",
        )
        self.daemon("slurmctld", "-f", str(self.conf), "-i")
        self.daemon("slurmd", "-f", str(self.conf), "-N", NODE)
        deadline = time.time() + timeout
        while time.time() < deadline:
            state = self.command("sinfo", "-h", "-n", NODE, "-o", "%T", check=False)
            if state == "idle":
                return self
            time.sleep(0.5)
        self.stop()
        raise ClusterUnavailable(f"the node did not become idle in {timeout:.0f} s (last state {state!r})")

    def daemon(self, name: str, *args: str) -> None:
        """Start a daemon (it forks into the background) and wait for its pid file."""
        result = subprocess.run([name, *args], env=self.env, capture_output=True, text=True, timeout=60)
        pid_file, deadline = self.folder / f"{name}.pid", time.time() + 10
        while result.returncode == 0 and not pid_file.exists() and time.time() < deadline:
            time.sleep(0.1)
        if result.returncode != 0 or not pid_file.exists():
            log = self.folder / f"{name}.log"
            lines = log.read_text().splitlines() if log.exists() else [result.stderr]
            errors = [line for line in lines if "error" in line.lower()] or lines or ["no message"]
            self.stop()
            raise ClusterUnavailable(f"{name} did not start: {errors[-1].strip()}")

    def stop(self) -> None:
        """Cancel every job, then stop the daemons this object started (by the pids they wrote)."""
        if self.conf.exists() and shutil.which("scancel"):
            subprocess.run(
                ["scancel", "--full", "--user=root"], env=self.env, capture_output=True, timeout=60
            )
        for name in DAEMONS:
            pid_file = self.folder / f"{name}.pid"
            if not pid_file.exists():
                continue
            pid = int(pid_file.read_text().split()[0])
            stop_process(pid)
            pid_file.unlink(missing_ok=True)

    # ---- what the tests ask of the scheduler ---------------------------------------------------------

    def jobs(self) -> list[dict[str, str]]:
        """The queue: one {id, array_id, state, reason, restarts} per job (array tasks as `<array>_<k>`)."""
        lines = self.command("squeue", "-h", "-o", "%i|%F|%T|%r").splitlines()
        keys = ("id", "array_id", "state", "reason")
        return [dict(zip(keys, line.split("|"))) for line in lines if line]

    def release_requeued(self) -> None:
        """Requeued jobs wait for a begin time ~2 minutes ahead; start them now."""
        for job in self.jobs():
            if job["state"] == "PENDING" and job["reason"] == "BeginTime":
                self.command("scontrol", "update", f"jobid={job['id']}", "StartTime=now", check=False)

    def restarts(self, job_id: str) -> int:
        shown = self.command("scontrol", "show", "job", job_id)
        return int(shown.split("Restarts=", 1)[1].split()[0])


def stop_process(pid: int, grace: float = 10) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.time() + grace
    while time.time() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)


if __name__ == "__main__":
    action, folder = sys.argv[1], Path(sys.argv[2])
    cluster = LocalSlurm(folder)
    if action == "start":
        cluster.start()
        print(f"export SLURM_CONF={cluster.conf}")
    elif action == "stop":
        cluster.stop()
    else:
        sys.exit(f"usage: {sys.argv[0]} start|stop <folder>")
