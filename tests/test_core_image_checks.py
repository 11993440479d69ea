"""Image-level checks on synthetic images: metrics come from the real decoder
(``curator.imaging.read_image``), the checks are the classes in ``curator.checks.image_checks``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageDraw, ImageFilter

from curator.checks.image_checks import (
    IMAGE_CHECKS,
    BlurryCheck,
    BrightCheck,
    DarkCheck,
    LowInformationCheck,
    OddAspectRatioCheck,
    OddSizeCheck,
    UnreadableCheck,
    run_image_checks,
)
from curator.imaging import measure, pixel_hash, read_image

from conftest import digit_images


def decode(path):
    """Decode and measure one file the way analyze does (no model input)."""
    return read_image(path, resolution=None)



def metrics_frame(images, tmp_path, names=None) -> pd.DataFrame:
    """Save each PIL image (or raw bytes) to a file and measure it with ``read_image``."""
    rows = []
    for i, img in enumerate(images):
        name = names[i] if names else f"{i:04d}.png"
        path = tmp_path / name
        if isinstance(img, bytes):
            path.write_bytes(img)
        else:
            img.save(path)
        rec = decode(path)
        row = dict(rec.metrics)
        row["item_id"] = i
        rows.append(row)
    return pd.DataFrame(rows)


def flagged(check, metrics) -> dict[int, str]:
    found = check.find(metrics)
    assert list(found.columns)[:4] == ["item_id", "issue", "score", "severity"]
    assert (found["issue"] == check.name).all()
    assert found["severity"].isin(["severe", "moderate"]).all()
    return dict(zip(found["item_id"].astype(int), found["severity"]))


def _digits(n_per_class=3):
    images, labels = digit_images(per_class=n_per_class, size=32)
    return [Image.fromarray(img) for img in images]


# ----------------------------------------------------------------------------- MNIST-like
@pytest.fixture(scope="module")
def digit_metrics(tmp_path_factory):
    """30 clean digits (black background, white strokes) + one dimmed, one washed-out,
    one blurred, one flat grey image."""
    tmp = tmp_path_factory.mktemp("digit_checks")
    imgs = _digits(3)
    n_clean = len(imgs)
    a = np.asarray(imgs[0]).astype(np.float32)
    extra = [
        Image.fromarray((a * 0.15).astype(np.uint8)),  # dark: strokes at ~15% intensity
        Image.fromarray((a * 0.15 + 217).astype(np.uint8)),  # bright: everything near white
        imgs[1].filter(ImageFilter.GaussianBlur(2.5)),  # blurry
        Image.new("L", (32, 32), 128),  # flat grey: no information
    ]
    return metrics_frame(imgs + extra, tmp), n_clean


def test_mnist_like_clean_digits_are_not_dark_or_anything_else(digit_metrics):
    metrics, n_clean = digit_metrics
    clean = metrics[metrics["item_id"] < n_clean]
    # sanity: these really are mostly black images
    assert clean["brightness"].median() < 0.35
    for check in IMAGE_CHECKS:
        assert flagged(check, clean) == {}, check.name
    # and clean digits stay unflagged when the planted problems are in the same set
    for check in IMAGE_CHECKS:
        hits = flagged(check, metrics)
        assert not [i for i in hits if i < n_clean], (check.name, hits)


def test_mnist_like_planted_problems_are_found(digit_metrics):
    metrics, n = digit_metrics
    dark, bright, blurry, flat = n, n + 1, n + 2, n + 3
    assert dark in flagged(DarkCheck(), metrics)
    assert bright in flagged(BrightCheck(), metrics)
    assert blurry in flagged(BlurryCheck(), metrics)
    low = flagged(LowInformationCheck(), metrics)
    assert low.get(flat) == "severe"
    # a flat image has no edges: it is low_information, not blurry
    assert flat not in flagged(BlurryCheck(), metrics)
    # only the dimmed digit is dark, only the washed-out one bright
    assert set(flagged(DarkCheck(), metrics)) == {dark}
    assert set(flagged(BrightCheck(), metrics)) == {bright}


def test_all_black_dataset_is_not_flagged_wholesale_but_a_black_image_is(tmp_path):
    """Relative + absolute: a practically black image is dark whatever the dataset."""
    imgs = _digits(1)
    black = Image.new("L", (32, 32), 3)
    m = metrics_frame(imgs + [black], tmp_path)
    hits = flagged(DarkCheck(), m)
    assert set(hits) == {len(imgs)}
    assert hits[len(imgs)] == "severe"


def test_all_white_image_is_bright_and_severe(tmp_path):
    imgs = _digits(1)
    white = Image.new("L", (32, 32), 252)
    m = metrics_frame(imgs + [white], tmp_path)
    hits = flagged(BrightCheck(), m)
    assert set(hits) == {len(imgs)}
    assert hits[len(imgs)] == "severe"


# ----------------------------------------------------------------------------- photo-like
@pytest.fixture(scope="module")
def photo_crops():
    """12 random 240x320 crops of scikit-learn's two sample photos (fixed seed)."""
    from sklearn.datasets import load_sample_images

    photos = load_sample_images().images
    rng = np.random.default_rng(0)
    crops = []
    for k in range(12):
        p = photos[k % 2]
        y = int(rng.integers(0, p.shape[0] - 240))
        x = int(rng.integers(0, p.shape[1] - 320))
        crops.append(Image.fromarray(p[y : y + 240, x : x + 320]))
    return crops


@pytest.fixture(scope="module")
def photo_metrics(photo_crops, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("photo_checks")
    crops = photo_crops
    a0 = np.asarray(crops[0]).astype(np.float32)
    a1 = np.asarray(crops[1]).astype(np.float32)
    extra = [
        Image.fromarray((a0 * 0.2).astype(np.uint8)),  # darkened
        Image.fromarray((a1 * 0.15 + 215).astype(np.uint8)),  # brightened / washed out
        crops[2].filter(ImageFilter.GaussianBlur(4)),  # blurred
    ]
    names = [f"{i:03d}.jpg" for i in range(len(crops) + len(extra))]
    imgs = crops + extra
    # JPEG like real photos (quality high enough not to change sharpness much)
    return metrics_frame(imgs, tmp, names=names), len(crops)


def test_clean_photo_crops_are_not_flagged(photo_metrics):
    metrics, n_clean = photo_metrics
    for check in IMAGE_CHECKS:
        hits = flagged(check, metrics)
        assert not [i for i in hits if i < n_clean], (check.name, hits)
    # and on their own either
    for check in IMAGE_CHECKS:
        assert flagged(check, metrics[metrics["item_id"] < n_clean]) == {}, check.name


def test_darkened_brightened_blurred_photos_are_flagged(photo_metrics):
    metrics, n = photo_metrics
    dark, bright, blurry = n, n + 1, n + 2
    assert set(flagged(DarkCheck(), metrics)) == {dark}
    assert set(flagged(BrightCheck(), metrics)) == {bright}
    assert blurry in flagged(BlurryCheck(), metrics)
    # darkening or brightening alone does not make an image blurry (sharpness is normalised)
    blurry_hits = flagged(BlurryCheck(), metrics)
    assert dark not in blurry_hits
    # the blurred copy is blurry, not dark or bright
    assert blurry not in flagged(DarkCheck(), metrics)
    assert blurry not in flagged(BrightCheck(), metrics)


def test_blurry_with_local_reference(photo_metrics):
    """analyze supplies ``sharpness_reference`` (median sharpness of similar images): an image
    as soft as its neighbours is fine, the blurred copy is still flagged."""
    metrics, n = photo_metrics
    m = metrics.copy()
    # crops alternate between the two photos; the dark, bright and blurred copies come from
    # crops 0, 1 and 2 (photos 0, 1, 0)
    photo = np.array([i % 2 for i in range(n)] + [0, 1, 0])
    clean = m["item_id"] < n
    ref = {k: float(m.loc[clean & (photo == k), "sharpness"].median()) for k in (0, 1)}
    m["sharpness_reference"] = [ref[k] for k in photo]
    hits = flagged(BlurryCheck(), m)
    assert n + 2 in hits
    assert not [i for i in hits if i < n], hits


def test_dark_scores_order_by_severity(photo_crops, tmp_path):
    base = np.asarray(photo_crops[3]).astype(np.float32)
    imgs = list(photo_crops[:8]) + [Image.fromarray((base * f).astype(np.uint8)) for f in (0.3, 0.1)]
    m = metrics_frame(imgs, tmp_path)
    found = DarkCheck().find(m).set_index("item_id")
    assert {8, 9} <= set(found.index)
    assert found.loc[9, "score"] > found.loc[8, "score"]
    assert found.loc[9, "severity"] == "severe"


def test_bright_photo_in_dark_dataset_is_not_flagged_bright(photo_crops, tmp_path):
    """A normal photo among MNIST-like images must not become `bright` just because the rest
    of the set is black (absolute guard)."""
    imgs = _digits(1) + [photo_crops[0]]
    m = metrics_frame(imgs, tmp_path)
    assert len(imgs) - 1 not in flagged(BrightCheck(), m)


# ----------------------------------------------------------------------------- low information
def test_low_information_flat_and_two_tone(photo_crops, tmp_path):
    flat = Image.new("RGB", (320, 240), (90, 120, 60))
    two_tone = np.zeros((240, 320), np.uint8)
    two_tone[:, 160:] = 255
    imgs = list(photo_crops[:8]) + [flat, Image.fromarray(two_tone)]
    m = metrics_frame(imgs, tmp_path)
    hits = flagged(LowInformationCheck(), m)
    assert set(hits) == {8, 9}
    assert hits[8] == "severe"
    found = LowInformationCheck().find(m).set_index("item_id")
    assert found.loc[8, "score"] == pytest.approx(1.0)


# ----------------------------------------------------------------------------- size / aspect
def _noise(w, h, seed):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8))


def test_odd_size(tmp_path):
    imgs = [_noise(32, 32, s) for s in range(10)]
    imgs += [_noise(80, 80, 100), _noise(256, 256, 101), _noise(6, 6, 102), _noise(48, 48, 103)]
    m = metrics_frame(imgs, tmp_path)
    hits = flagged(OddSizeCheck(), m)
    # 6.25x area: moderate; 64x area: severe; 1/28 area: severe; 2.25x area: not odd
    assert hits == {10: "moderate", 11: "severe", 12: "severe"}
    found = OddSizeCheck().find(m).set_index("item_id")
    assert found.loc[11, "score"] == pytest.approx(np.log(64), rel=1e-3)


def test_odd_size_not_flagged_when_sizes_vary_widely(tmp_path):
    rng = np.random.default_rng(1)
    sides = rng.integers(16, 200, size=14)
    imgs = [_noise(int(s), int(s), i) for i, s in enumerate(sides)]
    m = metrics_frame(imgs, tmp_path)
    assert flagged(OddSizeCheck(), m) == {}


def test_odd_aspect_ratio(tmp_path):
    imgs = [_noise(32, 32, s) for s in range(10)]
    imgs += [_noise(80, 32, 100), _noise(128, 16, 101), _noise(16, 96, 102), _noise(40, 32, 103)]
    m = metrics_frame(imgs, tmp_path)
    hits = flagged(OddAspectRatioCheck(), m)
    # 2.5:1 moderate, 8:1 severe, 1:6 severe, 1.25:1 fine
    assert hits == {10: "moderate", 11: "severe", 12: "severe"}


def test_size_and_aspect_use_original_dimensions_of_large_images(tmp_path):
    """Metrics are measured on a downscaled copy, but width/height/area are the originals."""
    img = _noise(1024, 256, 0)
    m = metrics_frame([img], tmp_path)
    assert (int(m.loc[0, "width"]), int(m.loc[0, "height"])) == (1024, 256)
    assert m.loc[0, "aspect_ratio"] == pytest.approx(4.0)
    assert m.loc[0, "area"] == pytest.approx(1024 * 256)


# ----------------------------------------------------------------------------- unreadable
def test_unreadable_files_are_measured_as_unreadable_and_flagged(tmp_path):
    good = _digits(1)
    png = (tmp_path / "src.png")
    good[0].save(png)
    truncated = png.read_bytes()[:60]
    items = good + [b"", b"this is not an image", truncated]
    names = [f"{i:03d}.png" for i in range(len(good))] + ["empty.png", "text.jpg", "trunc.png"]
    m = metrics_frame(items, tmp_path, names=names)
    n = len(good)
    assert m.loc[m["item_id"] >= n, "readable"].tolist() == [0, 0, 0]
    assert m.loc[m["item_id"] >= n, "error"].notna().all()
    hits = flagged(UnreadableCheck(), m)
    assert hits == {n: "severe", n + 1: "severe", n + 2: "severe"}
    # other checks ignore unreadable rows (no NaN-driven false positives, no crash)
    for frame in run_image_checks(m):
        if len(frame) and frame["issue"].iloc[0] != "unreadable":
            assert not set(frame["item_id"]) & {n, n + 1, n + 2}


def test_missing_file_is_unreadable(tmp_path):
    rec = decode(tmp_path / "nope.png")
    assert rec.metrics["readable"] == 0
    assert rec.thumbnail is None and rec.model_input is None


def test_checks_on_all_unreadable_frame_do_not_crash(tmp_path):
    m = metrics_frame([b"", b"junk"], tmp_path, names=["a.png", "b.png"])
    out = run_image_checks(m)
    by_name = {check.name: frame for check, frame in zip(IMAGE_CHECKS, out)}
    assert sorted(by_name["unreadable"]["item_id"]) == [0, 1]
    assert all(len(f) == 0 for k, f in by_name.items() if k != "unreadable")


def test_measure_directly_on_pil_image_matches_read_image(tmp_path):
    img = _digits(1)[5]
    path = tmp_path / "x.png"
    img.save(path)
    rec = decode(path)
    rgb = img.convert("RGB")
    direct = measure(rgb, img.size, 1, path.stat().st_size)
    for key in ("brightness", "brightness_high", "brightness_low", "contrast", "sharpness", "entropy"):
        assert direct[key] == pytest.approx(rec.metrics[key])
    assert pixel_hash(rgb) == rec.metrics["pixel_hash"]


def test_naturally_soft_class_is_not_blurry_but_a_blurred_member_is(photo_crops, tmp_path):
    """A class of naturally soft images (think retina scans beside sharp photos) measured against
    the dataset alone looks blurry; against its own class (``class_reference``, which analyze
    combines with the thumbnail neighbours) it is fine, and a blurred member still stands out."""
    sharp = [c.resize((160, 120), Image.LANCZOS) for c in photo_crops]
    # upsampled 3x: smooth content, no pixel-level detail, like a class of soft scans
    soft = [c.resize((53, 40), Image.BICUBIC).resize((160, 120), Image.BICUBIC) for c in photo_crops[:6]]
    blurred = soft[0].filter(ImageFilter.GaussianBlur(2))
    metrics = metrics_frame(sharp + soft + [blurred], tmp_path)
    labels = np.array(["sharp"] * 12 + ["soft"] * 7, dtype=object)
    soft_ids, blurred_id = set(range(12, 18)), 18

    alone = flagged(BlurryCheck(), metrics)  # dataset median only: the soft class is flagged
    assert soft_ids & set(alone)

    check = BlurryCheck()
    m = metrics.copy()
    m["label"] = labels  # as analyze's metrics frame has them (fine detail is judged per class too)
    m["sharpness_reference"] = check.class_reference(m["sharpness"].to_numpy(), labels)
    hits = flagged(check, m)
    assert set(hits) == {blurred_id}, hits


def test_class_reference_needs_a_label_and_five_members():
    check = BlurryCheck()
    sharpness = np.array([1.0, 1.1, 0.9, 1.0, 1.2, 0.5, 0.6, 0.4])
    labels = np.array(["a"] * 5 + ["b", "b", None], dtype=object)
    ref = check.class_reference(sharpness, labels)
    assert ref[:5] == pytest.approx([1.0] * 5)
    assert np.isnan(ref[5:]).all()


def test_a_class_of_night_scenes_is_judged_against_itself():
    """Dim by nature (a class of night scenes beside day photos) is not dark; one of them
    darkened further is. Likewise a class of pale sketches is not bright, a washed-out one is."""
    rng = np.random.default_rng(0)
    n_day, n_night = 60, 20
    mean = np.r_[rng.uniform(0.4, 0.6, n_day), rng.uniform(0.08, 0.14, n_night), 0.02]
    high = np.r_[rng.uniform(0.9, 1.0, n_day), rng.uniform(0.25, 0.33, n_night), 0.06]
    low = np.r_[rng.uniform(0.0, 0.05, n_day), rng.uniform(0.0, 0.02, n_night), 0.0]
    labels = ["day"] * n_day + ["night"] * n_night + ["night"]
    m = pd.DataFrame({"item_id": np.arange(len(mean)), "readable": 1, "brightness": mean,
                      "brightness_high": high, "brightness_low": low, "label": labels})
    assert set(flagged(DarkCheck(), m)) == {n_day + n_night}
    # the mirror image: pale sketches among ordinary pictures
    pale = m.assign(brightness=1 - mean, brightness_high=1 - low, brightness_low=1 - high)
    assert set(flagged(BrightCheck(), pale)) == {n_day + n_night}


def test_histogram_percentiles_equal_numpy_percentiles():
    from curator.imaging import _percentiles_u8

    rng = np.random.default_rng(0)
    for n in (1, 2, 7, 100, 4096):
        for gray in (rng.integers(0, 256, n), np.clip(rng.normal(30, 5, n), 0, 255), np.full(n, 255)):
            gray = np.asarray(gray, dtype=np.uint8)
            expected = np.percentile(gray.astype(np.float64) / 255.0, [1, 50, 99])
            np.testing.assert_allclose(_percentiles_u8(gray, (1, 50, 99)), expected, atol=1e-9)


def test_darkened_picture_is_dark_not_also_low_information(tmp_path):
    """Darkening x0.12 squeezes a soft picture into a few grey levels: low entropy and
    contrast, which alone read as low information. The tone is the finding; only a picture
    with nothing left (one grey level) is reported as both."""
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:48, 0:48] / 47.0
    pictures = []
    for _ in range(30):
        a, b = rng.uniform(0.2, 0.5, 2)
        soft = 0.45 + a * 0.3 * xx + b * 0.2 * yy + rng.normal(0, 0.015, (48, 48))
        pictures.append(np.clip(soft, 0, 1))
    darkened = np.round(pictures[0] * 255 * 0.12).astype(np.uint8)
    images = [Image.fromarray(np.round(p * 255).astype(np.uint8)) for p in pictures]
    images += [Image.fromarray(darkened), Image.new("L", (48, 48), 2)]
    m = metrics_frame(images, tmp_path)
    dark_one, black = 30, 31
    assert np.unique(darkened).size >= 4  # a picture, if a dim one
    assert dark_one in flagged(LowInformationCheck(), m)  # on its own the check would report it
    by_issue = {frame["issue"].iloc[0]: set(frame["item_id"]) for frame in run_image_checks(m) if len(frame)}
    assert {dark_one, black} <= by_issue["dark"]
    assert black in by_issue["low_information"]
    assert dark_one not in by_issue["low_information"]
    assert not by_issue["low_information"] & set(range(30))


def test_sparse_strokes_are_content_not_low_information():
    """MNIST-like figures (measured on the quality suite's MNIST: median entropy 1.69 bits,
    contrast 0.30): a thin "1" has a third of the usual entropy (few stroke pixels) but most
    of the contrast; it is a digit, not an empty image. A faint smudge (low entropy and low
    contrast) and a black frame with a small bright mark (a fifth of the entropy) are."""
    rng = np.random.default_rng(0)
    n = 40
    m = pd.DataFrame({"item_id": np.arange(n + 3), "readable": 1,
                      "entropy": np.r_[rng.normal(1.7, 0.25, n), 0.52, 0.50, 0.20],
                      "contrast": np.r_[rng.normal(0.30, 0.04, n), 0.21, 0.05, 0.20],
                      "opacity": 1.0})
    thin_one, smudge, marked_frame = n, n + 1, n + 2
    hits = flagged(LowInformationCheck(), m)
    assert thin_one not in hits
    assert {smudge, marked_frame} <= set(hits)
    assert not set(hits) & set(range(n))


def test_blurred_thin_strokes_are_blurry_not_also_dark(tmp_path):
    """Blur spreads a thin stroke's light: the brightest 1% falls (a third of its class's),
    the mean does not. Such an image is blurry, not dark; a darkened one is dark, and one
    both blurred and darkened (its mean down too) is both."""
    rng = np.random.default_rng(0)

    def strokes(width):
        image = Image.new("L", (28, 28), 0)
        draw = ImageDraw.Draw(image)
        for _ in range(2):
            x0, _, x1, _ = rng.integers(4, 24, 4)
            draw.line([(int(x0), 4), (int(x1), 24)], fill=255, width=width)
        return image

    clean = [strokes(int(rng.integers(3, 5))) for _ in range(40)]
    thin = strokes(2)
    blurred = thin.filter(ImageFilter.GaussianBlur(3.0))
    darkened = Image.fromarray((np.asarray(clean[0]) * 0.2).astype(np.uint8))
    both = Image.fromarray((np.asarray(clean[1].filter(ImageFilter.GaussianBlur(2.0))) * 0.2).astype(np.uint8))
    m = metrics_frame(clean + [thin, blurred, darkened, both], tmp_path)
    thin_id, blurred_id, darkened_id, both_id = 40, 41, 42, 43
    assert blurred_id in flagged(DarkCheck(), m)  # by its peaks alone it reads as dim
    by_issue = {frame["issue"].iloc[0]: set(frame["item_id"]) for frame in run_image_checks(m) if len(frame)}
    assert by_issue["blurry"] == {blurred_id, both_id}
    assert by_issue["dark"] == {darkened_id, both_id}  # the thin stroke itself (thin_id) is neither
    assert thin_id not in set().union(*by_issue.values())


def test_strongly_blurred_image_is_blurry_whatever_its_look_alikes():
    """Bold 28 px glyphs are soft (little edge energy for their area), so a blurred "8"
    among them keeps more than half of its look-alikes' sharpness; at less than
    ``neighbour_floor`` (0.15) of the dataset's median it is blurry all the same, while the
    bold ones, at a fifth of the median, stay clean."""
    n_sharp, n_bold = 60, 12
    sharp = np.linspace(0.9, 1.1, n_sharp)
    bold = np.linspace(0.19, 0.22, n_bold)
    m = pd.DataFrame({"item_id": np.arange(n_sharp + n_bold + 2), "readable": 1,
                      "sharpness": np.r_[sharp, bold, 0.12, 0.16],
                      "sharpness_reference": np.r_[np.ones(n_sharp), np.full(n_bold + 2, 0.2)],
                      # 0.40: not lost (< half the median) yet not crisp for a strongly blurred image
                      "fine_detail": np.r_[np.full(n_sharp, 0.65), np.full(n_bold, 0.6), 0.40, 0.6],
                      "contrast": 0.3})
    blurred, soft = n_sharp + n_bold, n_sharp + n_bold + 1
    hits = flagged(BlurryCheck(), m)
    assert blurred in hits
    assert soft not in hits and not set(hits) & set(range(n_sharp + n_bold))


def test_fine_detail_decides_where_the_dataset_has_it():
    """Measured on the quality suite's 64 px photo crops (median fine_detail 0.63-0.66): a
    soft crop of a wall keeps its grain (fine_detail 0.39-0.43) however low its sharpness,
    and is clean; a blurred crop whose look-alikes are as soft (sharpness at its reference)
    has lost the finest scale (under half the median) and is blurry. Among upscaled images
    (median 0.27) the finest scale says nothing, and sharpness alone decides."""
    rng = np.random.default_rng(1)
    n = 60
    sharpness = rng.uniform(0.6, 1.4, n)
    base = {"item_id": np.arange(n + 2), "readable": 1, "contrast": 0.2,
            "sharpness": np.r_[sharpness, 0.25, 0.6],
            "sharpness_reference": np.r_[np.ones(n), 1.0, 0.6]}
    grainy_wall, blurred_among_soft = n, n + 1
    native = pd.DataFrame(base | {"fine_detail": np.r_[rng.uniform(0.55, 0.75, n), 0.41, 0.28]})
    hits = flagged(BlurryCheck(), native)
    assert set(hits) == {blurred_among_soft}
    upscaled = pd.DataFrame(base | {"fine_detail": np.r_[rng.uniform(0.24, 0.30, n), 0.27, 0.12]})
    assert set(flagged(BlurryCheck(), upscaled)) == {grainy_wall}  # a quarter of the median sharpness


def large_drawing(seed: int, side: int = 640) -> Image.Image:
    """Crisp clip-art-like shapes with black outlines on white, at 640 px."""
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", (side, side), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    for _ in range(40):
        x0, y0 = (int(v) for v in rng.integers(0, side - 40, 2))
        w, h = (int(v) for v in rng.integers(20, side // 3, 2))
        shape = (draw.ellipse, draw.rectangle)[int(rng.integers(0, 2))]
        shape((x0, y0, x0 + w, y0 + h), fill=tuple(int(v) for v in rng.integers(0, 256, 3)),
              outline=(0, 0, 0), width=int(rng.integers(1, 4)))
    return img


def test_a_slight_blur_of_a_large_image_is_found_at_its_own_resolution(tmp_path):
    """A 1.5 px blur of a 640 px drawing is about half a pixel on the 256 px copy the other
    metrics use, where it hardly shows (Open Clip Art: blurry recall .44-.53); in native
    tiles its finest scale is clearly gone. Small images have no native_detail."""
    m = metrics_frame([large_drawing(seed) for seed in range(12)] + [large_drawing(3).filter(ImageFilter.GaussianBlur(1.5))], tmp_path)
    assert flagged(BlurryCheck(), m) == {12: "severe"}
    assert flagged(BlurryCheck(), m.drop(columns=["native_detail"])) == {}
    (tmp_path / "small").mkdir()
    small = metrics_frame([large_drawing(0, side=200)], tmp_path / "small")
    assert np.isnan(small["native_detail"].iloc[0])
