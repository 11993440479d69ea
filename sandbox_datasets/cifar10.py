"""``cifar10``: CIFAR-10 -> ``cifar10-train`` (50,000) and ``cifar10-test`` (10,000), 32x32 colour.

The python-version archive from torchvision's ``CIFAR10.url`` / ``tgz_md5``, safely extracted;
the batches (pickles inside the md5-verified archive, read the way torchvision reads them) are
written as PNGs into ``<dir>/cifar10-<split>/images/<class>/<index>.png``.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from curator.errors import CuratorError

from . import Recipe
from ._common import Resource, cache_dir, create_projects, fetch, safe_extract, work_dir
from .mnist import png_writer

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
MD5 = "c58f30108f718f92721af3b95e74349a"
RESOURCES = {"archive": Resource("cifar-10-python.tar.gz", MD5, (URL,))}
BASE_FOLDER = "cifar-10-batches-py"
SPLITS = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}


def _load(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            return pickle.load(f, encoding="latin1")
    except Exception as exc:
        raise CuratorError(f"cifar10: cannot read {path.name} from the archive ({exc})") from None


def read_split(root: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    images, labels = [], []
    for name in SPLITS[split]:
        entry = _load(root / name)
        images.append(np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labels.extend(entry["labels"] if "labels" in entry else entry["fine_labels"])
    return np.ascontiguousarray(np.concatenate(images)), np.asarray(labels, dtype=int)


def build(target_dir: Path, force: bool = False) -> list[Path]:
    cache = cache_dir(Path(target_dir), "cifar10")
    archive = fetch("cifar10", RESOURCES["archive"], cache, force)
    with work_dir(cache) as work:
        root = safe_extract(archive, work) / BASE_FOLDER
        if not root.is_dir():
            raise CuratorError(f"cifar10: {archive.name} has no {BASE_FOLDER}/ folder")
        classes = [str(c).replace("/", "_") for c in _load(root / "batches.meta")["label_names"]]
        specs = []
        for split in ("train", "test"):
            images, labels = read_split(root, split)
            name = f"cifar10-{split}"
            specs.append((name, f"CIFAR-10 ({URL})", png_writer(images, labels, classes, f"{name}: writing images")))
        return create_projects(Path(target_dir), force, specs)


RECIPE = Recipe(
    name="cifar10",
    description="CIFAR-10 tiny colour photos, 32x32 -> cifar10-train, cifar10-test",
    size="60,000 images (50k/10k), 10 classes, 163 MB",
    source="www.cs.toronto.edu/~kriz/cifar.html",
    licence="no licence stated; cite Krizhevsky 2009",
    projects=("cifar10-train", "cifar10-test"),
    build=build,
)
