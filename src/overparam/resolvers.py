"""The OmegaConf resolvers `conf/` uses for names: the experiment's name, a sweep job's directory name
and its W&B group. Registered when the package is imported (train.py imports it before Hydra composes)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import OmegaConf

from overparam.rundir import COSMETIC_PREFIXES


def chosen_experiment(default: str, *, _root_) -> str:
    """The `experiment` option this run composed (`default` when none was chosen, or outside Hydra): from
    the config's own `hydra` node where it has one (the sweep directory), else from the job's."""
    hydra = _root_.get("hydra") if "hydra" in _root_ else None
    if hydra is None and HydraConfig.initialized():
        hydra = HydraConfig.get()
    choices = hydra.runtime.choices if hydra is not None else {}
    return choices.get("experiment") or default


def short_hash(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:6]


def job_dirname(overrides) -> str:
    """A sweep job's directory: its overrides as `key=value`, sorted, flat and short. Settings that do not
    change the result (logger, progress, cache paths...) stay out, so turning W&B on finds the same jobs;
    a path becomes its last part, a long number 4 significant digits and a long name its first 200
    bytes, with a hash of the exact overrides appended when anything was shortened (they are all in
    `.hydra/overrides.yaml`)."""
    parts, exact, shortened = [], [], False
    for item in overrides:
        key, _, value = item.partition("=")
        name = key.lstrip("+~")
        if name.startswith(COSMETIC_PREFIXES) or name == "experiment" or key.startswith("~"):
            continue  # (the sweep directory is named after the experiment)
        exact.append(f"{name}={value}")
        if "/" in value:
            value, shortened = Path(value.rstrip("/")).name or "root", True
        elif len(value) > 8 and is_number(value):
            value, shortened = f"{float(value):.4g}", True
        parts.append(f"{name}={value}")
    name = ",".join(sorted(parts))
    if len(name) > MAX_DIRNAME:  # file systems refuse names over 255 bytes
        name, shortened = name.encode()[:MAX_DIRNAME].decode(errors="ignore"), True
    if shortened:
        name += f",{short_hash(','.join(sorted(exact)))}"
    return name or "defaults"


MAX_DIRNAME = 200


def is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def sweep_group() -> str | None:
    """A sweep's W&B group (its directory); a single run belongs to none."""
    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        return str(HydraConfig.get().sweep.dir)
    return None


def option_help() -> str:
    """Every config group under the primary config directory, each option with the first line of its
    YAML header comment (what `python train.py --help` lists)."""
    sources = HydraConfig.get().runtime.config_sources if HydraConfig.initialized() else []
    folders = [
        Path(source.path) for source in sources if source.provider == "main" and source.schema == "file"
    ]
    if not folders:
        return ""
    lines = []
    for group in sorted(p for p in folders[0].iterdir() if p.is_dir() and p.name != "hydra"):
        lines.append(f"{group.name}:")
        for option in sorted(group.glob("*.yaml")):
            lines.append(f"  {option.stem:<34} {first_comment(option)}".rstrip())
    return "\n".join(lines).replace("$", "$$")  # Hydra fills the help template with string.Template


def first_comment(path: Path) -> str:
    for line in path.read_text().splitlines():
        if line.startswith("#") and "@package" not in line:
            return line.lstrip("# ").strip()
        if line.strip() and not line.startswith("#"):
            break
    return ""


for name, resolver in (
    ("experiment_name", chosen_experiment),
    ("job_dirname", job_dirname),
    ("sweep_group", sweep_group),
    ("option_help", option_help),
):
    OmegaConf.register_new_resolver(name, resolver, replace=True)
