"""Names from the config: a sweep job's directory is flat, short and stable under settings that do not
change the result."""

from __future__ import annotations

from overparam.resolvers import job_dirname


def test_a_job_directory_leaves_out_what_does_not_change_the_result():
    swept = ["+experiment=grw_fig1", "weighting=gdro", "seed=1"]
    plain = job_dirname(swept)
    assert plain == "seed=1,weighting=gdro"
    noisy = [*swept, "logger=wandb", "~callbacks.progress", "+trainer.enable_progress_bar=false"]
    assert job_dirname([*noisy, "data.cache_dir=/scratch/cache"]) == plain


def test_paths_and_long_numbers_are_shortened_with_a_hash_of_the_exact_values():
    first = job_dirname(["data.root=/data/celeba/", "weighting.eta=0.012345678901234567"])
    second = job_dirname(["data.root=/other/celeba", "weighting.eta=0.012345678901234567"])
    assert "/" not in first and first.startswith("data.root=celeba,weighting.eta=0.01235,")
    assert first != second  # the hash tells two roots with the same last part apart
    assert job_dirname(["seed=3"]) == "seed=3" and job_dirname([]) == "defaults"


def test_a_name_too_long_for_the_file_system_is_cut_and_told_apart_by_its_hash():
    many = [f"model.setting_number_{k}=value_{k}" for k in range(30)]
    name = job_dirname(many)
    assert len(name.encode()) <= 255 and name.startswith("model.setting_number_0=value_0,")
    assert name != job_dirname([*many[:-1], "model.setting_number_29=other"])
