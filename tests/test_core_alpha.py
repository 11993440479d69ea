"""Transparency: photometric metrics describe the picture, not its transparent background, and
the CNN and the thumbnails see transparent pixels as neutral grey (issue #7)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageDraw, ImageFilter

from curator.checks.image_checks import BlurryCheck, BrightCheck, DarkCheck, LowInformationCheck
from curator.imaging import BACKGROUND, read_image


def line_art(seed: int, size: int = 48) -> Image.Image:
    """A chart-like icon: thin 1-px coloured polylines on transparency, no opaque interior."""
    rng = np.random.default_rng(seed)
    img = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    for _ in range(2):
        pts = [(x, int(rng.integers(6, size - 6))) for x in range(4, size - 3, 8)]
        draw.line(pts, fill=tuple(int(v) for v in rng.integers(40, 220, 3)) + (255,), width=1)
    return img


def icon(seed: int, light: bool = False, size: int = 48) -> Image.Image:
    """A synthetic icon on a transparent background: a coloured shape with a darker outline and
    some detail, or (light) a white 'document' with a grey outline and text lines."""
    rng = np.random.default_rng(seed)
    img = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    m = int(rng.integers(4, 10))
    if light:
        draw.rectangle((m, m // 2, size - m, size - m // 2), fill=(250, 250, 250, 255), outline=(150, 150, 150, 255))
        for y in range(m + 6, size - m, 5):
            draw.line((m + 5, y, size - m - 5 - int(rng.integers(0, 10)), y), fill=(205, 205, 205, 255))
    else:
        colour = tuple(int(v) for v in rng.integers(40, 220, 3))
        shape = draw.ellipse if seed % 2 else draw.rounded_rectangle
        kwargs = {} if seed % 2 else {"radius": 6}
        shape((m, m, size - m, size - m), fill=colour + (255,), outline=(20, 20, 20, 255), width=2, **kwargs)
        c = size // 2
        draw.polygon([(c, m + 6), (size - m - 6, c), (c, size - m - 6)], fill=(250, 250, 250, 255))
    return img


def scale_rgb(img: Image.Image, fn) -> Image.Image:
    a = np.asarray(img, dtype=np.float32)
    a[..., :3] = fn(a[..., :3])
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8), "RGBA")


def metrics_of(images, tmp_path) -> pd.DataFrame:
    rows = []
    for i, img in enumerate(images):
        path = tmp_path / f"{i:03d}.png"
        img.save(path)
        row = dict(read_image(path, resolution=None).metrics)
        row["item_id"] = i
        rows.append(row)
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def icon_set(tmp_path_factory):
    """24 colour icons + 8 light icons (clean), then: a darkened icon (RGB x 0.2, alpha kept),
    a brightened one, a nearly fully transparent one."""
    clean = [icon(s) for s in range(24)] + [icon(100 + s, light=True) for s in range(8)] + [line_art(s) for s in range(4)]
    dark = scale_rgb(icon(3), lambda c: c * 0.2)
    bright = scale_rgb(icon(4), lambda c: 255 - (255 - c) * 0.15)
    ghost = Image.new("RGBA", (48, 48), (0, 0, 0, 0))
    ImageDraw.Draw(ghost).point([(20, 20), (21, 20)], fill=(255, 0, 0, 255))
    images = clean + [dark, bright, ghost]
    m = metrics_of(images, tmp_path_factory.mktemp("icons"))
    return m, {"clean": set(range(len(clean))), "light": set(range(24, 32)), "line_art": set(range(32, 36)),
               "dark": len(clean), "bright": len(clean) + 1, "ghost": len(clean) + 2}


def flagged(check, metrics) -> set[int]:
    return set(check.find(metrics)["item_id"].astype(int))


def test_darkened_icon_is_dark_and_no_clean_one_is(icon_set):
    m, ids = icon_set
    found = flagged(DarkCheck(), m)
    assert ids["dark"] in found
    assert not found & ids["clean"]


def test_light_icons_on_transparency_are_not_bright(icon_set):
    m, ids = icon_set
    found = flagged(BrightCheck(), m)
    assert ids["bright"] in found
    assert not found & ids["light"]
    assert found <= {ids["bright"], ids["ghost"]}


def test_clean_icons_are_not_blurry(icon_set):
    m, ids = icon_set
    assert not flagged(BlurryCheck(), m) & ids["clean"]


def test_line_art_is_measured_against_the_background(tmp_path):
    """Thin lines have no opaque interior: their edges are measured on the grey composite
    (finite sharpness), and blurring them lowers it."""
    crisp = line_art(7)
    soft = crisp.filter(ImageFilter.GaussianBlur(1.5))
    m = metrics_of([crisp, soft], tmp_path)
    assert np.isfinite(m["sharpness"]).all()
    assert m.loc[1, "sharpness"] < 0.6 * m.loc[0, "sharpness"]


def test_nearly_transparent_image_is_low_information(icon_set):
    m, ids = icon_set
    assert m.loc[ids["ghost"], "opacity"] < 0.01
    assert ids["ghost"] in flagged(LowInformationCheck(), m)
    assert not flagged(LowInformationCheck(), m) & ids["clean"]


def test_metrics_ignore_the_colour_of_transparent_pixels(tmp_path):
    """The same icon whose invisible pixels are black or white measures the same."""
    base = np.asarray(icon(5), dtype=np.uint8).copy()
    other = base.copy()
    other[base[..., 3] == 0, :3] = 255
    m = metrics_of([Image.fromarray(base, "RGBA"), Image.fromarray(other, "RGBA")], tmp_path)
    for col in ("brightness", "brightness_high", "brightness_low", "contrast", "sharpness", "entropy"):
        assert m.loc[0, col] == pytest.approx(m.loc[1, col], rel=1e-6), col


def test_model_input_and_thumbnail_show_transparency_as_grey(tmp_path):
    img = Image.new("RGBA", (64, 64), (255, 0, 0, 0))  # invisible red
    ImageDraw.Draw(img).rectangle((24, 24, 40, 40), fill=(0, 0, 255, 255))
    path = tmp_path / "x.png"
    img.save(path)
    rec = read_image(path, resolution=96)
    assert tuple(rec.thumbnail[0, 0]) == BACKGROUND
    assert tuple(rec.model_input[0, 0]) == BACKGROUND
    assert rec.thumbnail[16, 16, 2] > 200 and rec.thumbnail[16, 16, 0] < 50  # the blue square
    assert rec.metrics["opacity"] == pytest.approx(17 * 17 / 64 / 64, rel=0.01)


def test_opaque_rgba_equals_its_rgb_twin(tmp_path):
    """An RGBA PNG whose alpha is 255 everywhere is the same picture as the RGB file."""
    rgb = Image.fromarray(np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8))
    rgb.save(tmp_path / "a.png")
    rgb.convert("RGBA").save(tmp_path / "b.png")
    a, b = (read_image(tmp_path / n, resolution=None).metrics for n in ("a.png", "b.png"))
    assert a["pixel_hash"] == b["pixel_hash"]
    assert a["opacity"] == b["opacity"] == 1.0


def gradient_disc(seed: int, size: int = 48) -> Image.Image:
    """A disc filled with a smooth vertical gradient, crisp-edged, on transparency: no edge
    inside it, only its outline (like the lettering and glossy discs of an icon theme)."""
    rng = np.random.default_rng(seed)
    top, bottom = rng.integers(30, 230, 3), rng.integers(30, 230, 3)
    ramp = np.linspace(0, 1, size)[:, None, None]
    rgb = (top * (1 - ramp) + bottom * ramp) * np.ones((1, size, 1))
    mask = Image.new("L", (size, size), 0)
    m = int(rng.integers(4, 10))
    ImageDraw.Draw(mask).ellipse((m, m, size - m, size - m), fill=255)
    return Image.fromarray(np.dstack([rgb, np.asarray(mask)]).astype(np.uint8), "RGBA")


def test_smoothly_filled_shapes_are_judged_by_their_outline(icon_set, tmp_path):
    """Beside textured icons, a crisp disc with a gradient fill has almost no edge energy
    inside; its outline says it is sharp. Blurring it (outline included) still shows."""
    m, _ = icon_set
    discs = [gradient_disc(s) for s in range(6)]
    blurred = discs[0].filter(ImageFilter.GaussianBlur(2.0))
    extra = metrics_of(discs + [blurred], tmp_path)
    extra["item_id"] += len(m)
    both = pd.concat([m, extra], ignore_index=True)
    found = flagged(BlurryCheck(), both)
    assert not found & set(range(len(m), len(m) + 6))
    assert len(m) + 6 in found


def symbolic(seed: int, paint=(0, 0, 0), size: int = 48) -> Image.Image:
    """A symbolic icon (Adwaita's ``*-symbolic`` style): shapes in one flat paint on
    transparency, so the inside has one grey level and the silhouette is the content."""
    rng = np.random.default_rng(seed)
    img = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    for _ in range(3):
        x0, y0 = (int(v) for v in rng.integers(4, size // 2, 2))
        x1, y1 = x0 + int(rng.integers(8, size // 2)), y0 + int(rng.integers(8, size // 2))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x0, y0, x1, y1), fill=paint + (255,))
    return img


@pytest.mark.parametrize("paint, tone", [((0, 0, 0), DarkCheck), ((255, 255, 255), BrightCheck)])
def test_a_symbolic_icon_set_is_neither_dark_bright_nor_empty(tmp_path, paint, tone):
    """Adwaita's 648 symbolic icons, class per folder, were 617 `dark` and 620
    `low_information`: black paint has no contrast inside. Their shapes show on the grey they
    are displayed on, so they are content and not a black (or, painted white, a white)
    frame; an icon with nothing opaque is still empty."""
    icons = [symbolic(seed, paint) for seed in range(30)]
    empty = Image.new("RGBA", (48, 48), paint + (0,))
    m = metrics_of(icons + [empty], tmp_path)
    assert (m["contrast"].iloc[:30] < 0.02).all()  # flat inside: the shape is all there is
    assert flagged(tone(), m) <= {30}  # (the empty one may be reported by its colour too)
    assert flagged(LowInformationCheck(), m) == {30}


def minus_sign(size: int = 48) -> Image.Image:
    """A black bar on transparency: a minus sign of a clip-art alphabet."""
    img = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    ImageDraw.Draw(img).rectangle((8, size // 2 - 3, size - 8, size // 2 + 3), fill=(0, 0, 0, 255))
    return img


def test_black_paint_among_colour_icons_is_neither_dark_nor_empty(tmp_path):
    """Tux Paint's clip-art stamps: 204 of the 208 black-inked letters and signs among the
    colour drawings were flagged `dark`, and with that fixed, a dozen `low_information`. A
    picture in one flat paint on transparency is drawn that way: its shape is its content and
    its tone is its design; so is dark grey ink (Open Clip Art's arrows and signs). A darkened
    colour icon, which keeps its detail, is still dark, and so is flat paint of a dark colour."""
    images = [gradient_disc(seed) for seed in range(30)] + [symbolic(99), minus_sign(),
                                                         scale_rgb(gradient_disc(31), lambda a: a * 0.2),
                                                         symbolic(97, paint=(50, 50, 50)),
                                                         symbolic(96, paint=(60, 8, 8))]
    m = metrics_of(images, tmp_path)
    assert not {30, 31, 33} & flagged(LowInformationCheck(), m)
    assert flagged(DarkCheck(), m) == {32, 34}


def test_white_paint_is_not_bright_but_black_paint_brightened_to_pale_grey_is(tmp_path):
    """White paint cannot be brightened; a black letter brightened into pale grey paint (the
    suite's planted `bright` stamps) is bright like any brightened picture."""
    images = [gradient_disc(seed) for seed in range(30)] + [
        symbolic(99, paint=(255, 255, 255)),
        scale_rgb(gradient_disc(31), lambda a: 255 - (255 - a) * 0.15),
        symbolic(98, paint=(220, 220, 220)),
    ]
    m = metrics_of(images, tmp_path)
    assert flagged(BrightCheck(), m) == {31, 32}


def outline_drawing(size: int = 200) -> Image.Image:
    """A map-like outline: a 1-px black closed line on a large transparent canvas (about 1%
    of its pixels), as Open Clip Art's line drawings are."""
    img = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    ImageDraw.Draw(img).ellipse((30, 40, size - 30, size - 50), outline=(0, 0, 0, 255), width=1)
    return img


def test_thin_line_drawings_are_content_but_an_empty_canvas_is_not(tmp_path):
    """Open Clip Art at native size: 94 of 1,098 clean drawings were `low_information`, most
    of them outlines in one flat paint whose lines cover 1-5% of the canvas, so the spread of
    grey levels over the canvas (and the mean alpha) is low. Their lines show: content. A
    canvas with nothing on it is still empty."""
    images = [gradient_disc(seed) for seed in range(30)] + [outline_drawing(), Image.new("RGBA", (200, 200))]
    m = metrics_of(images, tmp_path)
    assert m["opacity"].iloc[30] < LowInformationCheck().min_opacity
    found = flagged(LowInformationCheck(), m)
    assert 30 not in found and 31 in found


def colour_disc(low, high, seed: int = 0, size: int = 48) -> Image.Image:
    """A disc of a textured colour (each pixel drawn between ``low`` and ``high`` per channel),
    on transparency."""
    rgb = np.random.default_rng(seed).uniform(low, high, (size, size, 3))
    mask = Image.new("L", (size, size), 0)
    ImageDraw.Draw(mask).ellipse((6, 6, size - 6, size - 6), fill=255)
    return Image.fromarray(np.dstack([rgb, np.asarray(mask)]).astype(np.uint8), "RGBA")


def test_saturated_colours_are_not_dark_or_bright_but_darkened_and_brightened_ones_are(tmp_path):
    """Open Clip Art: blue maps, red ladybirds and puzzle pieces were `dark` (a saturated blue's
    luminance is 0.11, a red's 0.30) and two thirds of the `dark` flags were clean drawings.
    Darkening lowers every channel, brightening raises every channel: the colours themselves
    (``max_channel_high``, ``min_channel_low``) must be far from white or black too."""
    blue, yellow = colour_disc((0, 0, 150), (15, 15, 255)), colour_disc((240, 240, 0), (255, 255, 15))
    images = [gradient_disc(seed) for seed in range(30)] + [
        blue, yellow, scale_rgb(blue, lambda a: a * 0.2), scale_rgb(yellow, lambda a: 255 - (255 - a) * 0.15)]
    m = metrics_of(images, tmp_path)
    assert m["brightness_high"].iloc[30] < 0.2 and m["max_channel_high"].iloc[30] > 0.95
    assert m["brightness_low"].iloc[31] > 0.82 and m["min_channel_low"].iloc[31] < 0.05
    assert flagged(DarkCheck(), m) == {32}
    assert flagged(BrightCheck(), m) == {33}
    # without the colour metrics (a project measured before them) luminance alone decides
    old = m.drop(columns=["max_channel_high", "min_channel_low"])
    assert 30 in flagged(DarkCheck(), old) and 31 in flagged(BrightCheck(), old)


def test_greyscale_colour_extremes_equal_the_luminance_ones(tmp_path):
    rng = np.random.default_rng(0)
    grey = Image.fromarray(rng.integers(0, 256, (40, 200), dtype=np.uint8), "L")
    m = metrics_of([grey, grey.convert("RGB")], tmp_path)
    for col, lum in (("max_channel_high", "brightness_high"), ("min_channel_low", "brightness_low")):
        assert m[col].tolist() == pytest.approx(m[lum].tolist(), abs=1e-9)


def test_an_invisible_image_is_low_information_neither_dark_nor_bright(tmp_path):
    """A fully transparent canvas has a tone nobody sees (its hidden pixels are black here)."""
    images = [gradient_disc(seed) for seed in range(30)] + [Image.new("RGBA", (48, 48), (0, 0, 0, 0)),
                                                         Image.new("RGBA", (48, 48), (255, 255, 255, 0))]
    m = metrics_of(images, tmp_path)
    assert not {30, 31} & (flagged(DarkCheck(), m) | flagged(BrightCheck(), m))
    assert {30, 31} <= flagged(LowInformationCheck(), m)


def blue_stick_figure(size: int = 48) -> Image.Image:
    """Open Clip Art's stick figures: blue body, thin dark-blue limbs, on transparency."""
    img = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    draw.ellipse((19, 3, 29, 13), fill=(30, 110, 230, 255))
    draw.ellipse((20, 15, 28, 31), fill=(30, 110, 230, 255))
    for line in ((22, 30, 17, 44), (26, 30, 31, 44), (21, 18, 11, 10), (27, 18, 37, 10)):
        draw.line(line, fill=(20, 40, 120, 255), width=1)
    return img


def grain_disc(seed: int, size: int = 48) -> Image.Image:
    """A disc of tinted grey grain: as much contrast in luminance as in colour."""
    rng = np.random.default_rng(seed)
    rgb = rng.uniform(30, 226, (size, size, 1)) * rng.uniform(0.85, 1.0, 3)
    mask = Image.new("L", (size, size), 0)
    ImageDraw.Draw(mask).ellipse((4, 4, size - 4, size - 4), fill=255)
    return Image.fromarray(np.dstack([rgb, np.asarray(mask)]).astype(np.uint8), "RGBA")


def test_a_figure_whose_colours_differ_more_than_its_luminance_is_not_faint(tmp_path):
    """A blue figure on the grey has little luminance contrast (0.09 against a median of 0.21
    here) but its colours stand apart: content, not a faint image. Measured in grey levels
    only (metrics from before ``colour_contrast``), it is flagged."""
    m = metrics_of([grain_disc(seed) for seed in range(30)] + [blue_stick_figure()], tmp_path)
    assert 30 not in flagged(LowInformationCheck(), m)
    assert 30 in flagged(LowInformationCheck(), m.drop(columns=["colour_contrast", "outline_contrast"]))
    (tmp_path / "grey").mkdir()
    grey = metrics_of([grain_disc(0).convert("LA").convert("RGBA")], tmp_path / "grey")
    assert grey["colour_contrast"].iloc[0] == pytest.approx(max(grey["contrast"].iloc[0], grey["outline_contrast"].iloc[0]), abs=2e-3)


def test_a_figure_that_covers_little_of_its_canvas_is_content_not_faint(tmp_path):
    """Open Clip Art's stick figures cover a tenth of their canvas: spread over it, their
    colours differ little (colour contrast 0.10-0.12 against a median of 0.24), yet their
    shape stands out on the grey, which is content, as it is for the sparse rule (eight clean
    figures of seed 0 were `low_information`). An opaque picture that is faint in grey levels
    and colour, with no silhouette to show, still is."""
    canvas = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    canvas.paste(blue_stick_figure(), (8, 8))
    rng = np.random.default_rng(0)
    faint = Image.fromarray(np.clip(128 + rng.choice([-6, 6], (48, 48, 1)) * np.ones(3), 0, 255).astype(np.uint8), "RGB")
    discs = []
    for seed in range(30):  # grain over the whole range: a median contrast near Open Clip Art's
        disc = np.asarray(grain_disc(seed)).copy()
        disc[..., :3] = np.random.default_rng(seed).uniform(0, 255, (48, 48, 1)) * np.ones(3)
        discs.append(Image.fromarray(disc, "RGBA"))
    m = metrics_of(discs + [canvas, faint.convert("RGBA")], tmp_path)
    figure, opaque_faint = 30, 31
    assert m["colour_contrast"][figure] < 0.5 * m["colour_contrast"].median()  # the case in point
    found = flagged(LowInformationCheck(), m)
    assert figure not in found
    assert opaque_faint in found
