"""Exact and near duplicates on synthetic images (real decoder, real thumbnails)."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from curator.checks.duplicates import ExactDuplicateCheck, NearDuplicateCheck, pixel_difference
from curator.imaging import THUMB_SIZE, read_image

from conftest import digit_images


def decode(path):
    """Decode and measure one file the way analyze does (no model input)."""
    return read_image(path, resolution=None)



def measure_files(paths):
    """(metrics frame, thumbnails array indexed by item_id) for image files."""
    rows, thumbs = [], []
    for i, p in enumerate(paths):
        rec = decode(p)
        row = dict(rec.metrics)
        row["item_id"] = i
        rows.append(row)
        thumbs.append(rec.thumbnail if rec.thumbnail is not None else np.zeros((THUMB_SIZE, THUMB_SIZE), np.uint8))
    return pd.DataFrame(rows), np.stack(thumbs)


def all_pairs(ids) -> np.ndarray:
    """Every pair of ids: the check must verify each candidate on its own."""
    ids = np.asarray(list(ids))
    i, j = np.triu_indices(len(ids), k=1)
    return np.stack([ids[i], ids[j]], axis=1)


def groups_of(findings) -> list[set[int]]:
    return sorted(
        (set(g["item_id"].astype(int)) for _, g in findings.groupby("group_id")), key=min
    )


# ----------------------------------------------------------------------------- pixel difference
# (``shifted_pixel_diff`` was renamed ``pixel_difference``: smoothed, shift-tolerant and divided
# by the pair's contrast; the properties below hold for both)
THRESHOLD = NearDuplicateCheck().max_pixel_diff


def test_pixel_difference_basics():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (3, 32, 32), dtype=np.uint8)
    d = pixel_difference(a, a.copy())
    assert d.shape == (3,)
    assert d == pytest.approx(np.zeros(3), abs=1e-7)
    # unrelated random images: far above the near-duplicate threshold
    c = rng.integers(0, 256, (3, 32, 32), dtype=np.uint8)
    assert (pixel_difference(a, c) > 5 * THRESHOLD).all()
    # nearly symmetric (a's central window is compared with shifted windows of b)
    np.testing.assert_allclose(pixel_difference(a, c), pixel_difference(c, a), rtol=0.05)


def test_pixel_difference_tolerates_one_pixel_shift_only_when_allowed():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (4, 32, 32), dtype=np.uint8)
    for dy, dx in [(1, 0), (0, -1), (1, 1), (-1, 1)]:
        b = np.roll(a, shift=(dy, dx), axis=(1, 2))
        assert (pixel_difference(a, b, max_shift=1) < THRESHOLD).all()
        assert (pixel_difference(a, b, max_shift=0) > 5 * THRESHOLD).all()
    # a 2-pixel shift is beyond max_shift=1
    b = np.roll(a, shift=(2, 0), axis=(1, 2))
    assert (pixel_difference(a, b, max_shift=1) > 5 * THRESHOLD).all()
    assert (pixel_difference(a, b, max_shift=2) < THRESHOLD).all()


def test_pixel_difference_small_noise_is_below_threshold():
    rng = np.random.default_rng(2)
    digits = digit_images(per_class=1, size=32)[0]
    noisy = np.clip(digits + rng.normal(0, 6, digits.shape), 0, 255).astype(np.uint8)
    assert (pixel_difference(digits, noisy) < THRESHOLD).all()
    # while different digits are well above it
    other = np.roll(digits, 1, axis=0)
    assert (pixel_difference(digits, other) > 2 * THRESHOLD).all()


def test_pixel_difference_distinct_dark_images_are_not_alike():
    """Two different but uniformly dark images must not look like near duplicates."""
    digits = digit_images(per_class=1, size=32)[0]
    dim = (digits * 0.08).astype(np.uint8)
    assert (pixel_difference(dim, np.roll(dim, 1, axis=0)) > THRESHOLD).all()


# ----------------------------------------------------------------------------- exact
def test_exact_duplicate_groups(tmp_path):
    imgs = [Image.fromarray(img) for img in digit_images(per_class=2, size=32)[0]]  # 20 distinct
    paths = []
    for i, img in enumerate(imgs):
        p = tmp_path / f"{i:03d}.png"
        img.save(p)
        paths.append(p)
    # group A: image 3 as PNG copy + BMP (same pixels, other format); group B: image 7 once more
    extra = [(imgs[3], "a_copy.png"), (imgs[3], "a_copy.bmp"), (imgs[7], "b_copy.png")]
    for img, name in extra:
        img.save(tmp_path / name)
        paths.append(tmp_path / name)
    # an unreadable file never joins a group
    (tmp_path / "bad.png").write_bytes(b"")
    paths.append(tmp_path / "bad.png")
    metrics, _ = measure_files(paths)
    found = ExactDuplicateCheck().find(metrics)
    assert groups_of(found) == [{3, 20, 21}, {7, 22}]
    assert (found["issue"] == "exact_duplicate").all()
    assert (found["severity"] == "severe").all()
    for _, g in found.groupby("group_id"):
        assert g["group_id"].nunique() == 1
        assert int(g["keep"].astype(bool).sum()) == 1
        # the keeper is the first imported (equal sizes)
        assert int(g.loc[g["keep"].astype(bool), "item_id"].iloc[0]) == int(g["item_id"].min())
    assert found["group_id"].nunique() == 2
    # group ids start at the offset
    shifted = ExactDuplicateCheck().find(metrics, group_offset=10)
    assert sorted(shifted["group_id"].unique()) == [10, 11]


def test_exact_duplicate_keeper_is_largest_area():
    metrics = pd.DataFrame(
        {"item_id": [0, 1, 2], "readable": [1, 1, 1], "pixel_hash": ["h", "h", "h"], "area": [100.0, 400.0, 400.0]}
    )
    found = ExactDuplicateCheck().find(metrics)
    keep = dict(zip(found["item_id"], found["keep"]))
    assert keep == {0: False, 1: True, 2: False}


def test_no_exact_duplicates_gives_empty_frame(tmp_path):
    imgs = [Image.fromarray(img) for img in digit_images(per_class=1, size=32)[0]]
    paths = []
    for i, img in enumerate(imgs):
        img.save(tmp_path / f"{i}.png")
        paths.append(tmp_path / f"{i}.png")
    metrics, _ = measure_files(paths)
    assert len(ExactDuplicateCheck().find(metrics)) == 0


# ----------------------------------------------------------------------------- near
@pytest.fixture(scope="module")
def near_set(tmp_path_factory):
    """40 distinct digits + 4 photo crops, plus: a noisy copy (sigma 6), a 1-px shifted copy,
    a JPEG q85 re-encoding of a photo crop, and an exact copy of a digit."""
    from sklearn.datasets import load_sample_images

    tmp = tmp_path_factory.mktemp("near")
    digits = digit_images(per_class=4, size=32)[0]
    photos = load_sample_images().images
    crops = [photos[k % 2][40 * k : 40 * k + 120, 60 * k : 60 * k + 160] for k in range(4)]
    paths = []
    for i, img in enumerate(digits):
        p = tmp / f"d{i:03d}.png"
        Image.fromarray(img).save(p)
        paths.append(p)
    for k, c in enumerate(crops):
        p = tmp / f"p{k}.png"
        Image.fromarray(c).save(p)
        paths.append(p)
    n_base = len(paths)
    rng = np.random.default_rng(0)
    noisy = np.clip(digits[5].astype(np.float64) + rng.normal(0, 6, digits[5].shape), 0, 255).astype(np.uint8)
    shifted = np.zeros_like(digits[11])
    shifted[:, 1:] = digits[11][:, :-1]  # 1-px shift to the right (background is black)
    buf = io.BytesIO()
    Image.fromarray(crops[2]).save(buf, format="JPEG", quality=85)
    variants = {
        "noisy.png": (noisy, 5),
        "shifted.png": (shifted, 11),
    }
    truth = {}
    for name, (arr, src) in variants.items():
        p = tmp / name
        Image.fromarray(arr).save(p)
        truth[len(paths)] = src
        paths.append(p)
    p = tmp / "reencoded.jpg"
    p.write_bytes(buf.getvalue())
    truth[len(paths)] = len(digits) + 2
    paths.append(p)
    p = tmp / "exact.png"
    Image.fromarray(digits[20]).save(p)
    exact_id = len(paths)
    paths.append(p)
    metrics, thumbs = measure_files(paths)
    return {"metrics": metrics, "thumbs": thumbs, "truth": truth, "n_base": n_base, "exact": (20, exact_id)}


def test_near_duplicates_found_for_noise_shift_and_jpeg(near_set):
    found = NearDuplicateCheck().find(near_set["metrics"], near_set["thumbs"], all_pairs(near_set["metrics"]["item_id"]))
    groups = groups_of(found)
    expected = sorted(({src, var} for var, src in near_set["truth"].items()), key=min)
    assert groups == expected
    assert (found["issue"] == "near_duplicate").all()
    assert found["severity"].isin(["severe", "moderate"]).all()
    assert ((found["score"] > 1 - 0.035) & (found["score"] <= 1.0)).all()
    for _, g in found.groupby("group_id"):
        assert int(g["keep"].astype(bool).sum()) == 1


def test_exact_copies_are_not_near_duplicates(near_set):
    found = NearDuplicateCheck().find(near_set["metrics"], near_set["thumbs"], all_pairs(near_set["metrics"]["item_id"]))
    src, copy = near_set["exact"]
    assert not {src, copy} & set(found["item_id"].astype(int))


def test_distinct_images_are_not_grouped(near_set):
    m = near_set["metrics"]
    base = m[m["item_id"] < near_set["n_base"]]
    found = NearDuplicateCheck().find(base, near_set["thumbs"], all_pairs(base["item_id"]))
    assert len(found) == 0


def test_near_duplicate_needs_candidates(near_set):
    """Only candidate pairs are verified: without the (variant, source) pairs nothing is found,
    and with only those pairs exactly the planted groups are."""
    m = near_set["metrics"]
    truth = near_set["truth"]
    assert len(NearDuplicateCheck().find(m, near_set["thumbs"], np.zeros((0, 2), np.int64))) == 0
    pairs = np.array([[v, s] for v, s in truth.items()])
    found = NearDuplicateCheck().find(m, near_set["thumbs"], pairs)
    assert groups_of(found) == sorted(({s, v} for v, s in truth.items()), key=min)


def test_near_duplicate_group_offset_and_transitive_groups(near_set):
    m = near_set["metrics"]
    (v1, s1), (v2, s2) = list(near_set["truth"].items())[:2]
    found = NearDuplicateCheck().find(m, near_set["thumbs"], np.array([[v1, s1], [v2, s2]]), group_offset=7)
    assert sorted(found["group_id"].unique()) == [7, 8]


def _photo_tile(size=96, offset=0):
    from sklearn.datasets import load_sample_images

    photo = load_sample_images().images[1]  # the flower: fine petal texture
    tile = photo[120 + offset : 360 + offset, 200:440]
    return np.asarray(Image.fromarray(tile).resize((size, size), Image.BILINEAR))


def test_one_pixel_shift_of_a_mid_sized_photo_is_a_near_duplicate():
    """A 1-px shift at 96 px is a third of a thumbnail pixel: only sub-pixel refinement sees it."""
    tile = _photo_tile()
    shifted = np.roll(tile, 1, axis=1)
    other = _photo_tile(offset=40)  # the same scene 40 px lower: a different picture
    to_thumb = lambda a: np.asarray(Image.fromarray(a).convert("L").resize((THUMB_SIZE, THUMB_SIZE), Image.BILINEAR))
    a, b, c = to_thumb(tile)[None], to_thumb(shifted)[None], to_thumb(other)[None]
    threshold = NearDuplicateCheck().max_pixel_diff
    assert pixel_difference(a, b)[0] < threshold
    assert pixel_difference(a, c)[0] > 3 * threshold


def test_whole_pixel_search_alone_would_miss_that_shift(monkeypatch):
    """Guards the reason sub-pixel refinement exists (this tile needs it)."""
    import curator.checks.duplicates as dup

    tile = _photo_tile()
    to_thumb = lambda a: np.asarray(Image.fromarray(a).convert("L").resize((THUMB_SIZE, THUMB_SIZE), Image.BILINEAR))
    a, b = to_thumb(tile)[None], to_thumb(np.roll(tile, 1, axis=1))[None]
    monkeypatch.setattr(dup, "REFINE_BELOW", 0.0)
    assert pixel_difference(a, b)[0] > NearDuplicateCheck().max_pixel_diff
