"""The paper's remedy for a large initialization: shrink σ step by step while validation improves
(seed 003 §1.7, Sect. 5).

(a) train from θ0 with a standard σ' (the config's `model.sigma`, √2 = He in Eq. 1's parametrization);
(b) train again from the *same* raw draws with σ'' = `factor` · σ';
(c) if the validation loss improved by less than `tolerance` (relative), stop;
(d) otherwise repeat (b) with a smaller σ, until `max_rounds`, σ < `min_sigma`, or a round does not reach
    the stop loss within `max_step_ratio` times the steps of the first (training is impractically slow:
    at small σ the gradients vanish);
(e) return the trained network with the smallest validation loss.

Round k runs in `<run_dir>/round=<k>/` as an ordinary run. The procedure's own metrics.json holds the
chosen round's metrics and a `sigma_search` record of every round.
"""

from __future__ import annotations

import math
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from overparam.errors import ConfigError
from overparam.procedures import derived_config, stop_loss
from overparam.run import run


def shrink_sigma(cfg: DictConfig) -> dict:
    """Train the rounds; returns the procedure's metrics.json payload (without config and timing)."""
    search = OmegaConf.to_object(cfg.sigma_search)
    if not 0 < search.factor < 1:
        raise ConfigError(f"sigma_search.factor must be in (0, 1), got {search.factor}")
    threshold = stop_loss(cfg)
    rounds, sigma, reason = [], float(cfg.model.sigma), f"{search.max_rounds} rounds"
    for k in range(search.max_rounds):
        round_dir = Path(cfg.run_dir) / f"round={k}"
        changes = {"sigma_search": None, "model.sigma": sigma}
        if k > 0:  # (d): a round that needs more steps than this is impractically slow, so it is cut there
            budget = math.ceil(search.max_step_ratio * rounds[0]["steps"])
            changes["trainer.max_steps"] = min(budget, cfg.trainer.max_steps)
        result = run(derived_config(cfg, round_dir, **changes))
        metrics = result.metrics
        train_loss = metrics.get("train_eval/loss", metrics.get("train/loss"))
        converged = threshold is None or (train_loss is not None and train_loss < threshold)
        rounds.append(
            {
                "round": k,
                "sigma": sigma,
                "status": result.status if converged or result.status != "completed" else "not converged",
                "steps": result.steps,
                "monitor": metrics.get(search.monitor, float("inf")),
                "metrics": metrics,
            }
        )
        if rounds[k]["status"] != "completed":
            reason = (
                f"round {k} {rounds[k]['status']} (within {search.max_step_ratio:g}× the steps of round 0)"
            )
            break
        if k > 0 and rounds[k]["monitor"] > (1 - search.tolerance) * rounds[k - 1]["monitor"]:
            reason = f"{search.monitor} improved by less than {search.tolerance:.0%}"
            break
        sigma *= search.factor
        if sigma < search.min_sigma:
            reason = f"σ would fall below {search.min_sigma:g}"
            break
    finished = [r for r in rounds if r["status"] == "completed"]
    if not finished:
        error = f"round 0 (σ = {rounds[0]['sigma']:g}) {rounds[0]['status']}"
        return {"status": rounds[0]["status"], "error": error, "sigma_search": {"rounds": rounds}}
    chosen = min(finished, key=lambda r: r["monitor"])
    record = {"rounds": [{k: v for k, v in r.items() if k != "metrics"} for r in rounds]}
    record.update(chosen_round=chosen["round"], sigma=chosen["sigma"], stopped_because=reason)
    return {"status": "completed", "metrics": chosen["metrics"], "best": {}, "sigma_search": record}
