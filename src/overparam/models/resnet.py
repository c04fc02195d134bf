"""torchvision ResNet-18/50 with a new `out_features`-way head; pretrained weights come from local files."""

from __future__ import annotations

from pathlib import Path

import torch
import torchvision
from torch import Tensor, nn

WEIGHTS = {
    "resnet18": torchvision.models.ResNet18_Weights.IMAGENET1K_V1,
    "resnet50": torchvision.models.ResNet50_Weights.IMAGENET1K_V1,
}


class ResNet(nn.Module):
    """ResNet whose `fc` is replaced by Linear(features, out_features); all layers are trained.

    `pretrained=True` loads ImageNet weights from `weights_path` if given, else from the torch hub cache
    (`$TORCH_HOME/hub/checkpoints/<file>`); nothing is ever downloaded.
    """

    def __init__(
        self,
        in_shape: tuple[int, ...],
        out_features: int,
        arch: str,
        pretrained: bool,
        weights_path: str | None,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        if arch not in WEIGHTS:
            raise ValueError(f"arch must be one of {', '.join(WEIGHTS)}, got {arch!r}")
        if in_shape[0] != 3:
            raise ValueError(
                f"{arch} needs RGB images (3 channels), but the data has shape {tuple(in_shape)}"
            )
        self.net = getattr(torchvision.models, arch)(weights=None)
        if pretrained:
            self.net.load_state_dict(torch.load(pretrained_file(arch, weights_path), map_location="cpu"))
        self.net.fc = nn.Linear(self.net.fc.in_features, out_features)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.net.to(memory_format=self.memory_format)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x.contiguous(memory_format=self.memory_format))


def pretrained_file(arch: str, weights_path: str | None) -> Path:
    """The local file of torchvision's ImageNet weights for `arch`, or one sentence on where to put it."""
    file_name = Path(WEIGHTS[arch].url).name
    path = (
        Path(weights_path).expanduser()
        if weights_path
        else Path(torch.hub.get_dir()) / "checkpoints" / file_name
    )
    if not path.is_file():
        raise FileNotFoundError(
            f"pretrained weights for {arch} not found at {path}: copy {file_name} (from {WEIGHTS[arch].url}) "
            f"there, or set weights_path=/path/to/{file_name}"
        )
    return path
