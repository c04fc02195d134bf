"""ParameterSnapshots: the flattened parameters at every logged step, saved as `snapshots.pt`."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from torch.nn.utils import parameters_to_vector

from overparam.data.base import whole


class ParameterSnapshots(L.Callback):
    """Keeps θ_t (float64, CPU) at step 0 and after every `training_step` (the log grid in full-batch runs),
    and the model's outputs and the targets on the test split at the end, so that two runs started from
    the same θ0 can be compared afterwards (`overparam.results.figures.seed000.weight_gaps`). Writes
    `<dirpath>/snapshots.pt` at the end of fit. For large models set `parameters=false` to keep only the
    step numbers and the final test outputs.
    """

    per_member = True  # run once per member of a stacked model (overparam.batched.member_callbacks)

    def __init__(self, dirpath: str, parameters: bool = True) -> None:
        self.path, self.parameters = Path(dirpath) / "snapshots.pt", parameters
        self.steps: list[int] = []
        self.thetas: list[torch.Tensor] = []

    def record(self, step: int, pl_module: L.LightningModule) -> None:
        if self.steps and self.steps[-1] == step:
            return
        self.steps.append(step)
        if self.parameters:
            self.thetas.append(parameters_to_vector(pl_module.net.parameters()).detach().double().cpu())

    def on_train_start(self, trainer, pl_module) -> None:
        self.record(trainer.global_step, pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.record(trainer.global_step, pl_module)

    def on_fit_end(self, trainer, pl_module) -> None:
        test = trainer.datamodule.test
        x = whole(test).x.to(pl_module.device, pl_module.dtype)
        with torch.no_grad():
            test_outputs = pl_module.net(x).double().cpu()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(
            {
                "step": torch.tensor(self.steps),
                "theta": torch.stack(self.thetas) if self.thetas else None,
                "test_outputs": test_outputs,
                "test_targets": whole(test).y.double().cpu(),
            },
            self.path,
        )

    def state_dict(self) -> dict:
        return {"steps": self.steps, "thetas": self.thetas}

    def load_state_dict(self, state_dict: dict) -> None:
        self.steps, self.thetas = list(state_dict["steps"]), list(state_dict["thetas"])
