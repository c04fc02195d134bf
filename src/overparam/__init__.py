"""overparam: reweighting and implicit bias in overparameterized networks (Hydra + Lightning)."""

from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

__version__ = "0.1.0"


def chosen_experiment(default: str, *, _root_) -> str:
    """The `experiment` option this run composed (`default` when none was chosen, or outside Hydra): from
    the config's own `hydra` node where it has one (the sweep directory), else from the job's."""
    hydra = _root_.get("hydra") if "hydra" in _root_ else None
    if hydra is None and HydraConfig.initialized():
        hydra = HydraConfig.get()
    choices = hydra.runtime.choices if hydra is not None else {}
    return choices.get("experiment") or default


# `${experiment_name:<default>}` in conf/train.yaml: an experiment's name is the option it was chosen by.
OmegaConf.register_new_resolver("experiment_name", chosen_experiment, replace=True)

from overparam import settings  # noqa: E402, F401 - registers train_schema in Hydra's ConfigStore
