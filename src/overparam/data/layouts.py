"""Generated datasets in the real on-disk layouts of CelebA and Waterbirds: tiny ones for the tests, and a
CelebA-sized one for the image pipeline benchmark (`benchmarks/images.py`)."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
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
