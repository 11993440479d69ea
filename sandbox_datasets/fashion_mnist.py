"""``fashion-mnist``: Zalando's Fashion-MNIST -> ``fashion-mnist-train`` (60,000), ``fashion-mnist-test`` (10,000).

Same IDX format as MNIST (see ``mnist``), from torchvision's FashionMNIST mirror and md5s.
Class folders are filesystem-safe names of torchvision's ``FashionMNIST.classes``.
"""

from __future__ import annotations

from pathlib import Path

from . import Recipe
from ._common import Resource
from .mnist import build_idx_dataset

MIRRORS = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)
FILES = {
    "train_images": ("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
    "train_labels": ("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
    "test_images": ("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
    "test_labels": ("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310"),
}
RESOURCES = {key: Resource(fn, md5, tuple(m + fn for m in MIRRORS)) for key, (fn, md5) in FILES.items()}
# torchvision: "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"
CLASSES = ("t-shirt_top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle_boot")


def build(target_dir: Path, force: bool = False) -> list[Path]:
    return build_idx_dataset("fashion-mnist", RESOURCES, CLASSES, Path(target_dir), force,
                             source="Fashion-MNIST (fashion-mnist.s3-website.eu-central-1.amazonaws.com)")


RECIPE = Recipe(
    name="fashion-mnist",
    description="Zalando's Fashion-MNIST clothing, 28x28 greyscale -> fashion-mnist-train, fashion-mnist-test",
    size="70,000 images (60k/10k), 10 classes, 31 MB",
    source="fashion-mnist.s3-website.eu-central-1.amazonaws.com",
    licence="MIT (Zalando Research)",
    projects=("fashion-mnist-train", "fashion-mnist-test"),
    build=build,
)
