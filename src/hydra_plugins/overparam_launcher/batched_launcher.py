"""`hydra/launcher=batched`: a sweep's jobs that differ only in batchable keys train as one stacked model
in this process; the others run one after another here, as Hydra's basic launcher runs them.

Each job still gets its own directory with what its single run writes (`.hydra/`, `metrics.json`,
`metrics.csv`); the group trains in `<sweep dir>/.batched/<group>/` (its checkpoint, its combined log).
A job whose directory holds a finished run, or is in use, leaves its group and is skipped or refused as
usual; a group that cannot be stacked (a callback that reads one network, a member diverging) runs its
jobs one after another, with the reason printed once.
"""

import contextlib
import copy
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml
from hydra._internal.config_loader_impl import get_overrides_dirname
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import (
    JobReturn,
    JobRuntime,
    JobStatus,
    configure_log,
    filter_overrides,
    run_job,
    setup_globals,
)
from hydra.plugins.launcher import Launcher
from omegaconf import DictConfig, OmegaConf, open_dict, read_write
from omegaconf._utils import get_omega_conf_dumper

log = logging.getLogger(__name__)


@dataclass
class BatchedLauncherConf:
    _target_: str = "hydra_plugins.overparam_launcher.batched_launcher.BatchedLauncher"
    max_members: int = 64  # the largest stacked group; a larger one is split
    memory_gib: float | None = None  # what a stacked group may use; by default 80% of what is free


ConfigStore.instance().store(
    group="hydra/launcher", name="batched", node=BatchedLauncherConf, provider="overparam"
)


class BatchedLauncher(Launcher):
    def __init__(self, max_members: int = 64, memory_gib: float | None = None) -> None:
        self.max_members = max_members
        self.memory_budget = None if memory_gib is None else int(memory_gib * 2**30)
        self.config = self.hydra_context = self.task_function = None
        self.hydra_views: dict[int, DictConfig] = {}  # each job's hydra node, as HydraConfig holds it

    def setup(self, *, hydra_context, task_function, config: DictConfig) -> None:
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function
        self.composed = remember_compositions(hydra_context.config_loader)

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from overparam.batched.grouping import group_jobs, shared_settings

        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        configs = []
        for index, overrides in enumerate(job_overrides):
            sweep_config = self.composed.pop(tuple(overrides), None)
            if sweep_config is None:
                sweep_config = self.hydra_context.config_loader.load_sweep_config(
                    self.config, list(overrides)
                )
            with open_dict(sweep_config):
                sweep_config.hydra.job.id = sweep_config.hydra.job.num = initial_job_idx + index
            configs.append(sweep_config)
        settings = []
        for index, sweep_config in enumerate(configs):
            HydraConfig.instance().set_config(sweep_config)
            self.hydra_views[index] = HydraConfig.instance().cfg  # its copy of the job's hydra node
            settings.append(shared_settings(sweep_config))
        groups, splitting = group_jobs(settings, self.max_members)
        stacked = sum(len(group) for group in groups if len(group) > 1)
        summary = f"batched launcher: {len(configs)} jobs, {stacked} of them in {len(groups)} group(s)"
        print(summary + (f" ({', '.join(splitting)} differs)" if splitting else ""))
        returns: dict[int, JobReturn] = {}
        for group in groups:
            if len(group) > 1:
                returns.update(self.run_group([(index, configs[index]) for index in group]))
            for index in group:
                if index not in returns:
                    returns[index] = self.run_alone(
                        configs[index], job_overrides[index], initial_job_idx + index
                    )
        self.composed.clear()  # what the sweeper composed for this batch and no job took
        return [returns[index] for index in range(len(configs))]

    def run_alone(self, sweep_config: DictConfig, overrides, number: int) -> JobReturn:
        log.info(f"\t#{number} : {' '.join(filter_overrides(overrides))}")
        returned = run_job(
            hydra_context=self.hydra_context,
            task_function=self.task_function,
            config=sweep_config,
            job_dir_key="hydra.sweep.dir",
            job_subdir_key="hydra.sweep.subdir",
        )
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        return returned

    def run_group(self, group: list[tuple[int, DictConfig]]) -> dict[int, JobReturn]:
        """Train the group's jobs as one stacked model; {index: JobReturn} of those it trained (the rest
        run alone: finished, in use, or the whole group when it cannot be stacked). A group too large for
        the memory is split into groups that fit."""
        from overparam import rundir
        from overparam.batched.grouping import StructureDiffers, stacking_refusal
        from overparam.batched.memory import GroupTooLarge
        from overparam.batched.stack import run_stacked
        from overparam.entry import quiet_process
        from overparam.errors import InputError

        refusal = stacking_refusal(group[0][1])
        if refusal:
            print(f"batched launcher: not stacked ({refusal}); its {len(group)} jobs run one after another")
            return {}
        prepared = [(index, *self.prepare(index, sweep_config)) for index, sweep_config in group]
        with contextlib.ExitStack() as held:
            ready = []
            for index, cfg, returned in prepared:
                run_dir = Path(cfg.run_dir)
                if rundir.holds_finished_run(run_dir):
                    continue
                lock = rundir.RunLock(run_dir)
                try:
                    lock.acquire()
                except rundir.DirectoryInUse:
                    continue
                held.callback(lock.release)
                ready.append((index, cfg, returned))
            if len(ready) < 2:
                return {}
            configs = [cfg for _, cfg, _ in ready]
            names = sorted(Path(cfg.run_dir).name for cfg in configs)
            digest = hashlib.sha1("\n".join(names).encode()).hexdigest()[:12]
            group_dir = Path(str(self.config.hydra.sweep.dir)) / ".batched" / digest
            print(f"batched launcher: {len(configs)} jobs as one stacked model in {group_dir}")
            self.log_to(str(group_dir), ready[0][2].hydra_cfg)
            quiet_process()
            structure_differs = too_large = None
            try:
                result = run_stacked(configs, group_dir, memory_budget=self.memory_budget)
            except StructureDiffers as error:
                structure_differs = error
            except GroupTooLarge as error:
                too_large = error
            except InputError as error:
                print(
                    f"batched launcher: not stacked ({error}); its {len(configs)} jobs run one after another"
                )
                return {}
            finally:
                configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
            if structure_differs is None and too_large is None and result.status != "completed":
                print(f"batched launcher: the stacked group {result.status}; its jobs run one after another")
                return {}
        # the jobs' directories are released: each smaller group claims its own
        if structure_differs is not None:
            shutil.rmtree(group_dir)  # it holds only the failed start
            return self.split_by(group, [index for index, _, _ in ready], structure_differs.key)
        if too_large is not None:
            return self.split(group, [index for index, _, _ in ready], too_large)
        returns, sweep_configs = {}, dict(group)
        for index, cfg, returned in ready:
            record = json.loads((Path(cfg.run_dir) / "metrics.json").read_text())
            flat = {**record.get("metrics", {}), **record.get("best", {})}
            returned.return_value = float(flat.get(cfg.get("objective", ""), float("nan")))
            returned.status = JobStatus.COMPLETED
            # Hydra's callbacks see each job start and end once, whether it trained stacked or alone.
            callbacks, job_config = self.hydra_context.callbacks, sweep_configs[index]
            callbacks.on_job_start(config=job_config, task_function=self.task_function)
            callbacks.on_job_end(config=job_config, job_return=returned)
            returns[index] = returned
        return returns

    def split_by(
        self, group: list[tuple[int, DictConfig]], ready: list[int], key: str
    ) -> dict[int, JobReturn]:
        by_value: dict[str, list[tuple[int, DictConfig]]] = {}
        for index, sweep_config in group:
            if index in ready:
                value = repr(OmegaConf.select(sweep_config, key))
                by_value.setdefault(value, []).append((index, sweep_config))
        print(
            f"batched launcher: {key} changes the network's structure, so those {len(ready)} jobs split "
            f"into {len(by_value)} groups"
        )
        returns = {}
        for jobs in by_value.values():
            if len(jobs) > 1:
                returns.update(self.run_group(jobs))
        return returns

    def split(self, group: list[tuple[int, DictConfig]], ready: list[int], too_large) -> dict[int, JobReturn]:
        if too_large.fits < 2:
            print(f"batched launcher: {too_large}; its {len(ready)} jobs run one after another")
            return {}
        print(f"batched launcher: {too_large}; split into groups of {too_large.fits}")
        jobs = [(index, sweep_config) for index, sweep_config in group if index in ready]
        returns = {}
        for start in range(0, len(jobs), too_large.fits):
            returns.update(self.run_group(jobs[start : start + too_large.fits]))
        return returns

    @staticmethod
    def log_to(run_dir: str, hydra_cfg: DictConfig) -> None:
        """The job logging a run gets from Hydra (console warnings, its `train.log`), for the group's
        directory."""
        hydra_cfg = copy.deepcopy(hydra_cfg)
        with read_write(hydra_cfg.hydra.runtime), open_dict(hydra_cfg.hydra.runtime):
            hydra_cfg.hydra.runtime.output_dir = run_dir
        HydraConfig.instance().set_config(hydra_cfg)
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        configure_log(hydra_cfg.hydra.job_logging, hydra_cfg.hydra.verbose)

    def prepare(self, index: int, sweep_config: DictConfig) -> tuple[DictConfig, JobReturn]:
        """The job's directory and `.hydra/` files, as Hydra's `run_job` writes them for a job it runs (the
        same three files, without running anything: a stacked group's jobs train together later), and the
        job's config with `run_dir` set to that directory (its other `${hydra:...}` values are resolved
        later against the group's first job, which shares them)."""
        # The job's own ${hydra:...} (its directory's name) resolve against the copy of its hydra node that
        # `launch` had Hydra make, which is also what hydra.yaml holds (a second copy per job cost a tenth
        # of a second per 64 jobs).
        hydra_cfg = HydraConfig.instance().cfg = self.hydra_views[index]
        hydra = sweep_config.hydra
        output_dir = os.path.abspath(os.path.join(str(hydra.sweep.dir), str(hydra.sweep.subdir)))
        for node in (hydra, hydra_cfg.hydra):
            with read_write(node.runtime), open_dict(node.runtime):
                node.runtime.output_dir = output_dir
        task_cfg = task_part(sweep_config)
        files = Path(output_dir) / str(hydra.output_subdir or "")
        files.mkdir(parents=True, exist_ok=True)
        if hydra.output_subdir is not None:
            written = {"config.yaml": task_cfg, "hydra.yaml": hydra_cfg}
            for name, node in {**written, "overrides.yaml": hydra.overrides.task}.items():
                (files / name).write_text(to_yaml(node), encoding="utf-8")
        returned = JobReturn(
            overrides=OmegaConf.to_container(hydra.overrides.task),
            cfg=task_cfg,
            hydra_cfg=hydra_cfg,
            working_dir=os.getcwd(),
            task_name=JobRuntime.instance().get("name"),
        )
        with open_dict(task_cfg):
            task_cfg.run_dir = output_dir
        return task_cfg, returned


def remember_compositions(config_loader) -> dict[tuple, DictConfig]:
    """Hydra's sweeper composes every job of a batch to validate it, then hands the batch to the launcher,
    which composes it again (0.2–0.3 s a job, more than a small job trains): keep what the sweeper
    composed, by the job's overrides, for the launcher to take. Jobs that choose the same config groups
    and set the same keys are composed once (`ValueOverrides`)."""
    composed: dict[tuple, DictConfig] = {}
    compose = ValueOverrides(config_loader)

    def load_sweep_config(master_config: DictConfig, sweep_overrides: list[str]) -> DictConfig:
        sweep_config = compose(master_config, sweep_overrides)
        composed[tuple(sweep_overrides)] = sweep_config
        return sweep_config

    config_loader.load_sweep_config = load_sweep_config
    return composed


class ValueOverrides:
    """Hydra's `load_sweep_config`, composing once per shape of a job's overrides: the same config group
    choices and the same keys set to plain values in the same order (`seed=3`, `optim.lr=0.01`). Another
    job of that shape is the first one's config with its own values put in, as Hydra applies them (its
    task overrides and `override_dirname` recorded likewise); any other override (a `+`, a `~`, a `hydra.`
    key, a list or dict value) is composed by Hydra itself."""

    def __init__(self, config_loader) -> None:
        from hydra.core.override_parser.overrides_parser import OverridesParser

        self.compose = config_loader.load_sweep_config
        self.groups = config_loader.repository.group_exists
        self.parser = OverridesParser.create()
        self.composed: dict[tuple, DictConfig] = {}

    def plain_value(self, override) -> bool:
        return (
            not (override.is_delete() or override.is_add() or override.is_force_add())
            and override.package is None
            and not override.is_hydra_override()
            and not self.groups(override.key_or_group)
            and not isinstance(override.value(), (dict, list))
        )

    def __call__(self, master_config: DictConfig, sweep_overrides: list[str]) -> DictConfig:
        parsed = self.parser.parse_overrides(list(sweep_overrides))
        values = [o for o in parsed if self.plain_value(o)]
        shape = tuple(o.key_or_group if o in values else o.input_line for o in parsed)
        first = self.composed.get(shape)
        if not values or first is None:
            sweep_config = self.compose(master_config, sweep_overrides)
            if values:
                self.composed[shape] = sweep_config
            return copy.deepcopy(sweep_config) if values else sweep_config
        sweep_config = copy.deepcopy(first)
        for override in values:
            OmegaConf.update(sweep_config, override.key_or_group, override.value(), merge=True)
        task = [o for o in parsed if not o.is_hydra_override()]
        job = sweep_config.hydra.job
        with read_write(sweep_config.hydra), open_dict(sweep_config.hydra):
            sweep_config.hydra.overrides.task = [o.input_line for o in task]
            job.override_dirname = get_overrides_dirname(
                overrides=task,
                kv_sep=job.config.override_dirname.kv_sep,
                item_sep=job.config.override_dirname.item_sep,
                exclude_keys=job.config.override_dirname.exclude_keys,
            )
        return sweep_config


class YamlDumper(getattr(yaml, "CDumper", yaml.Dumper)):  # PyYAML may be built without libyaml
    """OmegaConf's YAML dumper (its quoting of strings that read as numbers or booleans) on libyaml's
    emitter, about 4× faster. The files load to what `OmegaConf.to_yaml` writes; only the folding of long
    quoted strings (Hydra's help text in hydra.yaml) differs."""


YamlDumper.add_representer(str, get_omega_conf_dumper().str_representer)


def to_yaml(cfg: DictConfig) -> str:
    container = OmegaConf.to_container(cfg, resolve=False, enum_to_str=True)
    return yaml.dump(
        container, Dumper=YamlDumper, default_flow_style=False, allow_unicode=True, sort_keys=False
    )


def task_part(sweep_config: DictConfig) -> DictConfig:
    """A copy of the job's config without its hydra node (as Hydra's `run_job` makes it). The hydra node
    is not copied only to be deleted: the memo hands deepcopy the node itself, which is then dropped."""
    hydra = sweep_config.hydra
    cfg = copy.deepcopy(sweep_config, memo={id(hydra): hydra})
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg
