"""overparam's Hydra plugins: the batched launcher."""
