"""``caltech101``: Caltech-101 -> ``caltech101-train`` and ``caltech101-test``.

The official archive (the URL and md5 torchvision's ``Caltech101.download`` uses) is
``caltech-101.zip`` holding ``caltech-101/101_ObjectCategories.tar.gz``; both are extracted
safely, the background class ``BACKGROUND_Google`` is left out (as torchvision and Encord's
sandbox do), and each of the 101 classes is split 60/40 into train/test with a fixed seed
(stratified: every class keeps the same proportion). Images are moved into
``<dir>/caltech101-<split>/images/<class>/image_XXXX.jpg``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from curator.errors import CuratorError

from . import Recipe
from ._common import Resource, cache_dir, create_projects, fetch, image_record, safe_extract, work_dir

URL = "https://data.caltech.edu/records/mzrjq-6wc02/files/caltech-101.zip"
MD5 = "3138e1922a9193bfa496528edbbc45d0"
RESOURCES = {"archive": Resource("caltech-101.zip", MD5, (URL,))}
BACKGROUND = "BACKGROUND_Google"
TRAIN_FRACTION = 0.6
SEED = 101
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def stratified_split(files_by_class: dict[str, list[Path]], train_fraction: float = TRAIN_FRACTION,
                     seed: int = SEED) -> tuple[list[tuple[Path, str]], list[tuple[Path, str]]]:
    """Per class (in sorted order, files sorted): shuffle with one seeded generator and put
    round(train_fraction * n) in train (at least one in each split when n >= 2)."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for label in sorted(files_by_class):
        files = sorted(files_by_class[label])
        n = len(files)
        n_train = int(round(train_fraction * n))
        if n >= 2:
            n_train = min(max(n_train, 1), n - 1)
        order = rng.permutation(n)
        train += [(files[i], label) for i in sorted(order[:n_train])]
        test += [(files[i], label) for i in sorted(order[n_train:])]
    return train, test


def _find(root: Path, name: str, want_dir: bool) -> Path:
    for p in sorted(root.rglob(name)):
        if "__MACOSX" not in p.parts and (p.is_dir() if want_dir else p.is_file()):
            return p
    raise CuratorError(f"caltech101: the archive has no {name}")


def _mover(items: list[tuple[Path, str]], desc: str):
    from tqdm import tqdm

    def write(staging: Path, final_root: Path):
        records = []
        for src, label in tqdm(items, desc=desc, unit="img"):
            rel = Path("images") / label / src.name
            (staging / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.move(src, staging / rel)  # the scratch folder is thrown away afterwards
            records.append(image_record(final_root, rel, label))
        return records

    return write


def build(target_dir: Path, force: bool = False) -> list[Path]:
    cache = cache_dir(Path(target_dir), "caltech101")
    archive = fetch("caltech101", RESOURCES["archive"], cache, force)
    with work_dir(cache) as work:
        outer = safe_extract(archive, work / "zip")
        inner = _find(outer, "101_ObjectCategories.tar.gz", want_dir=False)
        categories = _find(safe_extract(inner, work / "categories"), "101_ObjectCategories", want_dir=True)
        shutil.rmtree(outer, ignore_errors=True)
        files_by_class = {
            d.name: [f for f in d.iterdir() if f.is_file() and not f.name.startswith(".")
                     and f.suffix.lower() in IMAGE_SUFFIXES]
            for d in categories.iterdir()
            if d.is_dir() and d.name != BACKGROUND and not d.name.startswith(".")
        }
        files_by_class = {k: v for k, v in files_by_class.items() if v}
        if not files_by_class:
            raise CuratorError("caltech101: no images found in 101_ObjectCategories")
        train, test = stratified_split(files_by_class)
        source = f"Caltech-101 ({URL}), stratified {TRAIN_FRACTION:.0%} split, seed {SEED}, no {BACKGROUND}"
        return create_projects(Path(target_dir), force, [
            ("caltech101-train", source, _mover(train, "caltech101-train: copying images")),
            ("caltech101-test", source, _mover(test, "caltech101-test: copying images")),
        ])


RECIPE = Recipe(
    name="caltech101",
    description="Caltech-101 objects, 101 classes (no background), 60/40 split -> caltech101-train, caltech101-test",
    size="8,677 images (5.2k/3.5k), 101 classes, 137 MB",
    source="data.caltech.edu (CaltechDATA record 20086)",
    licence="CC BY 4.0 (Caltech)",
    projects=("caltech101-train", "caltech101-test"),
    build=build,
)
