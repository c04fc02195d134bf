"""CelebA and Waterbirds loaders on generated fixtures in their real layouts; one training step each."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf, open_dict

from conftest import QUIET, compose_config, record_overrides
from overparam.data.celeba import CelebA
from overparam.data.layouts import make_celeba, make_waterbirds
from overparam.data.waterbirds import Waterbirds
from overparam.entry import execute
from overparam.errors import ConfigError, InputError
from overparam.models.resnet import ResNet

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
        [
            f"+experiment={experiment}",
            f"data.root={root}",
            f"data.cache_dir={tmp_path / 'cache'}",
            f"model.weights_path={weights}",
            *TINY,
        ],
        tmp_path / "run",
    )
    execute(cfg)
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
        execute(cfg)


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


def test_table1_sweep_aggregates_last_epochs_and_the_early_stopping_window(tmp_path):
    """A miniature seed 001 Table 1 on the Waterbirds fixture: every cell is a mean ± t-CI over seeds."""
    from overparam.results.figures.seed001 import table1_frame

    root = make_waterbirds(tmp_path / "data")
    sweep = tmp_path / "sweep"
    jobs = [("gdro", wd, seed) for wd in (0.0, 0.1) for seed in (1, 2)] + [("erm", 0.0, 1), ("erm", 0.0, 2)]
    for weighting, decay, seed in jobs:
        job = sweep / f"weighting={weighting},optim.weight_decay={decay},seed={seed}"
        cfg = compose_config(
            [
                "+experiment=overfit_table1_waterbirds",
                f"data.root={root}",
                "model=mlp",
                "~model.pretrained",
                "~model.channels_last",
                "model.width=16",
                "trainer.accelerator=cpu",
                "trainer.max_epochs=4",
                f"weighting={weighting}",
                f"optim.weight_decay={decay}",
                f"seed={seed}",
                "data.image_size=16",
                "data.batch_size=8",
                "data.num_workers=0",
                *QUIET,
            ],
            job,
        )
        execute(cfg)
        record_overrides(job, [f"weighting={weighting}"])
        (job / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    summary = table1_frame(sweep, last=2, early=(1, 2))
    assert set(summary.index) == {
        ("ERM", 0.0, "last 2 epochs"),
        ("ERM", 0.0, "epochs 1–2"),
        ("Group DRO", 0.0, "last 2 epochs"),
        ("Group DRO", 0.0, "epochs 1–2"),
        ("Group DRO", 0.1, "last 2 epochs"),
    }
    assert (summary[("n", "train_acc")] == 2).all() and (summary[("ci", "worst_group_test_acc")] >= 0).all()
    assert summary[("mean", "train_acc")].between(0, 1).all()


def test_a_split_missing_a_group_or_a_row_with_a_bad_label_names_the_file_and_what_is_wrong(tmp_path):
    root = make_waterbirds(tmp_path)
    metadata = root / "metadata.csv"
    original = metadata.read_text().splitlines()
    # Row of image 28 (the last val image, the only waterbird on water in val) moved to land.
    lines = [line.replace(",1,1,1,", ",1,1,0,") if line.startswith("28,") else line for line in original]
    metadata.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"metadata.csv: the val split has no rows of group waterbird_water"):
        Waterbirds(str(root), image_size=32, batch_size=4).setup()
    lines = [line.replace(",0,0,0,", ",2,0,0,") if line.startswith("1,") else line for line in original]
    metadata.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"metadata.csv row 1 has label 2; expected one of \(0, 1\)"):
        Waterbirds(str(root), image_size=32, batch_size=4).setup()


def make_images(tmp_path, dataset: str):
    return (make_celeba if dataset == "celeba" else make_waterbirds)(tmp_path / "data")


def image_run(tmp_path, dataset: str, pipeline: str, *extra: str):
    """gdro_<dataset> on a generated folder in the real layout (its root returned with the config)."""
    root = tmp_path / "data" if (tmp_path / "data").exists() else make_images(tmp_path, dataset)
    weights = tmp_path / "resnet18-f37072fd.pth"
    if not weights.exists():  # the same "pretrained" weights for every run of a test
        torch.save(ResNet((3, 8, 8), 1000, "resnet18", False, None).net.state_dict(), weights)
    overrides = [f"+experiment=gdro_{dataset}", f"data.root={root}", f"data.pipeline={pipeline}"]
    overrides += [f"data.cache_dir={tmp_path / 'cache'}", f"model.weights_path={weights}", *TINY, *extra]
    return root, compose_config(overrides, tmp_path / "run")


@pytest.mark.parametrize("pipeline", ["files", "cached"])
@pytest.mark.parametrize("dataset", ["celeba", "waterbirds"])
def test_truncated_images_are_named_before_training(tmp_path, dataset, pipeline):
    root, cfg = image_run(tmp_path, dataset, pipeline)
    images = sorted(root.rglob("*.jpg"))
    for image in images[3:5]:  # cut short, as an interrupted copy leaves them
        image.write_bytes(image.read_bytes()[: image.stat().st_size // 2])
    with pytest.raises(ConfigError) as raised:
        execute(cfg)
    message = str(raised.value)
    assert "\n" not in message and message.startswith("data: ")
    assert "but it is a truncated JPEG (no end marker); 1 other file is bad too." in message
    assert any(str(image) in message for image in images[3:5])
    assert not (tmp_path / "run" / "checkpoints").exists()  # nothing trained


class CorruptAfterFirstEpoch(L.Callback):
    """Replaces a training image with bytes that look complete but do not decode, after epoch 0."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if trainer.current_epoch == 0:
            self.path.write_bytes(b"\xff\xd8\xff" + bytes(200) + b"\xff\xd9")


@pytest.mark.parametrize("dataset", ["celeba", "waterbirds"])
def test_an_image_that_fails_to_decode_mid_run_ends_it_in_one_sentence_and_a_rerun_resumes(tmp_path, dataset):
    image = sorted(make_images(tmp_path, dataset).rglob("*.jpg"))[0]
    original = image.read_bytes()
    corrupt = [
        f"+callbacks.corrupt._target_={__name__}.CorruptAfterFirstEpoch",
        f"+callbacks.corrupt.path={image}",
    ]
    two_epochs = ["trainer.max_steps=-1", "trainer.max_epochs=2", "data.num_workers=1"]  # decoded in a worker
    _, cfg = image_run(tmp_path, dataset, "files", *two_epochs, *corrupt)
    with pytest.raises(InputError) as raised:
        execute(cfg)
    assert str(raised.value).startswith(f"{image} cannot be decoded (") and "\n" not in str(raised.value)
    run_dir = tmp_path / "run"
    written = json.loads((run_dir / "metrics.json").read_text())
    assert written["status"] == "failed" and written["error"] == str(raised.value)
    assert (run_dir / "checkpoints" / "last.ckpt").exists()  # epoch 0 kept
    image.write_bytes(original)  # fixed: the same command resumes and finishes
    resumed = execute(cfg)
    _, uninterrupted = image_run(tmp_path, dataset, "files", *two_epochs)
    with open_dict(uninterrupted):
        uninterrupted.run_dir = str(tmp_path / "uninterrupted")
    reference = execute(uninterrupted)
    assert resumed.status == reference.status == "completed" and resumed.steps == reference.steps
    assert json.loads((run_dir / "started.json").read_text())["attempt"] == 2
    # Epoch 0 came from the checkpoint, as the uninterrupted run logged it. (Epoch 1 draws its crops in
    # fresh DataLoader workers, so it matches only in distribution: workers are reseeded on a resume.)
    first_epoch = [
        pd.read_csv(d / "metrics.csv").query("epoch == 0") for d in (run_dir, tmp_path / "uninterrupted")
    ]
    pd.testing.assert_frame_equal(*first_epoch)


def test_any_metadata_csv_loads_with_groups_named_from_its_values(tmp_path):
    from overparam.data.layouts import make_metadata_images
    from overparam.data.metadata import MetadataImages

    root = make_metadata_images(tmp_path)
    values = {"train": "train", "val": "val", "test": "test"}
    data = MetadataImages(str(root), batch_size=4, split_values=values, image_size=32)
    data.setup()
    assert data.group_names == (
        "cat_indoor",
        "cat_outdoor",
        "cat_water",
        "dog_indoor",
        "dog_outdoor",
        "dog_water",
    )
    assert (len(data.train), len(data.val), len(data.test)) == (24, 6, 6) and data.n_classes == 2
    assert data.group_counts.tolist() == [4] * 6
    batch = data.val[list(range(6))]
    assert batch.y.tolist() == [0, 1, 0, 1, 0, 1] and batch.x.shape == (6, 3, 32, 32)
    # Rows 1, 2 are (cat, indoor), (dog, indoor): groups 0 and 3.
    assert data.train[[0, 1]].group.tolist() == [0, 3]


def test_a_bad_metadata_file_gets_one_sentence(tmp_path):
    from overparam.data.layouts import make_metadata_images
    from overparam.data.metadata import MetadataImages

    root = make_metadata_images(tmp_path)
    metadata = root / "metadata.csv"
    original = metadata.read_text()
    build = lambda: MetadataImages(  # noqa: E731
        str(root), batch_size=4, split_values={"train": "train", "val": "val", "test": "test"}
    ).setup()
    metadata.write_text(original.replace(",train\n", ",training\n", 1))
    with pytest.raises(ValueError, match=r"row 1 has split 'training'; expected one of train \(train\), val"):
        build()
    metadata.write_text(original.replace("filename,", "file,", 1))
    with pytest.raises(ValueError, match=r"lacks the column\(s\) filename; expected metadata.csv \(columns"):
        build()
    metadata.write_text(original.replace("water,val", "indoor,val"))  # val loses both water groups
    with pytest.raises(ValueError, match=r"the val split has no rows of group cat_water"):
        build()
    metadata.write_text(original)
    (root / "images" / "dog" / "0003.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=r"row 4 names .*0003.jpg, but it does not exist"):
        build()


def test_own_images_train_end_to_end_with_a_convolutional_network(tmp_path):
    from overparam.data.layouts import make_metadata_images

    root = make_metadata_images(tmp_path / "data")
    args = [
        *TINY,
        "data=metadata_images",
        f"data.root={root}",
        "data.split_values={train:train,val:val,test:test}",
        "model=resnet18",
        "weighting=gdro",
    ]
    execute(compose_config(args, tmp_path / "run"))
    result = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert result["status"] == "completed"
    assert {f"test/group_acc/{label}_water" for label in ("cat", "dog")} <= set(result["metrics"])
