"""Decode one image safely and measure it: metrics, pixel hash, thumbnail and model input.

Everything per-image happens here, in one decode, so a dataset is read from disk once per
analysis. A file that cannot be decoded yields an error string instead of an exception.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFile

# Truncated files must fail loudly (they are reported as `unreadable`), not decode half-grey.
ImageFile.LOAD_TRUNCATED_IMAGES = False

THUMB_SIZE = 32  # side of the grayscale thumbnail used to verify near duplicates
METRIC_MAX_SIDE = 256  # metrics are measured on a copy no larger than this


@dataclass
class ImageRecord:
    """What one decode of one image produces."""

    metrics: dict
    thumbnail: np.ndarray | None  # (THUMB_SIZE, THUMB_SIZE) uint8
    model_input: np.ndarray | None  # (R, R, 3) uint8; the backbone normalises whole batches
    error: str | None = None


def open_rgb(path, target: int | None = None) -> tuple[Image.Image, tuple[int, int], int]:
    """Decode ``path`` to RGB; large JPEGs are decoded at reduced size via ``draft``.

    Returns the RGB image, the original (width, height) and the original band count.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        img = Image.open(path)
        size = img.size
        bands = len(img.getbands())
        if target and img.format == "JPEG" and min(size) > 4 * target:
            img.draft("RGB", (2 * target, 2 * target))
        img.load()
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        background = Image.new("RGB", img.size, (255, 255, 255))
        background.paste(img.convert("RGBA"), mask=img.convert("RGBA").getchannel("A"))
        rgb = background
    else:
        rgb = img.convert("RGB")
    return rgb, size, bands


def _laplacian_sharpness(gray: np.ndarray) -> float:
    """Std of the 4-neighbour Laplacian divided by the image's std: blur lowers it, and it does
    not change when an image is only made darker or brighter."""
    if gray.shape[0] < 3 or gray.shape[1] < 3:
        return 0.0
    lap = (
        -4.0 * gray[1:-1, 1:-1]
        + gray[:-2, 1:-1]
        + gray[2:, 1:-1]
        + gray[1:-1, :-2]
        + gray[1:-1, 2:]
    )
    spread = float(gray.std())
    if spread < 1e-3:
        return 0.0
    return float(lap.std() / spread)


def _entropy(gray_u8: np.ndarray) -> float:
    hist = np.bincount(gray_u8.ravel(), minlength=256).astype(np.float64)
    p = hist[hist > 0] / hist.sum()
    return float(-(p * np.log2(p)).sum())


def measure(rgb: Image.Image, size: tuple[int, int], bands: int, file_size: int) -> dict:
    """Per-image metrics on a copy no larger than METRIC_MAX_SIDE (all in [0, 1] or natural units)."""
    small = rgb
    if max(rgb.size) > METRIC_MAX_SIDE:
        small = rgb.copy()
        small.thumbnail((METRIC_MAX_SIDE, METRIC_MAX_SIDE), Image.BILINEAR)
    gray_u8 = np.asarray(small.convert("L"))
    gray = gray_u8.astype(np.float32) / 255.0
    lo, hi = np.percentile(gray, [5, 99])
    width, height = size
    return {
        "readable": 1,
        "error": None,
        "width": int(width),
        "height": int(height),
        "channels": int(bands),
        "file_size": int(file_size),
        "brightness": float(gray.mean()),
        "brightness_high": float(hi),
        "brightness_low": float(lo),
        "contrast": float(gray.std()),
        "sharpness": _laplacian_sharpness(gray),
        "entropy": _entropy(gray_u8),
        "aspect_ratio": float(width) / float(max(height, 1)),
        "area": float(width) * float(height),
    }


def pixel_hash(rgb: Image.Image) -> str:
    """Hash of the decoded pixels: identical images in different files/formats collide."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{rgb.size[0]}x{rgb.size[1]}".encode())
    h.update(rgb.tobytes())
    return h.hexdigest()


def thumbnail(rgb: Image.Image) -> np.ndarray:
    """THUMB_SIZE² grayscale thumbnail (aspect ignored) for pixel-space comparisons."""
    return np.asarray(rgb.convert("L").resize((THUMB_SIZE, THUMB_SIZE), Image.BILINEAR), dtype=np.uint8)


def unreadable_metrics(file_size: int | None, error: str) -> dict:
    return {"readable": 0, "error": error, "file_size": file_size}


def read_image(path, *, resolution: int | None) -> ImageRecord:
    """Decode and measure one image; never raises for bad files."""
    import os

    try:
        file_size = os.path.getsize(path)
    except OSError as exc:
        return ImageRecord(unreadable_metrics(None, f"cannot read file: {exc.strerror or exc}"), None, None, "missing")
    if file_size == 0:
        return ImageRecord(unreadable_metrics(0, "empty file (0 bytes)"), None, None, "empty")
    try:
        rgb, size, bands = open_rgb(path, resolution)
    except Exception as exc:  # PIL raises many types for bad data; all mean "unreadable"
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return ImageRecord(unreadable_metrics(file_size, f"cannot decode image: {message}"), None, None, "decode")
    metrics = measure(rgb, size, bands, file_size)
    metrics["pixel_hash"] = pixel_hash(rgb)
    model_input = None
    if resolution:
        model_input = np.asarray(rgb.resize((resolution, resolution), Image.BILINEAR), dtype=np.uint8)
    return ImageRecord(metrics, thumbnail(rgb), model_input)
