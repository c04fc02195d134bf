"""Every model option: built from its YAML for a small input, it maps (n, *in_shape) to (n, out); a model
that declares its own kernel (`ntk`) matches the Gram matrix of its parameter Jacobian, and one that says
it is linear in its parameters is."""

from __future__ import annotations

import pytest
import torch
from hydra.utils import instantiate

from conftest import CONF, compose_config
from overparam.theory.kernels import parameter_jacobian

# Small widths keep every option cheap; the images are for the ResNets.
SMALL = {"width": 16, "m": 16}
MODELS = sorted(p.stem for p in (CONF / "model").glob("*.yaml"))


def build(name: str, in_shape: tuple[int, ...], out: int) -> torch.nn.Module:
    node = compose_config([f"model={name}"]).model
    for key, value in SMALL.items():
        if key in node:
            node[key] = value
    torch.manual_seed(0)
    return instantiate(node, in_shape=in_shape, out_features=out)


@pytest.mark.parametrize("name", MODELS)
def test_every_model_maps_a_batch_to_its_outputs(name, tmp_path):
    if name == "bert":  # a text model reads token ids, from a folder saved on this machine
        from overparam.data.layouts import make_tiny_bert
        from overparam.models.bert import TextClassifier

        net, x = (
            TextClassifier((3, 16), 1, str(make_tiny_bert(tmp_path))),
            torch.ones(4, 3, 16, dtype=torch.long),
        )
    else:
        in_shape = (3, 32, 32) if name.startswith("resnet") else (5,)
        net, x = build(name, in_shape, 1), torch.randn(4, *in_shape)
    out = net(x)
    assert out.shape == (4, 1) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", [m for m in MODELS if m.startswith(("deep_relu", "linear"))])
def test_a_model_with_its_own_kernel_matches_its_jacobian_gram(name):
    net = build(name, (5,), 1).double()
    x = torch.randn(6, 5, dtype=torch.float64)
    if hasattr(net, "ntk"):
        jacobian = parameter_jacobian(net, x)
        torch.testing.assert_close(net.ntk(x, x), jacobian @ jacobian.T, rtol=1e-9, atol=1e-9)
    if getattr(net, "linear_in_parameters", False):  # affine in θ: second differences along d vanish
        theta = torch.nn.utils.parameters_to_vector(net.parameters()).detach()
        direction = torch.randn_like(theta)
        outputs = []
        with torch.no_grad():
            for t in (0.0, 1.0, 2.0):
                torch.nn.utils.vector_to_parameters(theta + t * direction, net.parameters())
                outputs.append(net(x))
        torch.testing.assert_close(
            outputs[2] - 2 * outputs[1] + outputs[0], torch.zeros_like(outputs[0]), atol=1e-9, rtol=0
        )
