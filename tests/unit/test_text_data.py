"""MultiNLI and CivilComments in their real layouts, and a transformers model from a local folder, on small
generated files and a tiny randomly initialized BERT."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import QUIET, compose_config
from overparam.data.layouts import make_civilcomments, make_multinli, make_tiny_bert
from overparam.data.text import CivilComments, MultiNLI
from overparam.entry import execute
from overparam.errors import ConfigError

TINY = [*QUIET, "trainer.max_steps=2", "data.max_length=16", "data.batch_size=8", "data.eval_batch_size=8"]


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    return make_tiny_bert(tmp_path_factory.mktemp("bert"))


def test_civilcomments_groups_toxicity_by_any_identity_mentioned(tmp_path, bert):
    data = CivilComments(str(make_civilcomments(tmp_path)), str(bert), max_length=16, batch_size=4)
    data.setup()
    assert data.group_names == (
        "nontoxic_no_identity",
        "nontoxic_identity",
        "toxic_no_identity",
        "toxic_identity",
    )
    assert data.group_counts.tolist() == [8, 8, 8, 8] and data.train.x.shape == (32, 3, 16)
    # The rows cycle (toxic, identity score 0.8 or 0.2): groups 0, 2, 1, 3 (a score of 0.2 is no mention).
    assert data.val.group.tolist()[:4] == [0, 2, 1, 3] and data.val.y.tolist()[:4] == [0, 1, 0, 1]


def test_multinli_reads_the_rows_its_metadata_names_as_premise_hypothesis_pairs(tmp_path, bert):
    root = make_multinli(tmp_path)
    data = MultiNLI(str(root), str(bert), max_length=16, batch_size=4)
    data.setup()
    assert data.n_classes == 3 and len(data.group_names) == 6 and data.group_counts.tolist() == [8] * 6
    ids, types, mask = data.train.x[3]  # row 3: (contradiction, a negation word in the hypothesis)
    vocab = (bert / "vocab.txt").read_text().split()
    tokens = [vocab[int(i)] for i, m in zip(ids, mask) if m]
    second = tokens[tokens.index("[SEP]") + 1 :]
    assert data.train.group[3] == 1 and second[0] == "nobody"
    assert types[: tokens.index("[SEP]") + 1].eq(0).all() and types[len(tokens) - 1] == 1
    (root / "multinli_1.0_dev_mismatched.jsonl").unlink()
    with pytest.raises(
        FileNotFoundError, match="multinli_1.0_dev_mismatched.jsonl is missing; data.root must"
    ):
        MultiNLI(str(root), str(bert), max_length=16, batch_size=4)


@pytest.mark.parametrize(
    "dataset,maker", [("civilcomments", make_civilcomments), ("multinli", make_multinli)]
)
def test_a_bert_classifier_trains_on_each_text_dataset(tmp_path, bert, dataset, maker):
    root = maker(tmp_path / "data")
    args = [
        f"data={dataset}",
        f"data.root={root}",
        "model=bert",
        f"model.path={bert}",
        "weighting=gdro_reference",
    ]
    execute(compose_config([*args, *TINY], tmp_path / "run"))
    result = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert result["status"] == "completed" and result["steps"] == 2
    expected = {f"test/group_acc/{name}" for name in ("toxic_identity", "neutral_negation")}
    assert expected & set(result["metrics"])


def test_a_missing_model_folder_is_named(tmp_path):
    root = make_civilcomments(tmp_path / "data")
    args = ["data=civilcomments", f"data.root={root}", "model=bert", f"model.path={tmp_path}/nowhere", *TINY]
    with pytest.raises(ConfigError, match="nowhere is missing; it must be the text model's folder"):
        execute(compose_config(args, tmp_path / "run"))


def test_the_classifier_keeps_pretrained_weights_and_sizes_its_head(bert):
    from transformers import BertForSequenceClassification

    from overparam.models.bert import TextClassifier

    saved = BertForSequenceClassification.from_pretrained(bert)
    loaded = TextClassifier((3, 16), 3, str(bert))
    torch.testing.assert_close(
        loaded.net.bert.embeddings.word_embeddings.weight, saved.bert.embeddings.word_embeddings.weight
    )
    assert loaded(torch.zeros(2, 3, 16, dtype=torch.long)).shape == (2, 3)
