"""A HuggingFace `transformers` sequence classifier (BERT and its kin) read from a local folder."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn


class TextClassifier(nn.Module):
    """`AutoModelForSequenceClassification` from `path` (a folder written by `save_pretrained`, e.g.
    bert-base-uncased), its head sized to `out_features`; `pretrained=false` keeps only the folder's
    architecture (config.json) with fresh weights. Nothing is downloaded: a missing folder is named.

    Inputs are token ids as the text datamodules make them: `(n, 3, length)` holding input ids, token
    type ids and the attention mask."""

    def __init__(
        self, in_shape: tuple[int, ...], out_features: int, path: str, pretrained: bool = True
    ) -> None:
        super().__init__()
        from transformers import AutoConfig, AutoModelForSequenceClassification

        folder = Path(path).expanduser()
        if not (folder / "config.json").exists():
            raise FileNotFoundError(
                f"model.path: {folder}/config.json is missing; the folder must hold a model saved with "
                "save_pretrained (config.json and, for pretrained=true, its weights), e.g. bert-base-uncased"
            )
        config = AutoConfig.from_pretrained(folder, num_labels=out_features, local_files_only=True)
        if pretrained:
            self.net = AutoModelForSequenceClassification.from_pretrained(
                folder, config=config, local_files_only=True, ignore_mismatched_sizes=True
            )
        else:
            self.net = AutoModelForSequenceClassification.from_config(config)

    def forward(self, x: Tensor) -> Tensor:
        ids, types, mask = x.long().unbind(1)
        return self.net(input_ids=ids, token_type_ids=types, attention_mask=mask).logits


def load_tokenizer(path: str):
    """The tokenizer saved in the folder `path`; a missing folder is named in one sentence."""
    from transformers import AutoTokenizer

    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"data.tokenizer: {folder} is missing; it must be the text model's folder")
    return AutoTokenizer.from_pretrained(folder, local_files_only=True)


def token_ids(tokenizer, first: list[str], second: list[str] | None, max_length: int) -> Tensor:
    """`(n, 3, max_length)` input ids, token type ids and attention masks of texts (or text pairs)."""
    encoded = tokenizer(
        first, second, padding="max_length", truncation=True, max_length=max_length, return_tensors="pt",
        return_token_type_ids=True,
    )  # fmt: skip
    return torch.stack([encoded["input_ids"], encoded["token_type_ids"], encoded["attention_mask"]], 1)
