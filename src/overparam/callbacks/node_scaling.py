"""NodeScalingProbe: what seed 004 plots while a shallow net with node scales λ trains."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch

from overparam.data.base import whole


class NodeScalingProbe(L.Callback):
    """After every `training_step` (a chunk of full-batch GD steps: the log grid), logs

    - `probe/max_weight_change`: max_j ‖w_t,j − w_0,j‖ (feature learning happens in a few nodes), and
      `probe/max_relative_change`: the same divided by ‖w_0,j‖;
    - `probe/ntg_change`: ‖Θ̂_t − Θ̂_0‖₂ on the first `ntg_points` training points (float64), its square
      root (what the authors' figures plot), and `probe/ntg_change_fro`;
    - `probe/eig_min`: λ_min(Θ̂_t) on those points (Thm 4.1 keeps it ≥ γκ_n/4);
    - `probe/sign_flips`: the fraction of ReLU slopes σ'(Z_j(x_i)) changed since θ0 on the training set;
    - `probe/flow_time`: the gradient-flow time of the steps so far on L = ½Σ_i‖y_i − f(x_i)‖²: η·step
      for that loss (the paper's), 2η·step/(nC) for the mean squared error (the authors' code).

    With mini-batches it records every `every_n_steps` steps; `ntg_points=0` leaves the NTG out (CIFAR).
    At the end it writes `<dirpath>/node_scaling.pt`: steps, the per-node change at every logged step
    `(T, m)`, W_0, W_T, the scales and the output signs.
    """

    per_member = True  # run once per member of a stacked model (overparam.batched.member_callbacks)

    def __init__(self, dirpath: str, ntg_points: int = 50, every_n_steps: int = 1) -> None:
        self.path, self.ntg_points = Path(dirpath) / "node_scaling.pt", ntg_points
        self.every_n_steps = every_n_steps
        self.steps: list[int] = []
        self.changes: list[torch.Tensor] = []

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        net = pl_module.net
        train = whole(trainer.datamodule.train)
        self.x = train.x.flatten(1).to(pl_module.device, torch.float64)
        self.subset = self.x[: self.ntg_points]
        self.flow_per_step = flow_time_per_unit_step(pl_module, train.y)
        if not hasattr(self, "w0"):  # a resumed run restored W_0 from its checkpoint
            self.w0 = net.weight.detach().double().clone()
        self.slopes0 = self.slopes(net, self.x)
        self.ntg0 = self.ntg(net, self.subset) if self.ntg_points else None
        self.record(trainer, pl_module)

    @staticmethod
    def slopes(net, x):
        with torch.no_grad():
            return net.slopes(x)

    @staticmethod
    def ntg(net, x):
        with torch.no_grad():
            return net.ntg(x)

    def record(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        step = trainer.global_step
        if self.steps and self.steps[-1] == step:
            return
        net = pl_module.net
        weight = net.weight.detach().double()
        change = (weight - self.w0).norm(dim=1)
        lr = pl_module.learning_rate
        self.steps.append(step)
        self.changes.append(change.cpu())
        logs = {
            "probe/max_weight_change": change.max(),
            "probe/max_relative_change": (change / self.w0.norm(dim=1)).max(),
            "probe/sign_flips": (self.slopes(net, self.x) != self.slopes0).double().mean(),
            "probe/flow_time": torch.tensor(lr * step * self.flow_per_step),
        }
        if self.ntg_points:
            ntg = self.ntg(net, self.subset)
            difference = ntg - self.ntg0
            spectral = torch.linalg.matrix_norm(difference, ord=2)
            logs["probe/ntg_change"], logs["probe/ntg_change_sqrt"] = spectral, spectral.sqrt()
            logs["probe/ntg_change_fro"] = torch.linalg.matrix_norm(difference)
            logs["probe/eig_min"] = torch.linalg.eigvalsh(ntg)[0]
        if trainer.logger is not None and step > 0:
            pl_module.log_dict({k: v.float() for k, v in logs.items()}, on_step=True, on_epoch=False)
        self.last = {k: float(v) for k, v in logs.items()}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.num_training_batches == 1 or trainer.global_step % self.every_n_steps == 0:
            self.record(trainer, pl_module)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        net = pl_module.net
        self.path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(
            {
                "step": torch.tensor(self.steps),
                "weight_change": torch.stack(self.changes),
                "w0": self.w0.cpu(),
                "weight": net.weight.detach().double().cpu(),
                "scales": net.scales.double().cpu(),
                "output_signs": net.output_signs.double().cpu(),
                "final": self.last,
            },
            self.path,
        )

    def state_dict(self) -> dict:
        return {"steps": self.steps, "changes": self.changes, "w0": getattr(self, "w0", None)}

    def load_state_dict(self, state_dict: dict) -> None:
        self.steps, self.changes = list(state_dict["steps"]), list(state_dict["changes"])
        if state_dict.get("w0") is not None:
            self.w0 = state_dict["w0"]


def flow_time_per_unit_step(pl_module: L.LightningModule, y: torch.Tensor) -> float:
    """Gradient-flow time of one GD step with η = 1, relative to L = ½Σ_i ‖y_i − f(x_i)‖²."""
    from overparam.losses import curvature, is_quadratic

    if not is_quadratic(pl_module.loss_fn):
        return float("nan")  # not a squared loss: no gradient-flow time to compare with
    per_sample = curvature(pl_module.loss_fn, y.numel() // len(y))
    return per_sample * (1.0 if pl_module.loss_reduction == "sum" else 1 / len(y))


class PruneAndTransfer(L.Callback):
    """Seed 004's protocols on the trained network, written at the end of fit:

    - `pruning.csv`: train and test risk (and accuracy for one-hot targets) after removing the k least
      important nodes, k = 0, `prune_every`, 2·`prune_every`, …, m;
    - `transfer.csv`: external train and test risk of a fresh network fed the top-k features, k in
      `transfer_ks`, on the two halves of the validation split (external train, external test).

    Both for every ranking in `importances` (`lambda_wnorm` is the paper's, `lambda` the authors' code's).
    """

    per_member = True  # run once per member of a stacked model (overparam.batched.member_callbacks)

    def __init__(
        self,
        dirpath: str,
        importances: list[str],
        prune_every: int,
        transfer_ks: list[int],
        transfer_hidden: list[int],
        transfer_lr: float,
        transfer_steps: int,
        seed: int = 0,
    ) -> None:
        self.dirpath, self.importances, self.prune_every = Path(dirpath), list(importances), prune_every
        self.transfer = {"ks": list(transfer_ks), "hidden": list(transfer_hidden), "lr": transfer_lr}
        self.transfer["steps"], self.seed = transfer_steps, seed

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        import pandas as pd

        from overparam.protocols import importance, prune_curve, transfer_curve

        net, data = pl_module.net, trainer.datamodule
        splits = {name: whole(getattr(data, name)) for name in ("train", "test", "val")}
        width = net.weight.shape[0]
        grid = sorted({*range(0, width, self.prune_every), width})
        half = len(splits["val"].y) // 2
        external = [
            (splits["val"].x[:half], splits["val"].y[:half]),
            (splits["val"].x[half:], splits["val"].y[half:]),
        ]
        pruning, transfer = [], []
        for kind in self.importances:
            ranks = importance(net.scales, net.weight.detach(), kind, self.seed)
            for split in ("train", "test"):
                rows = prune_curve(net, splits[split].x, splits[split].y, ranks, grid)
                pruning += [{"importance": kind, "split": split, **row} for row in rows]
            if self.transfer["ks"]:
                rows = transfer_curve(net, ranks, *external, seed=self.seed, **self.transfer)
                transfer += [{"importance": kind, **row} for row in rows]
        self.dirpath.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(pruning).to_csv(self.dirpath / "pruning.csv", index=False)
        if transfer:
            pd.DataFrame(transfer).to_csv(self.dirpath / "transfer.csv", index=False)
