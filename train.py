"""Hydra entry point: `python train.py [overrides]` or `python train.py -m [sweep]`."""

import hydra
from omegaconf import DictConfig

from overparam.entry import main


@hydra.main(config_path="conf", config_name="train", version_base="1.3")
def entry(cfg: DictConfig) -> float | None:
    return main(cfg)


if __name__ == "__main__":
    entry()
