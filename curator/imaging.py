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

THUMB_SIZE = 32  # side of the colour thumbnail used to verify near duplicates
THUMB_SHAPE = (THUMB_SIZE, THUMB_SIZE, 3)
METRIC_MAX_SIDE = 256  # metrics are measured on a copy no larger than this
# What the CNN and the thumbnails see of a transparent image: the picture composited onto a
# neutral mid-grey. White (the old rule) made light icons vanish and black made dark ones
# vanish; grey keeps both visible. The photometric metrics ignore the background entirely.
BACKGROUND = (128, 128, 128)
OPAQUE = 0.5  # alpha above which a pixel counts as part of the picture for the Laplacian


@dataclass
class ImageRecord:
    """What one decode of one image produces."""

    metrics: dict
    thumbnail: np.ndarray | None  # (THUMB_SIZE, THUMB_SIZE, 3) uint8, composited on BACKGROUND
    model_input: np.ndarray | None  # (R, R, 3) uint8; the backbone normalises whole batches
    error: str | None = None


@dataclass
class Decoded:
    """A decoded image: ``picture`` is RGB, or RGBA when the file has real transparency."""

    picture: Image.Image
    size: tuple[int, int]  # the file's (width, height), before any draft reduction
    bands: int

    @property
    def has_alpha(self) -> bool:
        return self.picture.mode == "RGBA"

    def composite(self) -> Image.Image:
        """RGB as the CNN and the thumbnails see it: transparency composited onto BACKGROUND."""
        return on_background(self.picture)


def on_background(picture: Image.Image) -> Image.Image:
    """An RGBA picture composited onto BACKGROUND (other modes are returned as they are)."""
    if picture.mode != "RGBA":
        return picture
    background = Image.new("RGB", picture.size, BACKGROUND)
    background.paste(picture, mask=picture.getchannel("A"))
    return background


def decode(path, target: int | None = None) -> Decoded:
    """Decode ``path``; large JPEGs are decoded at reduced size via ``draft``. Alpha is kept
    only when some pixel is not fully opaque (an opaque RGBA PNG equals its RGB twin)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        img = Image.open(path)
        size = img.size
        bands = len(img.getbands())
        if target and img.format == "JPEG" and min(size) > 4 * target:
            img.draft("RGB", (2 * target, 2 * target))
        img.load()
    if img.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        if rgba.getchannel("A").getextrema()[0] < 255:
            return Decoded(rgba, size, bands)
    return Decoded(img.convert("RGB"), size, bands)


def _weighted_percentiles(values: np.ndarray, weights: np.ndarray, qs) -> np.ndarray:
    """Percentiles of ``values`` where each pixel counts ``weight`` times (alpha weighting)."""
    order = np.argsort(values, kind="stable")
    v, cw = values[order], np.cumsum(weights[order])
    targets = np.asarray(qs, dtype=np.float64) / 100.0 * cw[-1]
    return v[np.minimum(np.searchsorted(cw, targets, side="left"), len(v) - 1)]


def _laplacian(gray: np.ndarray) -> np.ndarray:
    return (-4.0 * gray[1:-1, 1:-1] + gray[:-2, 1:-1] + gray[2:, 1:-1] + gray[1:-1, :-2] + gray[1:-1, 2:])


MIN_INTERIOR = 16  # opaque 3x3 stencils needed to measure edges inside a transparent picture


def _interior(weight: np.ndarray) -> np.ndarray:
    """Where the whole 4-neighbour Laplacian stencil lies on opaque pixels (shape of the Laplacian)."""
    inside = weight > OPAQUE
    return inside[1:-1, 1:-1] & inside[:-2, 1:-1] & inside[2:, 1:-1] & inside[1:-1, :-2] & inside[1:-1, 2:]


def _laplacian_sharpness(gray: np.ndarray, weight: np.ndarray | None = None, spread: float | None = None) -> float:
    """Std of the 4-neighbour Laplacian divided by the image's std: blur lowers it, and it does
    not change when an image is only made darker or brighter. With alpha, only stencils that
    lie wholly inside the picture count, so the outline against the background does not."""
    if gray.shape[0] < 3 or gray.shape[1] < 3:
        return 0.0
    spread = float(gray.std()) if spread is None else spread
    if spread < 1e-3:
        return 0.0
    lap = _laplacian(gray)
    if weight is not None:
        stencil = _interior(weight)
        if stencil.sum() < MIN_INTERIOR:  # nothing opaque inside to measure
            return float("nan")
        lap = lap[stencil]
    return float(lap.std() / spread)


def _edge_metrics(gray: np.ndarray, weight: np.ndarray | None, spread: float, picture: Image.Image) -> tuple[float, float]:
    """(sharpness, fine_detail). A transparent picture is measured inside its opaque part; line
    art or a translucent picture has no such part, so its edges against the neutral background
    are measured instead (blur softens those as well)."""
    if weight is not None and _interior(weight).sum() < MIN_INTERIOR:
        flat = np.asarray(on_background(picture).convert("L"), dtype=np.float32) / 255.0
        return _laplacian_sharpness(flat), _fine_detail(flat)
    return _laplacian_sharpness(gray, weight, spread), _fine_detail(gray, weight)


FINE_DETAIL_MIN_SIDE = 24  # below this a half-resolution copy is too small to compare with


def _fine_detail(gray: np.ndarray, weight: np.ndarray | None = None) -> float:
    """Laplacian energy at full resolution over that of a 2x2-averaged copy. Blur removes the
    finest scale first, so this drops for a blurred image; an image whose content is merely
    smooth or large-scale keeps its fine edges and grain, and so its ratio. NaN when small."""
    h, w = (gray.shape[0] // 2) * 2, (gray.shape[1] // 2) * 2
    if min(h, w) < FINE_DETAIL_MIN_SIDE:
        return float("nan")
    half = gray[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
    half_weight = None if weight is None else weight[:h, :w].reshape(h // 2, 2, w // 2, 2).min(axis=(1, 3))
    fine = _laplacian_sharpness(gray, weight, 1.0)
    coarse = _laplacian_sharpness(half, half_weight, 1.0)
    return float(fine / coarse) if coarse > 1e-6 else float("nan")


def _entropy(gray_u8: np.ndarray, weight: np.ndarray | None = None) -> float:
    hist = np.bincount(gray_u8.ravel(), weights=None if weight is None else weight.ravel(), minlength=256)
    p = hist[hist > 0] / hist.sum()
    return float(-(p * np.log2(p)).sum())


def measure_decoded(d: Decoded, file_size: int) -> dict:
    """Per-image metrics on a copy no larger than METRIC_MAX_SIDE (all in [0, 1] or natural units).

    With transparency every photometric metric is alpha-weighted: fully transparent pixels do
    not count, so a dark icon is dark and a light icon on a transparent background is not
    bright. ``opacity`` is the mean alpha (1 without transparency).
    """
    small = d.picture
    if max(small.size) > METRIC_MAX_SIDE:
        small = small.copy()
        small.thumbnail((METRIC_MAX_SIDE, METRIC_MAX_SIDE), Image.BILINEAR)
    gray_u8 = np.asarray(small.convert("RGB").convert("L"))
    gray = gray_u8.astype(np.float32) / 255.0
    weight = np.asarray(small.getchannel("A"), dtype=np.float32) / 255.0 if d.has_alpha else None
    width, height = d.size
    metrics = {
        "readable": 1,
        "error": None,
        "width": int(width),
        "height": int(height),
        "channels": int(d.bands),
        "file_size": int(file_size),
        "aspect_ratio": float(width) / float(max(height, 1)),
        "area": float(width) * float(height),
        "opacity": 1.0 if weight is None else float(weight.mean()),
    }
    if weight is None or weight.sum() < 1.0:  # (nearly) nothing visible: measure it all as is
        lo, hi = np.percentile(gray, [1, 99])
        mean, spread = float(gray.mean()), float(gray.std())
        weight = None
    else:
        flat_w = weight.ravel().astype(np.float64)
        lo, hi = _weighted_percentiles(gray.ravel(), flat_w, [1, 99])
        mean = float(np.average(gray, weights=weight))
        spread = float(np.sqrt(np.average((gray - mean) ** 2, weights=weight)))
    sharpness, fine_detail = _edge_metrics(gray, weight, spread, small)
    metrics.update(
        brightness=mean,
        brightness_high=float(hi),
        brightness_low=float(lo),
        contrast=spread,
        sharpness=sharpness,
        fine_detail=fine_detail,
        entropy=_entropy(gray_u8, weight),
    )
    return metrics


def measure(rgb: Image.Image, size: tuple[int, int], bands: int, file_size: int) -> dict:
    """Metrics of an already decoded RGB or RGBA image (see :func:`measure_decoded`)."""
    picture = rgb if rgb.mode == "RGBA" else rgb.convert("RGB")
    return measure_decoded(Decoded(picture, size, bands), file_size)


def pixel_hash(rgb: Image.Image) -> str:
    """Hash of the decoded pixels (alpha included when present): identical images in different
    files/formats collide."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{rgb.size[0]}x{rgb.size[1]}{rgb.mode if rgb.mode == 'RGBA' else ''}".encode())
    h.update(rgb.tobytes())
    return h.hexdigest()


def thumbnail(rgb: Image.Image) -> np.ndarray:
    """THUMB_SIZE² colour thumbnail (aspect ignored) for pixel-space comparisons."""
    return np.asarray(rgb.convert("RGB").resize((THUMB_SIZE, THUMB_SIZE), Image.BILINEAR), dtype=np.uint8)


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
        decoded = decode(path, resolution)
    except Exception as exc:  # PIL raises many types for bad data; all mean "unreadable"
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return ImageRecord(unreadable_metrics(file_size, f"cannot decode image: {message}"), None, None, "decode")
    metrics = measure_decoded(decoded, file_size)
    metrics["pixel_hash"] = pixel_hash(decoded.picture)
    rgb = decoded.composite()
    model_input = None
    if resolution:
        model_input = np.asarray(rgb.resize((resolution, resolution), Image.BILINEAR), dtype=np.uint8)
    return ImageRecord(metrics, thumbnail(rgb), model_input)
