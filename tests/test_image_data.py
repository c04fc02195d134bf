"""CelebA and Waterbirds loaders on generated fixtures in their real layouts; one training step each."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import QUIET, compose_config
from fixtures import make_celeba, make_waterbirds
from overparam.data.celeba import CelebA
from overparam.data.waterbirds import Waterbirds
from overparam.models.resnet import ResNet
from overparam.train import ConfigError, run

TINY = [
    *QUIET,
    "trainer.max_steps=1",
    "data.image_size=32",
    "data.batch_size=8",
    "data.eval_batch_size=8",
    "data.num_workers=0",
]


@pytest.mark.parametrize("csv", [False, True], ids=["txt", "csv"])
def test_celeba_reads_official_partition_and_groups(tmp_path, csv):
    data = CelebA(str(make_celeba(tmp_path, csv=csv)), "Blond_Hair", "Male", image_size=32, batch_size=4)
    data.setup()
    assert (len(data.train), len(data.val), len(data.test)) == (28, 4, 4)
    assert data.group_counts.tolist() == [7, 7, 7, 7]
    assert data.group_names == (
        "Blond_Hair0_Male0",
        "Blond_Hair0_Male1",
        "Blond_Hair1_Male0",
        "Blond_Hair1_Male1",
    )
    batch = data.val[[0, 1, 2, 3]]
    assert (
        batch.x.shape == (4, 3, 32, 32)
        and batch.y.tolist() == [0, 0, 1, 1]
        and batch.group.tolist() == [0, 1, 2, 3]
    )


def test_waterbirds_reads_metadata_and_groups(tmp_path):
    data = Waterbirds(str(make_waterbirds(tmp_path)), image_size=32, batch_size=4)
    data.setup()
    assert (len(data.train), len(data.val), len(data.test)) == (24, 4, 4)
    assert data.group_counts.tolist() == [6, 6, 6, 6]
    batch = next(iter(data.train_dataloader()))
    assert batch.x.shape == (4, 3, 32, 32) and batch.x.dtype == torch.float32


@pytest.mark.parametrize(
    "experiment,maker",
    [
        ("gdro_celeba", make_celeba),
        ("iw_celeba", make_celeba),
        ("gdro_waterbirds", make_waterbirds),
        ("erm_waterbirds", make_waterbirds),
    ],
)
def test_image_experiment_trains_one_step_on_fixture(tmp_path, experiment, maker):
    root = maker(tmp_path / "data")
    weights = tmp_path / "resnet18-f37072fd.pth"
    torch.save(ResNet((3, 8, 8), 1000, "resnet18", False, None).net.state_dict(), weights)
    cfg = compose_config(
        [f"+experiment={experiment}", f"data.root={root}", f"model.weights_path={weights}", *TINY],
        tmp_path / "run",
    )
    run(cfg)
    result = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert result["status"] == "completed" and result["steps"] == 1
    assert 0.0 <= result["metrics"]["test/worst_group_acc"] <= 1.0


def test_missing_dataset_stops_at_once_naming_the_path_and_layout(tmp_path):
    cfg = compose_config(
        ["+experiment=gdro_waterbirds", f"data.root={tmp_path}/nowhere", *TINY], tmp_path / "run"
    )
    with pytest.raises(
        ConfigError, match=r"nowhere/metadata.csv is missing; data.root must hold metadata.csv"
    ):
        run(cfg)


def test_missing_image_names_the_metadata_row(tmp_path):
    root = make_waterbirds(tmp_path)
    next(root.rglob("bird_0003.jpg")).unlink()
    with pytest.raises(FileNotFoundError, match=r"metadata.csv row 4 names .*bird_0003.jpg"):
        Waterbirds(str(root), image_size=32, batch_size=4).setup()


def test_pretrained_weights_load_from_a_file_and_missing_ones_say_where_to_put_them(tmp_path, monkeypatch):
    source = ResNet((3, 8, 8), 1000, "resnet18", False, None)
    torch.save(source.net.state_dict(), tmp_path / "weights.pth")
    loaded = ResNet((3, 8, 8), 2, "resnet18", True, str(tmp_path / "weights.pth"))
    torch.testing.assert_close(loaded.net.conv1.weight, source.net.conv1.weight)
    assert loaded.net.fc.out_features == 2
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_cache"))
    with pytest.raises(FileNotFoundError, match=r"empty_cache/hub/checkpoints/resnet18-f37072fd.pth: copy"):
        ResNet((3, 8, 8), 2, "resnet18", True, None)
