"""Generated datasets in the real on-disk layouts of CelebA and Waterbirds: tiny ones for the tests, and a
CelebA-sized one for the image pipeline benchmark (`benchmarks/images.py`)."""

from __future__ import annotations

import json
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

CELEBA_ATTRIBUTES = [
    "5_o_Clock_Shadow",
    "Arched_Eyebrows",
    "Attractive",
    "Bags_Under_Eyes",
    "Bald",
    "Bangs",
    "Big_Lips",
    "Big_Nose",
    "Black_Hair",
    "Blond_Hair",
    "Blurry",
    "Brown_Hair",
    "Bushy_Eyebrows",
    "Chubby",
    "Double_Chin",
    "Eyeglasses",
    "Goatee",
    "Gray_Hair",
    "Heavy_Makeup",
    "High_Cheekbones",
    "Male",
    "Mouth_Slightly_Open",
    "Mustache",
    "Narrow_Eyes",
    "No_Beard",
    "Oval_Face",
    "Pale_Skin",
    "Pointy_Nose",
    "Receding_Hairline",
    "Rosy_Cheeks",
    "Sideburns",
    "Smiling",
    "Straight_Hair",
    "Wavy_Hair",
    "Wearing_Earrings",
    "Wearing_Hat",
    "Wearing_Lipstick",
    "Wearing_Necklace",
    "Wearing_Necktie",
    "Young",
]


def write_jpeg(path: Path, rng: np.random.Generator, size: tuple[int, int], smooth: bool = False) -> None:
    """A JPEG of `size` (width, height): uniform noise, or (`smooth`) noise on an 8 × 8 grid, upsampled,
    which compresses as a photograph does (about 7 KB at 178 × 218, as CelebA's aligned faces: 1.4 GB
    for 202,599)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    width, height = size
    if smooth:
        cells = Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8))
        cells.resize((width, height), Image.Resampling.BICUBIC).save(path, quality=90)
    else:
        Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(path, quality=90)


def write_faces(root: Path, names: list[str], seed: int, smooth: bool) -> None:
    rng = np.random.default_rng(seed)
    for name in names:
        write_jpeg(root / "img_align_celeba" / name, rng, (178, 218), smooth)


def make_celeba(
    root: Path,
    n: int = 36,
    csv: bool = False,
    partition_sizes: tuple[int, int] = (4, 4),
    workers: int = 1,
    smooth: bool = False,
) -> Path:
    """CelebA's layout: img_align_celeba/*.jpg (178×218), attribute and partition lists (txt or csv).
    The last `partition_sizes` rows are the val and test partitions; Blond_Hair and Male cycle so that
    every partition holds every group."""
    rng = np.random.default_rng(0)
    names = [f"{i:06d}.jpg" for i in range(1, n + 1)]
    attrs = rng.choice([-1, 1], size=(n, len(CELEBA_ATTRIBUTES)))
    attrs[:, CELEBA_ATTRIBUTES.index("Blond_Hair")] = np.resize([-1, -1, 1, 1], n)
    attrs[:, CELEBA_ATTRIBUTES.index("Male")] = np.resize([-1, 1, -1, 1], n)
    partition = np.repeat([0, 1, 2], [n - sum(partition_sizes), *partition_sizes])
    if workers == 1:
        write_faces(root, names, 0, smooth)
    else:
        with ProcessPoolExecutor(workers) as pool:
            chunks = [names[k::workers] for k in range(workers)]
            list(pool.map(write_faces, [root] * workers, chunks, range(workers), [smooth] * workers))
    if csv:
        header = "image_id," + ",".join(CELEBA_ATTRIBUTES)
        rows = [f"{name}," + ",".join(map(str, row)) for name, row in zip(names, attrs)]
        (root / "list_attr_celeba.csv").write_text("\n".join([header, *rows]) + "\n")
        rows = [f"{name},{p}" for name, p in zip(names, partition)]
        (root / "list_eval_partition.csv").write_text("\n".join(["image_id,partition", *rows]) + "\n")
    else:
        rows = [f"{name} " + " ".join(f"{v:2d}" for v in row) for name, row in zip(names, attrs)]
        (root / "list_attr_celeba.txt").write_text(
            "\n".join([str(n), " ".join(CELEBA_ATTRIBUTES), *rows]) + "\n"
        )
        (root / "list_eval_partition.txt").write_text("".join(f"{a} {p}\n" for a, p in zip(names, partition)))
    return root


def make_waterbirds(root: Path, n: int = 32) -> Path:
    """Waterbirds' layout: metadata.csv (img_id, img_filename, y, split, place, ...) and class folders."""
    rng = np.random.default_rng(1)
    rows = ["img_id,img_filename,y,split,place,place_filename"]
    for i in range(n):
        y, place, split = i % 2, (i // 2) % 2, 0 if i < n - 8 else (1 if i < n - 4 else 2)
        folder = "014.Indigo_Bunting" if y == 0 else "045.Northern_Fulmar"
        filename = f"{folder}/bird_{i:04d}.jpg"
        write_jpeg(root / filename, rng, (96, 80))
        rows.append(f"{i + 1},{filename},{y},{split},{place},/b/bamboo_forest/{i:08d}.jpg")
    (root / "metadata.csv").write_text("\n".join(rows) + "\n")
    return root


def make_metadata_images(root: Path, n: int = 36) -> Path:
    """A MetaShift-like export: text labels (cat, dog), a three-valued attribute (indoor, outdoor, water)
    and text splits, in metadata.csv with the generic loader's default column names."""
    rng = np.random.default_rng(2)
    rows = ["filename,y,a,split"]
    for i in range(n):
        label, attribute = ("cat", "dog")[i % 2], ("indoor", "outdoor", "water")[(i // 2) % 3]
        split = "train" if i < n - 12 else ("val" if i < n - 6 else "test")
        filename = f"images/{label}/{i:04d}.jpg"
        write_jpeg(root / filename, rng, (48, 40))
        rows.append(f"{filename},{label},{attribute},{split}")
    (root / "metadata.csv").write_text("\n".join(rows) + "\n")
    return root


WORDS = "the a no never nobody nothing cat dog sat ran on mat park good bad people men women they".split()


def make_tiny_bert(folder: Path, seed: int = 0) -> Path:
    """A randomly initialized two-layer BERT of width 16 with a word-level vocabulary, saved as
    save_pretrained writes bert-base-uncased (config.json, weights, vocab.txt): the text tests' model."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text(
        "\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n"
    )
    BertTokenizer(str(folder / "vocab.txt")).save_pretrained(folder)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=5 + len(WORDS), hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=64,
    )  # fmt: skip
    BertForSequenceClassification(config).save_pretrained(folder)
    return folder


def sentence(rng: np.random.Generator, negated: bool = False) -> str:
    words = list(rng.choice(WORDS[6:], size=4))
    return " ".join(["nobody", *words] if negated else ["the", *words])


def make_civilcomments(root: Path, n: int = 48) -> Path:
    """WILDS' all_data_with_identities.csv: comment_text, toxicity, split and the identity columns (the
    rows cycle through the four toxicity × identity groups in every split)."""
    rng = np.random.default_rng(3)
    root.mkdir(parents=True, exist_ok=True)
    identities = ["male", "female", "LGBTQ", "christian", "muslim", "other_religions", "black", "white"]
    rows = []
    for i in range(n):
        toxic, mentioned = i % 2, (i // 2) % 2
        scores = {name: 0.0 for name in identities}
        scores[identities[i % len(identities)]] = 0.8 if mentioned else 0.2
        split = "train" if i < n - 16 else ("val" if i < n - 8 else "test")
        rows.append(
            {"comment_text": sentence(rng), "toxicity": 0.7 if toxic else 0.1, "split": split, **scores}
        )
    pd.DataFrame(rows).to_csv(root / "all_data_with_identities.csv", index=True)
    return root


def make_multinli(root: Path, n: int = 72) -> Path:
    """The Group DRO code's MultiNLI: the three MultiNLI 1.0 .jsonl files and metadata_random.csv, whose
    first column is each kept row's position in those files (rows with gold label '-' are dropped)."""
    rng = np.random.default_rng(4)
    root.mkdir(parents=True, exist_ok=True)
    names = ("contradiction", "entailment", "neutral")
    pairs, metadata = [], []
    for i in range(n + 3):
        if i % 25 == 24:  # a pair without a gold label, left out of the metadata as the authors' script does
            pairs.append({"sentence1": sentence(rng), "sentence2": sentence(rng), "gold_label": "-"})
            continue
        k = len(metadata)
        label, negation = k % 3, (k // 3) % 2
        split = 0 if k < n - 24 else (1 if k < n - 12 else 2)
        pairs.append(
            {
                "sentence1": sentence(rng),
                "sentence2": sentence(rng, bool(negation)),
                "gold_label": names[label],
            }
        )
        metadata.append({"": i, "gold_label": label, "sentence2_has_negation": negation, "split": split})
    thirds = np.array_split(np.arange(len(pairs)), 3)
    for part, rows in zip(("train", "dev_matched", "dev_mismatched"), thirds):
        lines = [json.dumps(pairs[i]) for i in rows]
        (root / f"multinli_1.0_{part}.jsonl").write_text("\n".join(lines) + "\n")
    pd.DataFrame(metadata).to_csv(root / "metadata_random.csv", index=False)
    return root
