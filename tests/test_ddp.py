"""DDP on two CPU processes: Group DRO's group weights stay identical on both ranks."""

from __future__ import annotations

import json

import torch

from conftest import ROOT, run_cli


def test_group_dro_weights_are_identical_on_both_ranks_of_a_two_process_ddp_run(tmp_path):
    result = run_cli(
        [
            "trainer=ddp",
            "trainer.accelerator=cpu",
            "trainer.devices=2",
            "trainer.max_epochs=2",
            "data.n_train=512",
            "data.n_val=128",
            "data.n_test=128",
            "weighting.eta=0.5",
            "~callbacks.progress",
            "+callbacks.probe._target_=ddp_probe.SaveGroupWeights",
            f"+callbacks.probe.dirpath={tmp_path}",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        env={"PYTHONPATH": str(ROOT / "tests")},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert ranks[0]["world"] == ranks[1]["world"] == 2
    assert not set(ranks[0]["seen"]) & set(ranks[1]["seen"])  # each rank trained on its own shard
    assert len(ranks[0]["seen"]) + len(ranks[1]["seen"]) == 512
    torch.testing.assert_close(ranks[0]["g"], ranks[1]["g"], rtol=0, atol=0)  # the very same q
    assert not torch.allclose(ranks[0]["g"], torch.full((4,), 0.25), atol=1e-3)  # and it moved
    written = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert written["status"] == "completed" and written["steps"] == 2 * 2  # 256 per rank: 2 batches/epoch
