"""overparam: reweighting and implicit bias in overparameterized networks (Hydra + Lightning)."""

__version__ = "0.1.0"

# Importing the package registers what `conf/` needs: the config schema (train_schema) in Hydra's
# ConfigStore and the naming resolvers.
from overparam import resolvers, settings  # noqa: E402, F401
