"""Decode one image safely and measure it: metrics, pixel hash, thumbnail and model input.

Everything per-image happens here, in one decode, so a dataset is read from disk once per
analysis. A file that cannot be decoded yields an error string instead of an exception.
"""

from __future__ import annotations

import hashlib
import math
import os
import stat
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import ExifTags, Image, ImageFile, ImageOps

# Truncated files must fail loudly (they are reported as `unreadable`), not decode half-grey.
ImageFile.LOAD_TRUNCATED_IMAGES = False

# Decompression-bomb guard. PIL's default (a warning at 89 Mpx, an error at 179 Mpx) rejects
# ordinary satellite tiles and large scans, so curator sets its own limit: an image declaring
# more pixels than this is reported `unreadable` without being decoded. 1 Gpx is several times
# any camera sensor; decoding one costs at most one full-resolution copy (1-4 bytes per pixel),
# held only until it is reduced (see REDUCE_ABOVE_SIDE). PIL's own check is set to the same
# limit, so its warning can only concern images curator rejects anyway.
MAX_PIXELS = 1_000_000_000
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
# Images with a longer side than this are reduced (box filter, integer factor) to at most
# WORK_SIDE right after decoding, strip by strip, and the full-resolution copy is dropped:
# every output (metrics, thumbnail, model input) is far smaller than WORK_SIDE anyway.
REDUCE_ABOVE_SIDE = 4096
WORK_SIDE = 2048
STRIP_PIXELS = 1 << 22  # pixels per strip while reducing (~16 MB as RGBA)

THUMB_SIZE = 32  # side of the colour thumbnail used to verify near duplicates
THUMB_SHAPE = (THUMB_SIZE, THUMB_SIZE, 3)
METRIC_MAX_SIDE = 256  # metrics are measured on a copy no larger than this
# Above this side the finest scale is measured at the image's own resolution too (native_detail):
# on a copy of at least 0.8 of its size a 1 px blur is still 0.8 px, which fine_detail sees
# (a ~300x200 photo saves the 0.3 ms; Open Clip Art's blurred drawings found only natively were 360-1,123 px)
NATIVE_ABOVE_SIDE = 320
# What the CNN and the thumbnails see of a transparent image: the picture composited onto a
# neutral mid-grey. White (the old rule) made light icons vanish and black made dark ones
# vanish; grey keeps both visible. The photometric metrics ignore the background entirely.
BACKGROUND = (128, 128, 128)
OPAQUE = 0.5  # alpha above which a pixel counts as part of the picture for the Laplacian
ALPHA_MODES = ("RGBA", "LA", "PA", "La", "RGBa")
# Modes of more than 8 bits per pixel: PIL's convert() clips them at 255, so they are scaled
# to 8 bits first (see _eight_bit_scale for the rule).
SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
HIGH_DEPTH_MODES = SIXTEEN_BIT_MODES + ("I", "F")
FILE_KINDS = {
    stat.S_IFIFO: "a named pipe (FIFO)",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
    stat.S_IFDIR: "a directory",
}


class UnreadableImage(Exception):
    """A file curator refuses to decode; the message is the one-line reason."""


@dataclass
class ImageRecord:
    """What one decode of one image produces."""

    metrics: dict
    thumbnail: np.ndarray | None  # (THUMB_SIZE, THUMB_SIZE, 3) uint8, composited on BACKGROUND
    model_input: np.ndarray | None  # (R, R, 3) uint8; the backbone normalises whole batches
    error: str | None = None


@dataclass
class Decoded:
    """A decoded image: ``picture`` is RGB, or RGBA when the file has real transparency,
    turned upright as its EXIF orientation says."""

    picture: Image.Image
    size: tuple[int, int]  # the upright image's (width, height), before any reduction
    bands: int
    # pixel hash of the full-resolution image when ``picture`` is a reduced copy of it
    digest: str | None = None

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


def open_regular(path):
    """Open ``path`` for reading only if it is a regular file (after following symlinks).

    A named pipe would block ``open`` forever and a device can stream without end, so their
    kind is checked with ``stat`` before opening, and again on the open descriptor (opened
    non-blocking) in case the file was swapped in between. Raises UnreadableImage or OSError.
    """
    kind = FILE_KINDS.get(stat.S_IFMT(os.stat(path).st_mode))
    if kind:
        raise UnreadableImage(f"not a regular file: {kind}")
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise UnreadableImage(f"not a regular file: {FILE_KINDS.get(stat.S_IFMT(mode), 'special file')}")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _open_image(fp) -> Image.Image:
    """``Image.open`` with curator's pixel limit instead of PIL's warning (never printed)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(fp)
    except Image.DecompressionBombError:
        raise UnreadableImage(f"image has more than {MAX_PIXELS // 10**6} Mpx (curator's limit); not decoded") from None
    width, height = img.size
    if width * height > MAX_PIXELS:
        img.close()
        raise UnreadableImage(
            f"image is {width}x{height} = {width * height / 1e6:.0f} Mpx, above curator's limit of "
            f"{MAX_PIXELS // 10**6} Mpx (a decompression bomb?); not decoded"
        )
    return img


def probe_size(path) -> tuple[int, int] | None:
    """(width, height) from the image header, or None when the file is not a readable image
    (special files are never opened); reads only the header."""
    try:
        with open_regular(path) as fp, _open_image(fp) as img:
            return img.size
    except Exception:  # unreadable files are reported by the analysis, not here
        return None


def _orientation(img: Image.Image) -> int:
    """The EXIF Orientation (1-8; 1 = stored upright); 1 when the EXIF cannot be read."""
    try:
        value = int(img.getexif().get(ExifTags.Base.Orientation, 1))
    except Exception:  # a broken EXIF block does not make the pixels unreadable
        return 1
    return value if 1 <= value <= 8 else 1


def _upright(picture: Image.Image, orientation: int) -> Image.Image:
    """``picture`` transposed as an EXIF ``orientation`` says (via ImageOps.exif_transpose)."""
    if orientation == 1:
        return picture
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    picture.info["exif"] = exif.tobytes()  # ``picture`` is a fresh image: read on first getexif()
    return ImageOps.exif_transpose(picture)


def _eight_bit_scale(img: Image.Image) -> tuple[float, float] | None:
    """(offset, scale) that maps a high-depth image onto 0..255 as ``(v - offset) * scale``,
    or None for 8-bit modes. The rule keeps brightness comparable across a dataset:
    16-bit modes use the type's range (0..65535 -> /257, how 16-bit PNGs and TIFFs are
    written); 32-bit integer images whose values fit 0..65535 are treated as 16-bit, others
    are stretched over their actual range; float images in 0..1 are scaled by 255, others
    are stretched over their actual (finite) range."""
    if img.mode in SIXTEEN_BIT_MODES:
        return 0.0, 1.0 / 257.0
    if img.mode not in ("I", "F"):
        return None
    lo, hi = img.getextrema()
    if img.mode == "F":
        if not (math.isfinite(lo) and math.isfinite(hi)):
            values = np.asarray(img, dtype=np.float32)
            finite = values[np.isfinite(values)]
            lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        if lo >= 0.0 and hi <= 1.0:
            return 0.0, 255.0
    elif lo >= 0 and hi <= 65535:
        return 0.0, 1.0 / 257.0
    return float(lo), 255.0 / max(float(hi) - float(lo), 1e-12)


def _to_eight_bit(img: Image.Image, scale: tuple[float, float] | None) -> Image.Image:
    """``img`` as an 8-bit mode ("L" for high-depth images, scaled and rounded)."""
    if scale is None:
        return img
    offset, factor = scale
    values = (np.asarray(img, dtype=np.float32) - np.float32(offset)) * np.float32(factor)
    values = np.nan_to_num(values, nan=0.0, posinf=255.0, neginf=0.0)
    return Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), "L")


def _may_have_alpha(img: Image.Image) -> bool:
    return img.mode in ALPHA_MODES or (img.mode == "P" and "transparency" in img.info)


def _hasher(size: tuple[int, int], mode: str, orientation: int):
    """The pixel-hash state for an image of ``size`` (see :func:`pixel_hash`)."""
    h = hashlib.blake2b(digest_size=16)
    turned = f"@{orientation}" if orientation != 1 else ""
    h.update(f"{size[0]}x{size[1]}{mode if mode == 'RGBA' else ''}{turned}".encode())
    return h


def _reduce_large(img: Image.Image, scale, orientation: int) -> tuple[Image.Image, str]:
    """(picture reduced to at most WORK_SIDE, hash of the full-resolution pixels), made strip
    by strip so that no second full-resolution copy (converted, transposed or as bytes) is
    ever held. The hash covers the stored pixels and the orientation."""
    width, height = img.size
    factor = math.ceil(max(width, height) / WORK_SIDE)
    rows = factor * max(1, STRIP_PIXELS // (width * factor))
    working = "RGBA" if _may_have_alpha(img) else "RGB"
    out = Image.new(working, (math.ceil(width / factor), math.ceil(height / factor)))
    hashers = {mode: _hasher(img.size, mode, orientation) for mode in {working, "RGB"}}
    alpha_min = 255
    for top in range(0, height, rows):
        strip = _to_eight_bit(img.crop((0, top, width, min(height, top + rows))), scale).convert(working)
        hashers[working].update(strip.tobytes())
        if working == "RGBA":
            hashers["RGB"].update(strip.convert("RGB").tobytes())
            alpha_min = min(alpha_min, strip.getchannel("A").getextrema()[0])
        out.paste(strip.reduce(factor), (0, top // factor))
        del strip
    if working == "RGBA" and alpha_min == 255:  # opaque: the same as its RGB twin
        return out.convert("RGB"), hashers["RGB"].hexdigest()
    return out, hashers[working].hexdigest()


def decode(path, target: int | None = None) -> Decoded:
    """Decode ``path`` (a regular file of at most MAX_PIXELS) into an upright 8-bit picture.

    Large JPEGs are decoded at reduced size via ``draft``; other images with a side above
    REDUCE_ABOVE_SIDE are reduced right after decoding. Alpha is kept only when some pixel is
    not fully opaque (an opaque RGBA PNG equals its RGB twin). Raises on unreadable files.
    """
    with open_regular(path) as fp, _open_image(fp) as img:
        size = img.size
        bands = len(img.getbands())
        if target and img.format == "JPEG" and min(size) > 4 * target:
            img.draft("RGB", (2 * target, 2 * target))
        img.load()
        orientation = _orientation(img)
        if orientation in (5, 6, 7, 8):  # turned a quarter: width and height swap
            size = (size[1], size[0])
        scale = _eight_bit_scale(img)
        digest = None
        if max(img.size) > REDUCE_ABOVE_SIDE:
            picture, digest = _reduce_large(img, scale, orientation)
        else:
            picture = _to_eight_bit(img, scale)
            if _may_have_alpha(picture):
                rgba = picture.convert("RGBA")
                picture = rgba if rgba.getchannel("A").getextrema()[0] < 255 else picture.convert("RGB")
            else:
                picture = picture.convert("RGB")
    return Decoded(_upright(picture, orientation), size, bands, digest)


def _weighted_percentiles_u8(values_u8: np.ndarray, weights: np.ndarray, qs) -> np.ndarray:
    """Percentiles (in [0, 1]) of 8-bit ``values`` where each pixel counts ``weight`` times
    (alpha weighting): the first grey level whose cumulative weight reaches q% of the total,
    read off a weighted 256-bin histogram instead of sorting every pixel (0.4 against 4 ms
    for 256 x 256 pixels)."""
    cw = np.cumsum(np.bincount(values_u8.ravel(), weights=weights.ravel(), minlength=256))
    targets = np.asarray(qs, dtype=np.float64) / 100.0 * cw[-1]
    return np.minimum(np.searchsorted(cw, targets, side="left"), 255) / 255.0


def _percentiles_u8(gray_u8: np.ndarray, qs) -> np.ndarray:
    """``np.percentile(gray_u8 / 255, qs)`` (linear interpolation) from the 256-bin histogram:
    the order statistics of 8-bit values are read off the cumulative counts instead of
    partitioning every pixel (0.6 ms per 300x200 photo)."""
    counts = np.cumsum(np.bincount(gray_u8.ravel(), minlength=256))
    position = np.asarray(qs, dtype=np.float64) / 100.0 * (counts[-1] - 1)
    below = np.floor(position)
    lower = np.searchsorted(counts, below, side="right")  # value of order statistic k: first cumcount > k
    upper = np.searchsorted(counts, np.minimum(below + 1, counts[-1] - 1), side="right")
    return (lower + (position - below) * (upper - lower)) / 255.0


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


def _edge_metrics(gray: np.ndarray, weight: np.ndarray | None, spread: float, flat: np.ndarray | None) -> tuple[float, float]:
    """(sharpness, fine_detail). A transparent picture is measured inside its opaque part, and
    also with its outline against the neutral background, keeping the sharper of the two
    (sharpness and its fine_detail together): a
    shape filled with a flat colour or a smooth gradient (lettering, discs, a glass battery)
    has no edges inside, only a crisp outline, while blur softens both. Line art or a
    translucent picture has no inside to measure, so only the outline counts. (The outline
    alone was not enough: composited on white, a darkened icon read as soft.)"""
    if weight is None:
        return _laplacian_sharpness(gray, weight, spread), _fine_detail(gray, weight)
    outline = _laplacian_sharpness(flat), _fine_detail(flat)
    if _interior(weight).sum() < MIN_INTERIOR:
        return outline
    inside = _laplacian_sharpness(gray, weight, spread), _fine_detail(gray, weight)
    # the pair of the sharper measurement: fine_detail of an edgeless inside is a ratio of noise
    return inside if not np.isfinite(outline[0]) or inside[0] >= outline[0] else outline


FINE_DETAIL_MIN_SIDE = 24  # below this a half-resolution copy is too small to compare with


def _fine_detail(gray: np.ndarray, weight: np.ndarray | None = None) -> float:
    """Laplacian energy at full resolution over that of a 2x2-averaged copy. Blur removes the
    finest scale first, so this drops for a blurred image; an image whose content is merely
    smooth or large-scale keeps its fine edges and grain, and so its ratio. NaN when small."""
    h, w = (gray.shape[0] // 2) * 2, (gray.shape[1] // 2) * 2
    if min(h, w) < FINE_DETAIL_MIN_SIDE:
        return float("nan")
    half = (gray[0:h:2, 0:w:2] + gray[1:h:2, 0:w:2] + gray[0:h:2, 1:w:2] + gray[1:h:2, 1:w:2]) * 0.25
    half_weight = None if weight is None else weight[:h, :w].reshape(h // 2, 2, w // 2, 2).min(axis=(1, 3))
    fine = _laplacian_sharpness(gray, weight, 1.0)
    coarse = _laplacian_sharpness(half, half_weight, 1.0)
    return float(fine / coarse) if coarse > 1e-6 else float("nan")


def _colour_spread(rgb: Image.Image, weight: np.ndarray | None = None) -> float:
    """Root mean square over R, G and B of each channel's (alpha-weighted) standard deviation,
    in [0, 1], from one 256-bin histogram per channel. Equal to the luminance contrast of a
    greyscale image; larger where colours differ more than their luminances (blue on grey)."""
    levels = np.arange(256) / 255.0
    if weight is None:  # PIL's per-band histograms (C)
        hists = np.asarray(rgb.histogram(), dtype=np.float64).reshape(3, 256)
    else:
        channels_u8 = np.asarray(rgb)
        hists = np.stack([np.bincount(channels_u8[..., k].ravel(), weights=weight.ravel(), minlength=256) for k in range(3)])
    totals = hists.sum(axis=1, keepdims=True)
    means = (hists * levels).sum(axis=1, keepdims=True) / totals
    variances = (hists * (levels - means) ** 2).sum(axis=1) / totals[:, 0]
    return float(np.sqrt(np.mean(variances)))


NATIVE_TILE = 128  # side of the tiles in which a large image's fine detail is measured at its own resolution
NATIVE_TILE_CENTRES = ((0.5, 0.5), (0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75))


def _native_fine_detail(picture: Image.Image) -> float:
    """:func:`_fine_detail` of a picture larger than NATIVE_ABOVE_SIDE at its own resolution: the
    median over five NATIVE_TILE tiles (the centre and the centres of the quadrants) of the
    picture as shown (on the neutral grey, so a crisp outline counts as the edge it is). On
    the 256 px copy a blur of 1-2.5 px of a 1,000 px drawing is a quarter of a pixel: Open
    Clip Art's blurred drawings kept 0.33-0.96 of fine detail there, the clean ones 0.38 and
    more; in native tiles, 0.29-0.42 against 0.52 and more. The median of the tiles keeps
    one flat or one busy region from deciding. A picture of at most twice METRIC_MAX_SIDE is
    measured whole instead (fewer pixels than the five tiles). NaN where too small."""
    width, height = picture.size
    if max(width, height) <= 2 * METRIC_MAX_SIDE:
        return _fine_detail(np.asarray(on_background(picture).convert("L"), dtype=np.float32) / 255.0)
    values = []
    for cx, cy in NATIVE_TILE_CENTRES:
        left = int(min(max(cx * width - NATIVE_TILE / 2, 0), max(width - NATIVE_TILE, 0)))
        top = int(min(max(cy * height - NATIVE_TILE / 2, 0), max(height - NATIVE_TILE, 0)))
        tile = on_background(picture.crop((left, top, left + min(width, NATIVE_TILE), top + min(height, NATIVE_TILE))))
        values.append(_fine_detail(np.asarray(tile.convert("L"), dtype=np.float32) / 255.0))
    values = np.asarray(values)
    return float(np.median(values[np.isfinite(values)])) if np.isfinite(values).any() else float("nan")


def _entropy(gray_u8: np.ndarray, weight: np.ndarray | None = None) -> float:
    hist = np.bincount(gray_u8.ravel(), weights=None if weight is None else weight.ravel(), minlength=256)
    p = hist[hist > 0] / hist.sum()
    return float(-(p * np.log2(p)).sum())


def measure_decoded(d: Decoded, file_size: int) -> dict:
    """Per-image metrics on a copy no larger than METRIC_MAX_SIDE (all in [0, 1] or natural units).

    With transparency every photometric metric is alpha-weighted: fully transparent pixels do
    not count, so a dark icon is dark and a light icon on a transparent background is not
    bright. ``opacity`` is the mean alpha (1 without transparency). ``outline_contrast`` and
    ``outline_entropy`` measure the picture as shown, composited on the neutral grey (equal to
    ``contrast`` and ``entropy`` without transparency): a one-colour symbolic icon has no
    contrast inside, but its silhouette is its content. ``max_channel_high`` (99th percentile
    of each pixel's largest of R, G, B: HSV's value) and ``min_channel_low`` (1st percentile of
    its smallest) say how far the colours themselves are from black and from white: luminance
    alone calls a saturated blue (luminance 0.11) dark and a saturated yellow (0.89) pale,
    while darkening lowers every channel and brightening raises every channel. In a
    greyscale image they equal ``brightness_high`` and ``brightness_low``. ``colour_contrast``
    is the contrast of the colours (:func:`_colour_spread`), inside or as shown, the larger: a
    blue figure on the grey, or red on blue, differs little in luminance but a lot in colour.
    ``native_detail``: for an image larger than NATIVE_ABOVE_SIDE, its ``fine_detail`` at its own
    resolution (:func:`_native_fine_detail`); NaN for the others.
    """
    small = d.picture
    if not d.has_alpha:  # luminance is measured on a grey copy: reduce one channel instead of three
        small = small.convert("L")
    if max(small.size) > METRIC_MAX_SIDE:
        small = small.copy() if small is d.picture else small
        small.thumbnail((METRIC_MAX_SIDE, METRIC_MAX_SIDE), Image.BILINEAR)
    if d.has_alpha:  # the colours, pixel for pixel with the alpha weights, and their luminance
        colour = small.convert("RGB")
        gray_u8 = np.asarray(colour.convert("L"))
    else:  # the colours of an opaque image, from a cheaper box-reduced copy (integer factor)
        gray_u8 = np.asarray(small)
        factor = math.ceil(max(d.picture.size) / METRIC_MAX_SIDE)
        colour = d.picture.reduce(factor) if factor > 1 else d.picture
        colour = colour if colour.mode == "RGB" else colour.convert("RGB")
    channels = np.asarray(colour)
    largest = np.maximum(np.maximum(channels[..., 0], channels[..., 1]), channels[..., 2])
    smallest = np.minimum(np.minimum(channels[..., 0], channels[..., 1]), channels[..., 2])
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
        lo, hi = _percentiles_u8(gray_u8, (1, 99))
        (min_low,), (max_high,) = _percentiles_u8(smallest, (1,)), _percentiles_u8(largest, (99,))
        mean, spread = float(gray.mean()), float(gray.std())
        weight = None
    else:
        lo, hi = _weighted_percentiles_u8(gray_u8, weight, [1, 99])
        (min_low,) = _weighted_percentiles_u8(smallest, weight, [1])
        (max_high,) = _weighted_percentiles_u8(largest, weight, [99])
        mean = float(np.average(gray, weights=weight))
        spread = float(np.sqrt(np.average((gray - mean) ** 2, weights=weight)))
    entropy = _entropy(gray_u8, weight)
    colour_contrast = _colour_spread(colour, weight)
    if weight is None:
        flat, outline_contrast, outline_entropy = None, spread, entropy
    else:  # as shown: on the neutral grey, where a one-colour silhouette has its shape to show
        shown = on_background(small)
        flat_u8 = np.asarray(shown.convert("L"))
        flat = flat_u8.astype(np.float32) / 255.0
        outline_contrast, outline_entropy = float(flat.std()), _entropy(flat_u8)
        colour_contrast = max(colour_contrast, _colour_spread(shown))
    sharpness, fine_detail = _edge_metrics(gray, weight, spread, flat)
    # well above the metrics copy: its finest scale is measured at its own resolution too
    native_detail = _native_fine_detail(d.picture) if max(d.picture.size) > NATIVE_ABOVE_SIDE else float("nan")
    metrics.update(
        brightness=mean,
        brightness_high=float(hi),
        brightness_low=float(lo),
        max_channel_high=float(max_high),
        min_channel_low=float(min_low),
        contrast=spread,
        sharpness=sharpness,
        fine_detail=fine_detail,
        native_detail=native_detail,
        entropy=entropy,
        outline_contrast=outline_contrast,
        outline_entropy=outline_entropy,
        colour_contrast=colour_contrast,
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
    """Decode and measure one image; never raises for bad files (nor blocks on special ones)."""
    try:
        info = os.stat(path)
    except OSError as exc:
        return ImageRecord(unreadable_metrics(None, f"cannot read file: {exc.strerror or exc}"), None, None, "missing")
    if not stat.S_ISREG(info.st_mode):
        kind = FILE_KINDS.get(stat.S_IFMT(info.st_mode), "special file")
        return ImageRecord(unreadable_metrics(None, f"not a regular file: {kind}"), None, None, "special")
    file_size = info.st_size
    if file_size == 0:
        return ImageRecord(unreadable_metrics(0, "empty file (0 bytes)"), None, None, "empty")
    try:
        decoded = decode(path, resolution)
    except UnreadableImage as exc:
        return ImageRecord(unreadable_metrics(file_size, str(exc)), None, None, "refused")
    except Exception as exc:  # PIL raises many types for bad data; all mean "unreadable"
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return ImageRecord(unreadable_metrics(file_size, f"cannot decode image: {message}"), None, None, "decode")
    metrics = measure_decoded(decoded, file_size)
    metrics["pixel_hash"] = decoded.digest or pixel_hash(decoded.picture)
    rgb = decoded.composite()
    model_input = None
    if resolution:
        model_input = np.asarray(rgb.resize((resolution, resolution), Image.BILINEAR), dtype=np.uint8)
    return ImageRecord(metrics, thumbnail(rgb), model_input)
