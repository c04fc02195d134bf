"""overparam: reweighting and implicit bias in overparameterized networks (Hydra + Lightning)."""

__version__ = "0.1.0"
