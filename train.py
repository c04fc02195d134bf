"""Hydra entry point: `python train.py [overrides]` or `python train.py -m [sweep]`."""

import os
import sys

import hydra
from hydra.errors import HydraException
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from overparam.settings import sentence, switched_off  # importing the package registers the config schema

composed: list[bool] = []  # set once Hydra has composed the config and the run begins


@hydra.main(config_path="conf", config_name="train", version_base="1.3")
def entry(cfg: DictConfig) -> float | None:
    composed.append(True)
    # Imported once Hydra has composed: a config it cannot compose is reported without torch's and
    # Lightning's imports (seconds).
    from overparam.entry import main

    return main(cfg)


if __name__ == "__main__":
    # Hydra reports a config it cannot compose in several lines; let its error through to say it in one.
    os.environ.setdefault("HYDRA_FULL_ERROR", "1")
    try:
        entry()
    # OmegaConf asserts, or fails on an attribute, when an override sets keys under a null node (an optional
    # step left off): `switched_off` names it; any other such error goes on as it is.
    except (HydraException, OmegaConfBaseException, AssertionError, AttributeError) as error:
        message = sentence(error) or (None if composed else switched_off(error, sys.argv[1:]))
        if message is None:
            raise
        sys.exit(f"error: {message}")
