"""``mnist``: the MNIST handwritten digits -> ``mnist-train`` (60,000) and ``mnist-test`` (10,000).

The four IDX ``.gz`` files are fetched from torchvision's MNIST mirrors with torchvision's md5s
(``torchvision.datasets.MNIST.mirrors`` / ``.resources``), decompressed and parsed with
torchvision's IDX reader, and written as 28x28 greyscale PNGs into
``<dir>/mnist-<split>/images/<label>/<index>.png``. ``fashion_mnist`` reuses this module.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from curator.errors import CuratorError

from . import Recipe
from ._common import Resource, cache_dir, create_projects, fetch, image_record, safe_extract, work_dir

MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
FILES = {
    "train_images": ("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
    "train_labels": ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
    "test_images": ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
    "test_labels": ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
}
RESOURCES = {key: Resource(fn, md5, tuple(m + fn for m in MIRRORS)) for key, (fn, md5) in FILES.items()}
CLASSES = tuple(str(i) for i in range(10))


def read_idx_split(dataset: str, resources: Mapping[str, Resource], cache: Path, work: Path, split: str):
    """(N, H, W) uint8 images and (N,) labels of one split from the cached IDX .gz files."""
    from torchvision.datasets.mnist import read_image_file, read_label_file

    arrays = []
    for kind, reader in (("images", read_image_file), ("labels", read_label_file)):
        gz = cache / resources[f"{split}_{kind}"].filename
        raw = work / gz.name[: -len(".gz")]
        safe_extract(gz, work)  # a single .gz is decompressed to work/<name without .gz>
        try:
            arrays.append(reader(str(raw)).numpy())
        except Exception as exc:  # wrong magic number, truncated file, ...
            raise CuratorError(f"{dataset}: {gz.name} is not a valid IDX file ({exc})") from None
        raw.unlink()
    images, labels = arrays
    if len(images) != len(labels):
        raise CuratorError(f"{dataset}: {split} has {len(images)} images but {len(labels)} labels")
    return images.astype(np.uint8), labels.astype(int)


def png_writer(images: np.ndarray, labels: np.ndarray, class_names: Sequence[str], desc: str):
    """A project writer that saves ``images`` as PNGs under images/<class>/<index>.png."""
    from PIL import Image
    from tqdm import tqdm

    def write(staging: Path, final_root: Path):
        for name in set(class_names[int(y)] for y in labels):
            (staging / "images" / name).mkdir(parents=True, exist_ok=True)
        records = []
        width = max(5, len(str(len(images))))
        for i, (img, y) in enumerate(tqdm(zip(images, labels), total=len(images), desc=desc, unit="img")):
            name = class_names[int(y)]
            rel = Path("images") / name / f"{i:0{width}d}.png"
            Image.fromarray(img).save(staging / rel)
            records.append(image_record(final_root, rel, name))
        return records

    return write


def build_idx_dataset(dataset: str, resources: Mapping[str, Resource], class_names: Sequence[str],
                      target_dir: Path, force: bool, source: str) -> list[Path]:
    cache = cache_dir(target_dir, dataset)
    for key in ("train_images", "train_labels", "test_images", "test_labels"):
        fetch(dataset, resources[key], cache, force)
    specs = []
    with work_dir(cache) as work:
        for split in ("train", "test"):
            images, labels = read_idx_split(dataset, resources, cache, work, split)
            if labels.size and (labels.min() < 0 or labels.max() >= len(class_names)):
                raise CuratorError(f"{dataset}: {split} labels outside 0..{len(class_names) - 1}")
            name = f"{dataset}-{split}"
            specs.append((name, source, png_writer(images, labels, class_names, f"{name}: writing images")))
        return create_projects(target_dir, force, specs)


def build(target_dir: Path, force: bool = False) -> list[Path]:
    return build_idx_dataset("mnist", RESOURCES, CLASSES, Path(target_dir), force,
                             source=f"MNIST ({', '.join(MIRRORS)})")


RECIPE = Recipe(
    name="mnist",
    description="MNIST handwritten digits, 28x28 greyscale -> mnist-train, mnist-test",
    size="70,000 images (60k/10k), 10 classes, 12 MB",
    source="ossci-datasets.s3.amazonaws.com/mnist (mirror: yann.lecun.com)",
    licence="CC BY-SA 3.0 (LeCun & Cortes)",
    projects=("mnist-train", "mnist-test"),
    build=build,
)
