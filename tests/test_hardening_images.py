"""Hardening of image decoding and folder scanning (issue #10, items 6-9): large images are
decoded reduced with a real pixel limit, high-depth images are scaled to 8 bits, EXIF
orientation is applied, and special files or undecodable names never block or abort.

Every subprocess runs with a timeout, so a regression to a hang fails instead of stalling."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import threading
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from curator.backbones import auto_resolution
from curator.imaging import MAX_PIXELS, THUMB_SIZE, read_image
from curator.project import Project

CLI_TIMEOUT = 240  # seconds; a hang (the old FIFO bug) fails the test instead of stalling it
BIG = 10_000  # side of the large PNG: 100 Mpx, above PIL's 89 Mpx warning
PHOTO_KEYS = ("brightness", "brightness_low", "brightness_high", "contrast")

needs_posix = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes and /dev/zero")


def pattern(side: int) -> Image.Image:
    """An RGB test card: 100x100 distinct colours enlarged (NEAREST) to ``side``; compresses well."""
    y, x = np.mgrid[0:100, 0:100]
    cells = np.stack([x * 2, y * 2, np.full_like(x, 128)], axis=-1).astype(np.uint8)
    return Image.fromarray(cells).resize((side, side), Image.NEAREST)


def filler(folder: Path, per_class: int = 4) -> None:
    """Small ordinary images in classes a/ and b/ so the analysis has a dataset to compare with."""
    rng = np.random.default_rng(0)
    for label in "ab":
        (folder / label).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            base = np.full((48, 64, 3), 60 if label == "a" else 190, np.uint8)
            noise = rng.integers(-40, 40, base.shape)
            Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8)).save(folder / label / f"{i}.png")


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width`` x ``height`` greyscale pixels (the data is a stub)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 1024)) + chunk(b"IEND", b"")


def with_orientation(image: Image.Image, path: Path, orientation: int) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation  # EXIF Orientation
    image.save(path, exif=exif.tobytes(), quality=95)


@pytest.fixture(scope="module")
def big_png(tmp_path_factory) -> dict:
    """A valid 10000x10000 RGB PNG (about 1.3 MB on disk) and the same card at 1000x1000."""
    folder = tmp_path_factory.mktemp("big")
    big, small = folder / "big.png", folder / "small.png"
    pattern(BIG).save(big, compress_level=1)
    pattern(1000).save(small)
    return {"big": big, "small": small}


@pytest.fixture(scope="module")
def analyzed_images(big_png, tmp_path_factory, curator_cli) -> dict:
    """``curator import`` + ``analyze`` of a folder holding the large PNG and EXIF-rotated JPEGs."""
    base = tmp_path_factory.mktemp("images_cli")
    src = base / "src"
    filler(src)
    shutil.copy(big_png["big"], src / "a" / "big.png")
    stored = np.zeros((40, 60, 3), np.uint8)  # stored landscape: red left, blue right, green top band
    stored[:, :30], stored[:, 30:], stored[:10] = (220, 30, 30), (30, 30, 220), (30, 200, 30)
    for orientation in (6, 8):
        with_orientation(Image.fromarray(stored), src / "b" / f"turned{orientation}.jpg", orientation)
    imported = curator_cli("import", src, "--out", base / "proj", timeout=CLI_TIMEOUT)
    assert imported.returncode == 0, imported.stderr
    analyzed = curator_cli("analyze", base / "proj", "-q", "--projection", "pca", timeout=CLI_TIMEOUT)
    assert analyzed.returncode == 0, analyzed.stderr
    project = Project(base / "proj")
    metrics = project.metrics().set_index("path")
    out = {"src": src, "import": imported, "analyze": analyzed, "metrics": metrics,
           "thumbs": np.asarray(project.thumbnails()), "emb": np.asarray(project.embeddings())}
    project.close()
    return out


# --------------------------------------------------------------------------- item 6: large images
def test_large_png_analyzes_as_a_normal_image_without_pil_warning(analyzed_images, big_png):
    """Item 6: a valid 100 Mpx PNG is readable (was `unreadable`: "could be decompression bomb"),
    gets sane metrics, a thumbnail and an embedding, and nothing about bombs reaches stderr."""
    for step in ("import", "analyze"):
        err = analyzed_images[step].stderr.lower()
        assert "decompressionbomb" not in err and "decompression bomb" not in err, err
    metrics = analyzed_images["metrics"]
    row = metrics.loc[str(analyzed_images["src"] / "a" / "big.png")]
    assert row["readable"] == 1, row["error"]
    assert (row["width"], row["height"]) == (BIG, BIG)
    small = read_image(big_png["small"], resolution=None).metrics
    for key in PHOTO_KEYS:  # the same card at 1000 px: the same photometry
        assert row[key] == pytest.approx(small[key], abs=0.02), key
    assert row["contrast"] > 0.1 and row["entropy"] > 6
    item = int(row["item_id"])
    assert analyzed_images["thumbs"][item].std() > 20  # a real thumbnail, not the zero placeholder
    assert np.linalg.norm(analyzed_images["emb"][item]) > 0


MEMORY_PROBE = """
import json, resource, sys
from curator.imaging import read_image
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
rec = read_image(sys.argv[1], resolution=224)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"error": rec.metrics["error"], "width": rec.metrics.get("width"),
                  "extra_mb": (peak - before) / 1024, "model_input": list(rec.model_input.shape)}))
"""


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss is in KiB on Linux")
def test_large_png_decodes_with_one_full_resolution_copy_at_most(big_png):
    """Item 6: memory stays bounded. A 10000x10000 RGB image is 400 MB once decoded by PIL; the
    old path (convert, pixel hash over bytes, copies) peaked near 1 GB more, the reduced path
    holds that one copy and small strips (measured: ~440 MB)."""
    run = subprocess.run([sys.executable, "-c", MEMORY_PROBE, str(big_png["big"])],
                         capture_output=True, text=True, timeout=CLI_TIMEOUT, env=dict(os.environ))
    assert run.returncode == 0, run.stderr
    assert "ecompression" not in run.stderr, run.stderr
    out = json.loads(run.stdout)
    assert out["error"] is None and out["width"] == BIG and out["model_input"] == [224, 224, 3]
    one_copy_mb = BIG * BIG * 4 / 2**20
    assert out["extra_mb"] < one_copy_mb * 1.3, out


def test_images_above_the_pixel_limit_are_refused_with_a_clear_reason(tmp_path):
    """Item 6: the bomb guard stays. Headers declaring more than MAX_PIXELS (just above it, where
    PIL only warns, and far above it, where PIL raises) are `unreadable` with curator's reason,
    not decoded, and no warning escapes."""
    for side in (int((MAX_PIXELS * 1.5) ** 0.5), int((MAX_PIXELS * 3) ** 0.5)):
        path = tmp_path / f"bomb{side}.png"
        path.write_bytes(png_claiming(side, side))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            rec = read_image(path, resolution=96)
        assert rec.metrics["readable"] == 0
        assert "curator's limit" in rec.metrics["error"] and "not decoded" in rec.metrics["error"], rec.metrics
        assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]


def test_reduced_large_images_keep_exact_pixel_hashes(tmp_path):
    """Item 6: decoding reduced must not blur exact duplicates. Above REDUCE_ABOVE_SIDE the hash
    is taken over the full-resolution pixels strip by strip: a BMP twin and an opaque RGBA twin
    match the PNG, one pixel changed by one level does not, and real transparency is kept."""
    card = pattern(4500)
    card.save(tmp_path / "card.png", compress_level=1)
    card.save(tmp_path / "card.bmp")
    card.convert("RGBA").save(tmp_path / "opaque.png", compress_level=1)
    card.putpixel((4321, 1234), tuple(v + 1 for v in card.getpixel((4321, 1234))))
    card.save(tmp_path / "one_pixel_off.png", compress_level=1)
    holed = card.convert("RGBA")
    holed.putpixel((10, 10), (0, 0, 0, 0))
    holed.save(tmp_path / "holed.png", compress_level=1)
    hashes = {n: read_image(tmp_path / n, resolution=None).metrics["pixel_hash"]
              for n in ("card.png", "card.bmp", "opaque.png", "one_pixel_off.png", "holed.png")}
    assert hashes["card.png"] == hashes["card.bmp"] == hashes["opaque.png"]
    assert len({hashes["card.png"], hashes["one_pixel_off.png"], hashes["holed.png"]}) == 3
    assert read_image(tmp_path / "holed.png", resolution=None).metrics["opacity"] < 1.0


# --------------------------------------------------------------------------- item 7: bit depth
def _close(a: dict, b: dict, keys, tol=0.01):
    for key in keys:
        assert a[key] == pytest.approx(b[key], abs=tol), (key, a[key], b[key])


def test_sixteen_bit_png_measures_like_its_eight_bit_version(tmp_path):
    """Item 7: a 16-bit greyscale gradient (mode I;16) was clipped at 255 (80 % white); scaled
    by 1/257 it gets the metrics, thumbnail and model input of its 8-bit twin."""
    y, x = np.mgrid[0:96, 0:256]
    wide = (x * 65535 / 255 * 0.8 + y * 40).astype(np.uint16)  # smooth, every 16-bit level used
    Image.fromarray(wide).save(tmp_path / "g16.png")
    Image.fromarray(np.rint(wide / 257).astype(np.uint8)).save(tmp_path / "g8.png")
    assert Image.open(tmp_path / "g16.png").mode == "I;16"
    a, b = (read_image(tmp_path / n, resolution=96) for n in ("g16.png", "g8.png"))
    _close(a.metrics, b.metrics, PHOTO_KEYS + ("sharpness", "fine_detail"))
    assert a.metrics["entropy"] == pytest.approx(b.metrics["entropy"], abs=0.05)
    assert np.abs(a.thumbnail.astype(int) - b.thumbnail).max() <= 1
    assert np.abs(a.model_input.astype(int) - b.model_input).max() <= 1


def test_int_and_float_images_follow_the_stated_scaling_rule(tmp_path):
    """Item 7: 32-bit integers within 0..65535 scale like 16 bits (/257), other integer ranges
    and floats outside 0..1 are stretched over their actual range, floats in 0..1 times 255."""
    ramp = np.linspace(0, 1, 64 * 128).reshape(64, 128)
    reference = read_image(_save(tmp_path / "ref.png", np.rint(ramp * 255).astype(np.uint8)), resolution=None).metrics
    cases = {
        "int16range.tif": np.rint(ramp * 65535).astype(np.int32),
        "intwide.tif": np.rint(ramp * 300_000 - 50_000).astype(np.int32),
        "float01.tif": ramp.astype(np.float32),
        "floatwide.tif": (ramp * 1000 - 200).astype(np.float32),
    }
    for name, values in cases.items():
        metrics = read_image(_save(tmp_path / name, values), resolution=None).metrics
        assert metrics["readable"] == 1, (name, metrics["error"])
        _close(metrics, reference, PHOTO_KEYS)
    dim = read_image(_save(tmp_path / "dim.tif", np.rint(ramp * 16000).astype(np.int32)), resolution=None).metrics
    assert dim["brightness"] == pytest.approx(reference["brightness"] * 16000 / 65535, abs=0.01)  # type range kept


def _save(path: Path, values: np.ndarray) -> Path:
    Image.fromarray(values).save(path)
    return path


# --------------------------------------------------------------------------- item 8: orientation
def test_exif_orientation_gives_the_upright_size_and_thumbnail(analyzed_images):
    """Item 8: JPEGs stored 60x40 with EXIF Orientation 6 / 8 are portraits: the database holds
    40x60 and the thumbnail (and so the embedding) is of the upright picture."""
    metrics, thumbs = analyzed_images["metrics"], analyzed_images["thumbs"]
    for orientation in (6, 8):
        path = analyzed_images["src"] / "b" / f"turned{orientation}.jpg"
        row = metrics.loc[str(path)]
        assert (row["width"], row["height"]) == (40, 60), orientation
        with Image.open(path) as stored:
            upright = ImageOps.exif_transpose(stored).convert("RGB")
        expected = np.asarray(upright.resize((THUMB_SIZE, THUMB_SIZE), Image.BILINEAR), dtype=int)
        assert np.abs(thumbs[int(row["item_id"])].astype(int) - expected).max() <= 2, orientation
    # turned opposite ways, the two are mirror images of each other, not the same stored picture
    six, eight = (thumbs[int(metrics.loc[str(analyzed_images["src"] / "b" / f"turned{o}.jpg"), "item_id"])] for o in (6, 8))
    assert np.abs(six.astype(int) - eight[::-1, ::-1]).max() <= 2


# --------------------------------------------------------------------------- item 9: special files
def _special_tree(root: Path) -> dict:
    """A class tree with a FIFO x.png, a symlink to /dev/zero, a symlink to itself and a
    directory loop, besides 8 ordinary images; returns the special entries."""
    filler(root)
    os.mkfifo(root / "a" / "x.png")
    os.symlink("/dev/zero", root / "b" / "zero.png")
    os.symlink("self.png", root / "b" / "self.png")  # points at itself: ELOOP
    os.symlink("..", root / "a" / "up")  # a directory loop os.walk must not follow
    return {"fifo": root / "a" / "x.png", "zero": root / "b" / "zero.png", "self": root / "b" / "self.png"}


@needs_posix
def test_fifo_device_and_loops_never_block_import_or_analyze(tmp_path, curator_cli):
    """Item 9: a FIFO named x.png made `analyze` hang forever (the resolution probe opened it).
    Now the FIFO and the symlink to a device are imported like any file with an image name and
    reported `unreadable` ("not a regular file") without ever being opened; loops end."""
    src = tmp_path / "src"
    special = _special_tree(src)
    # the link to /dev/zero leads out of SOURCE, which import refuses without the flag (item 2)
    imported = curator_cli("import", src, "--out", tmp_path / "proj", "--allow-outside-source", timeout=CLI_TIMEOUT)
    assert imported.returncode == 0, imported.stderr
    assert "with 11 images" in imported.stdout  # 8 ordinary + FIFO + device link + looping link
    analyzed = curator_cli("analyze", tmp_path / "proj", "-q", "--projection", "pca", timeout=CLI_TIMEOUT)
    assert analyzed.returncode == 0, analyzed.stderr
    with Project(tmp_path / "proj") as project:
        metrics = project.metrics().set_index("path")
        unreadable = set(project.issues(["unreadable"])["path"])
    assert metrics.loc[str(special["fifo"]), "error"] == "not a regular file: a named pipe (FIFO)"
    assert metrics.loc[str(special["zero"]), "error"] == "not a regular file: a character device"
    assert "symbolic links" in metrics.loc[str(special["self"]), "error"]
    assert unreadable == {str(p) for p in special.values()}
    assert int(metrics["readable"].sum()) == 8  # every ordinary image analyzed
    exported = curator_cli("export", tmp_path / "proj", "--issue", "unreadable", timeout=CLI_TIMEOUT)
    assert exported.returncode == 0 and "x.png" in exported.stdout, exported.stderr


@needs_posix
def test_import_copy_leaves_pipes_and_devices_where_they_are(tmp_path, curator_cli):
    """Item 9 with --copy: copying a FIFO raised (SpecialFileError traceback) and copying a link
    to /dev/zero would never end; now they keep their original location (analyze reports them)."""
    src = tmp_path / "src"
    special = _special_tree(src)
    imported = curator_cli("import", src, "--out", tmp_path / "proj", "--copy", "--allow-outside-source", timeout=CLI_TIMEOUT)
    assert imported.returncode == 0, imported.stderr
    with Project(tmp_path / "proj") as project:
        items = project.items().set_index("path")
    for entry in special.values():
        assert items.loc[str(entry), "location"] == str(entry)
    copied = items[~items.index.isin([str(p) for p in special.values()])]
    assert len(copied) == 8 and all((tmp_path / "proj" / loc).is_file() for loc in copied["location"])


def test_name_not_utf8_is_skipped_with_one_line_and_the_rest_imports(tmp_path, curator_cli):
    """Item 9: a file named b"\\xff\\xfe.png" aborted `import` with a UnicodeEncodeError traceback
    (SQLite stores UTF-8 text only). It is skipped with one warning line naming it escaped;
    the other images import and the project reads back."""
    src = tmp_path / "src"
    filler(src)
    odd = os.fsencode(src / "a") + b"/\xff\xfe.png"
    try:
        with open(odd, "wb") as fh:
            fh.write((src / "a" / "0.png").read_bytes())
    except OSError:
        pytest.skip("this file system refuses names that are not UTF-8")
    imported = curator_cli("import", src, "--out", tmp_path / "proj", timeout=CLI_TIMEOUT)
    assert imported.returncode == 0, imported.stderr
    lines = [line for line in imported.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("warning: skipped 1 "), imported.stderr
    assert "not valid UTF-8" in lines[0] and str(src / "a") + "/\\xff\\xfe.png" in lines[0]
    assert "with 8 images" in imported.stdout
    summary = curator_cli("summary", tmp_path / "proj", "--json", timeout=CLI_TIMEOUT)
    assert summary.returncode == 0, summary.stderr
    assert json.loads(summary.stdout)["classes"] == {"a": {"items": 4, "flagged": 0}, "b": {"items": 4, "flagged": 0}}


@needs_posix
def test_decoding_and_probing_never_open_a_fifo(tmp_path):
    """Item 9: the resolution probe and the decoder check the file kind before opening; a
    regression would block in open(), so both run in a thread with a deadline."""
    fifo = tmp_path / "x.png"
    os.mkfifo(fifo)
    filler(tmp_path)
    ordinary = sorted(tmp_path.glob("*/*.png"))
    results = {}

    def work():
        results["resolution"] = auto_resolution([fifo, *ordinary])
        results["record"] = read_image(fifo, resolution=96)

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    worker.join(30)
    if worker.is_alive():  # release the blocked open() so the thread can end, then fail
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("opening a FIFO blocked")
    assert results["resolution"] == 96  # the 64x48 images decide; the FIFO is skipped
    assert results["record"].metrics["readable"] == 0
    assert results["record"].metrics["error"] == "not a regular file: a named pipe (FIFO)"


def test_explorer_thumbnails_are_upright_and_scaled_like_analyze(tmp_path):
    """Items 7-8 in the explorer: its grid thumbnails come from the same decoding as analyze (the
    explorer used to show EXIF-rotated photos on their side and stretch 16-bit images)."""
    import io

    from curator.explorer.data import thumbnail_bytes

    rotated = tmp_path / "rotated.jpg"
    with_orientation(pattern(60).resize((120, 80)), rotated, 6)
    data, _ = thumbnail_bytes(rotated, px=96)
    assert Image.open(io.BytesIO(data)).size == (64, 96)

    dim = _save(tmp_path / "dim16.png", np.full((80, 80), 257 * 40, dtype=np.uint16))
    data, _ = thumbnail_bytes(dim, px=96)
    grey = np.asarray(Image.open(io.BytesIO(data)).convert("L"))
    assert abs(float(grey.mean()) - 40) <= 2  # 257 * 40 is level 40, not stretched to white
