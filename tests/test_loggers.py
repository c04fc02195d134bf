"""CSV always; W&B (offline, one group per sweep) and TensorBoard on request."""

from __future__ import annotations

from conftest import assert_quiet, run_cli

FAST = [
    "trainer.max_epochs=1",
    "trainer.log_every_n_steps=1",
    "data.n_train=256",
    "data.n_val=64",
    "data.n_test=64",
    "~callbacks.progress",
]


def test_wandb_runs_offline_with_one_group_per_sweep(tmp_path):
    result = run_cli(
        ["-m", "logger=wandb", "weighting=erm,gdro", *FAST, f"hydra.sweep.dir={tmp_path}"],
        env={"WANDB_MODE": "offline"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert_quiet(result.stdout + result.stderr)  # no deprecation warning, no history printed per job
    records = sorted(tmp_path.glob("*/wandb/offline-run-*/run-*.wandb"))
    assert len(records) == 2  # one offline run per job, ready for `wandb sync`
    for record, weighting in zip(records, ("erm", "gdro")):
        raw = record.read_bytes()  # the run record holds group, tags and the logged config
        assert str(tmp_path).encode() in raw  # group = the sweep directory, shared by both jobs
        assert f"weighting={weighting}".encode() in raw and b"cmnist" in raw
        assert "logger" not in record.parents[2].name and f"weighting={weighting}" in record.parents[2].name
        assert b"val/worst_group_acc" in raw and b"weights/group/y0_green" in raw and b"max_epochs" in raw
        assert (record.parents[2] / "metrics.csv").exists()


def test_tensorboard_writes_event_files(tmp_path):
    result = run_cli(["logger=tensorboard", *FAST, f"hydra.run.dir={tmp_path}"])
    assert result.returncode == 0, result.stderr[-2000:]
    assert list((tmp_path / "tensorboard").rglob("events.out.tfevents.*"))
    assert (tmp_path / "metrics.csv").exists()


def test_turning_wandb_on_finds_the_same_jobs_of_a_finished_sweep(tmp_path):
    sweep = ["-m", "weighting=erm,gdro", *FAST, f"hydra.sweep.dir={tmp_path}"]
    first = run_cli(sweep)
    assert first.returncode == 0, first.stderr[-2000:]
    jobs = sorted(path.parent.name for path in tmp_path.glob("*/metrics.json"))
    again = run_cli([*sweep, "logger=wandb"], env={"WANDB_MODE": "offline"})
    assert again.returncode == 0, again.stderr[-2000:]
    assert sorted(path.parent.name for path in tmp_path.glob("*/metrics.json")) == jobs
    assert again.stdout.count("skipped: ") == 2 and not list(tmp_path.rglob("offline-run-*"))


def test_the_csv_writer_appends_rows_and_drops_a_row_torn_by_a_kill(tmp_path):
    from overparam.loggers import AppendingWriter

    writer = AppendingWriter(str(tmp_path))
    writer.log_metrics({"train/loss": 1.0}, step=1)
    writer.save()
    first = (tmp_path / "metrics.csv").stat().st_ino
    writer.log_metrics({"train/loss": 0.5}, step=2)
    writer.save()
    assert (tmp_path / "metrics.csv").stat().st_ino == first  # appended, not rewritten (a new file)
    writer.log_metrics({"val/loss": 0.7}, step=2)  # a new key: the header is rewritten, rows kept
    writer.save()
    lines = (tmp_path / "metrics.csv").read_text().splitlines()
    assert lines[0] == "step,train/loss,val/loss" and len(lines) == 4
    with (tmp_path / "metrics.csv").open("a") as file:
        file.write("3,0.2")  # a kill in the middle of an append
    resumed = AppendingWriter(str(tmp_path))
    assert [row["step"] for row in resumed.rows] == ["1", "2", "2"]
    assert (tmp_path / "metrics.csv").read_text().splitlines() == lines
