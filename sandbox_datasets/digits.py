"""``digits``: scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10 classes), offline.

Written as 8-bit greyscale PNGs (the 0..16 intensities scaled to 0..255) into
``<dir>/digits/images/<label>/<index>.png``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from curator.project import ItemRecord, Project

from . import Recipe


def digits_images() -> tuple[np.ndarray, np.ndarray]:
    """(N, 8, 8) uint8 images and (N,) integer labels."""
    from sklearn.datasets import load_digits

    data = load_digits()
    images = np.clip(np.rint(data.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    return images, data.target.astype(int)


def build(target_dir: Path, force: bool = False) -> list[Path]:
    root = Path(target_dir) / "digits"
    images, labels = digits_images()

    def write(staging: Path):
        records = []
        for i, (img, label) in enumerate(zip(images, labels)):
            rel = Path("images") / str(label) / f"{i:04d}.png"
            (staging / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(staging / rel)
            records.append(ItemRecord(str(root.absolute() / rel), rel.as_posix(), str(label)))
        return records

    Project.create(root, write, source="sklearn.datasets.load_digits", overwrite=force)
    return [root]


RECIPE = Recipe(
    name="digits",
    description="scikit-learn's 8x8 handwritten digits, bundled (no network needed)",
    size="1,797 images, 10 classes, <1 MB",
    source="scikit-learn (UCI ML hand-written digits)",
    licence="CC BY 4.0 (UCI)",
    projects=("digits",),
    build=build,
    offline=True,
)
