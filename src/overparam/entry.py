"""The Hydra job: dispatch a composed config to a single run or to a procedure made of runs, print a bad
config as one sentence, and return the value a sweeper optimizes."""

from __future__ import annotations

import logging
import sys
import time
import warnings
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict

from overparam import rundir
from overparam.errors import ConfigError, InputError
from overparam.loggers import route_library_logs
from overparam.procedures.dfr import deep_feature_reweighting
from overparam.procedures.lr_search import monotone_learning_rate
from overparam.procedures.sigma_search import shrink_sigma
from overparam.run import RunResult, run
from overparam.rundir import DirectoryInUse
from overparam.validate import validate


def execute(cfg: DictConfig) -> RunResult:
    """What `python train.py <overrides>` does with one composed config."""
    validate(cfg)
    if cfg.get("sigma_search"):
        return run_procedure(cfg, shrink_sigma)
    if cfg.get("dfr") is not None:
        return run_procedure(cfg, deep_feature_reweighting)
    if cfg.get("lr_search"):
        if cfg.run.lr_scale is not None:
            raise ConfigError("lr_search chooses optim.lr itself: set run.lr_scale=null")
        searched = monotone_learning_rate(cfg)
        chosen = cfg.copy()
        with open_dict(chosen):
            chosen.optim.lr = searched["lr"]
        return run(chosen, record={"lr_search": searched})
    return run(cfg)


def run_procedure(cfg: DictConfig, procedure) -> RunResult:
    """A run made of runs (`procedure(cfg)` trains them in subdirectories); writes its own metrics.json,
    and is skipped as a whole once finished."""
    run_dir = Path(cfg.run_dir)
    config = OmegaConf.to_container(cfg, resolve=False)
    with rundir.claimed(run_dir, config) as plan:
        if plan.action == "skip":
            return RunResult.from_record(plan.previous)
        started = time.time()
        result = procedure(cfg)
        result.update(seconds=round(time.time() - started, 3), config=config)
        rundir.write_json(run_dir / "metrics.json", result)
    return RunResult.from_record(result)


def main(cfg: DictConfig) -> float:
    """Run the job; a config error ends it with one sentence (in a sweep, that job only, recorded as
    failed); a sweeper gets `cfg.objective` (NaN when the run diverged or failed, so a study records the
    trial instead of stopping)."""
    quiet_process()
    try:
        result = execute(cfg)
    except DirectoryInUse as error:
        if HydraConfig.get().mode != RunMode.MULTIRUN:
            sys.exit(f"error: {error}")
        print(f"refused: {error}", file=sys.stderr)  # another copy of this sweep runs the job: go on
        return float("nan")
    except InputError as error:  # a config value or a data file, named in one sentence
        if HydraConfig.get().mode != RunMode.MULTIRUN:
            sys.exit(f"error: {error}")
        # One job of a sweep: recorded as failed (the collector lists it, a rerun retries it) while its
        # siblings go on.
        rundir.record_failure(Path(cfg.run_dir), OmegaConf.to_container(cfg, resolve=False), str(error))
        print(f"error: {error}", file=sys.stderr)
        return float("nan")
    value = result.flat().get(cfg.get("objective", ""))
    return float("nan") if value is None else value


def quiet_process() -> None:
    """Library logs into the run's log file, and the warnings that say nothing about a run left out."""
    route_library_logs()
    # The CSV logger and the checkpoints share the run directory with Hydra's files on purpose, and a
    # resumed run finds its own checkpoints there.
    warnings.filterwarnings("ignore", message="Experiment logs directory .* exists and is not empty")
    warnings.filterwarnings("ignore", message="Checkpoint directory .* exists and is not empty")
    # In-memory splits are indexed in the main process (workers would only copy them); image datasets
    # set data.num_workers themselves.
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    # Epoch-level metrics are logged at every epoch's end whatever the step-logging interval.
    warnings.filterwarnings("ignore", message=".*is smaller than the logging interval.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*is deprecated")
    # On a machine with SLURM installed, a run started without srun is a local run, not a missed launch.
    warnings.filterwarnings("ignore", message="The `srun` command is available on your system")
    # torch.compile's C++ toolchain looks for CUDA even on a CPU build ("No CUDA runtime is found").
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
