"""Text with a spurious attribute, tokenized once for a transformers model: MultiNLI in the Group DRO
code's layout and CivilComments in WILDS' layout, both read from local files."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from overparam.data.base import (
    GroupDataModule,
    TensorSplit,
    check_every_split_has_every_group,
    encode_labels,
)
from overparam.data.files import read_table
from overparam.data.images import require_files
from overparam.models.bert import load_tokenizer, token_ids

SPLIT_NAMES = ("train", "val", "test")
CIVIL_IDENTITIES = ("male", "female", "LGBTQ", "christian", "muslim", "other_religions", "black", "white")
MNLI_FILES = (
    "multinli_1.0_train.jsonl",
    "multinli_1.0_dev_matched.jsonl",
    "multinli_1.0_dev_mismatched.jsonl",
)


class TokenizedText(GroupDataModule):
    """Splits of token ids `(n, 3, max_length)` (see `models.bert`), tokenized once with the tokenizer in
    the folder `tokenizer` (by default the model's). Groups are (class, attribute) pairs, class-major.
    Subclasses read `texts()`: first texts, second texts (or None), classes, attributes, split ids."""

    class_names: tuple[str, ...] = ()
    attribute_names: tuple[str, ...] = ()
    required_files: tuple[str, ...] = ()  # in data.root
    layout = ""  # what data.root must hold, in words

    def __init__(
        self,
        root: str,
        tokenizer: str,
        max_length: int,
        batch_size: int | None,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        labels: str = "index",
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size, eval_batch_size, num_workers, labels, seed)
        self.root, self.tokenizer, self.max_length = Path(root).expanduser(), tokenizer, max_length
        require_files(type(self).__name__, self.root, list(self.required_files), self.layout)
        self.n_classes = len(self.class_names)
        self.group_names = tuple(f"{c}_{a}" for c in self.class_names for a in self.attribute_names)

    def texts(self) -> tuple[list[str], list[str] | None, torch.Tensor, torch.Tensor, torch.Tensor, Path]:
        raise NotImplementedError

    def build_splits(self):
        first, second, classes, attributes, split, table = self.texts()
        group = classes * len(self.attribute_names) + attributes
        check_every_split_has_every_group(group, split, self.group_names, table)
        x = token_ids(load_tokenizer(self.tokenizer), first, second, self.max_length)
        return tuple(
            TensorSplit(x[rows], encode_labels(classes[rows], self.labels), group[rows])
            for rows in (torch.nonzero(split == k).flatten() for k in range(3))
        )


class CivilComments(TokenizedText):
    """WILDS' `all_data_with_identities.csv`: `comment_text`, `toxicity` (toxic from 0.5), `split`
    (train/val/test) and the identity columns; the attribute is whether any of WILDS' eight identities
    (male, female, LGBTQ, christian, muslim, other_religions, black, white) is mentioned (score ≥ 0.5), as
    the coarse grouping of Idrissi et al. 2022."""

    class_names = ("nontoxic", "toxic")
    attribute_names = ("no_identity", "identity")
    required_files = ("all_data_with_identities.csv",)
    layout = "all_data_with_identities.csv (comment_text, toxicity, split and the identity columns)"

    def texts(self):
        path = self.root / "all_data_with_identities.csv"
        table = read_table(path, {"comment_text", "toxicity", "split", *CIVIL_IDENTITIES}, self.layout)
        table = table[table["split"].isin(SPLIT_NAMES)]
        classes = torch.tensor((table["toxicity"].values >= 0.5).astype("int64"))
        identity = (table[list(CIVIL_IDENTITIES)].fillna(0).values >= 0.5).any(1)
        split = torch.tensor(table["split"].map({s: k for k, s in enumerate(SPLIT_NAMES)}).values)
        texts = table["comment_text"].fillna("").astype(str).tolist()
        return texts, None, classes, torch.tensor(identity.astype("int64")), split, path


class MultiNLI(TokenizedText):
    """The Group DRO code's MultiNLI: `metadata_random.csv` (its first column the row of the three MultiNLI
    1.0 files concatenated: train, dev_matched, dev_mismatched; `gold_label` 0/1/2 = contradiction,
    entailment, neutral; `sentence2_has_negation`; `split` 0/1/2) beside those `.jsonl` files. The
    attribute is a negation word in the hypothesis."""

    class_names = ("contradiction", "entailment", "neutral")
    attribute_names = ("no_negation", "negation")
    required_files = ("metadata_random.csv", *MNLI_FILES)
    layout = f"metadata_random.csv and {', '.join(MNLI_FILES)}"

    def texts(self):
        path = self.root / "metadata_random.csv"
        metadata = read_table(
            path, {"gold_label", "sentence2_has_negation", "split"}, self.layout, index_col=0
        )
        pairs = pd.concat([pd.read_json(self.root / f, lines=True) for f in MNLI_FILES], ignore_index=True)
        absent = metadata.index.difference(pairs.index)
        if len(absent):
            raise ValueError(f"{path} names row {absent[0]}, but the MultiNLI files hold {len(pairs)} rows")
        rows = pairs.loc[metadata.index]
        return (
            rows["sentence1"].astype(str).tolist(),
            rows["sentence2"].astype(str).tolist(),
            torch.tensor(metadata["gold_label"].values.astype("int64")),
            torch.tensor(metadata["sentence2_has_negation"].values.astype("int64")),
            torch.tensor(metadata["split"].values.astype("int64")),
            path,
        )
