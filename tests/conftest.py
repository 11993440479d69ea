"""Shared fixtures: a small labelled image folder with known problems, and its analyzed project.

Session-scoped and built once; tests that modify a project must copy it first
(``copy_project``)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

PER_CLASS = 30


def digit_images(per_class: int = PER_CLASS, size: int = 32):
    """(images uint8 (N, size, size), labels) from scikit-learn's bundled digits, upscaled."""
    from sklearn.datasets import load_digits

    data = load_digits()
    out, labels = [], []
    for label in range(10):
        for img in data.images[data.target == label][:per_class]:
            u8 = np.clip(np.rint(img * 255 / 16), 0, 255).astype(np.uint8)
            out.append(np.asarray(Image.fromarray(u8).resize((size, size), Image.BILINEAR)))
            labels.append(label)
    return np.stack(out), np.array(labels)


def write_class_folders(root: Path, images, labels) -> list[Path]:
    """Save images as ``root/<label>/<index>.png``; returns their paths."""
    paths = []
    for i, (img, label) in enumerate(zip(images, labels)):
        p = root / str(label) / f"{i:04d}.png"
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(p)
        paths.append(p)
    return paths


@pytest.fixture(scope="session")
def digits_folder(tmp_path_factory) -> dict:
    """A class-per-folder tree with planted problems; returns paths and the planted truth."""
    root = tmp_path_factory.mktemp("digits_folder") / "images"
    images, labels = digit_images()
    truth = {}
    paths = write_class_folders(root, images, labels)
    # planted problems (each on a different source image)
    Image.fromarray((images[1] * 0.15).astype(np.uint8)).save(paths[1])
    truth["dark"] = [paths[1]]
    Image.fromarray((images[2] * 0.15 + 217).astype(np.uint8)).save(paths[2])
    truth["bright"] = [paths[2]]
    # radius 4 on digits upscaled 4x is a 1-px blur of the 8 px original (the weakest blur of
    # benchmarks/quality.py); 2.5 px here would be 0.6 px there, within natural variation
    Image.fromarray(images[3]).filter(ImageFilter.GaussianBlur(4)).save(paths[3])
    truth["blurry"] = [paths[3]]
    exact = root / "0" / "copy_of_0004.png"
    shutil.copy(paths[4], exact)
    truth["exact_duplicate"] = [paths[4], exact]
    near = root / "0" / "noisy_0005.png"
    rng = np.random.default_rng(0)
    Image.fromarray(np.clip(images[5] + rng.normal(0, 6, images[5].shape), 0, 255).astype(np.uint8)).save(near)
    truth["near_duplicate"] = [paths[5], near]
    empty = root / "1" / "empty.png"
    empty.write_bytes(b"")
    truncated = root / "1" / "truncated.png"
    truncated.write_bytes(paths[40].read_bytes()[:60])
    notimage = root / "1" / "notimage.jpg"
    notimage.write_text("this is not an image")
    truth["unreadable"] = [empty, truncated, notimage]
    # a label flip: a clear "7" filed under 1
    flipped = root / "1" / "really_a_7.png"
    Image.fromarray(images[labels == 7][0]).save(flipped)
    truth["label_issue"] = [flipped]
    return {"root": root, "truth": truth}


@pytest.fixture(scope="session")
def analyzed_project(digits_folder, tmp_path_factory) -> Path:
    """``digits_folder`` imported and analyzed (PCA projection, no worker processes)."""
    from curator.analyze import AnalyzeOptions, analyze
    from curator.importers import import_project

    out = tmp_path_factory.mktemp("projects") / "small"
    project = import_project(digits_folder["root"], out)
    analyze(project, AnalyzeOptions(workers=0, progress=False, projection="pca", batch_size=64))
    project.close()
    return out


@pytest.fixture
def copy_project(analyzed_project, tmp_path):
    """A private, writable copy of the analyzed project."""

    def make() -> Path:
        dest = tmp_path / "project_copy"
        shutil.copytree(analyzed_project, dest)
        return dest

    return make


# --------------------------------------------------------------------------- CLI helpers
# (added for tests/test_core_*.py; the fixtures above are unchanged)


def _curator_command() -> list[str]:
    exe = Path(sys.executable).parent / "curator"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "curator.cli"]


def run_curator(*args, cwd=None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the ``curator`` command line in a subprocess (text output, never raises on rc)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run(
        _curator_command() + [str(a) for a in args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
    )


@pytest.fixture(scope="session")
def curator_cli():
    """``curator_cli(*args, cwd=None)`` -> CompletedProcess of the ``curator`` command."""
    return run_curator


@pytest.fixture(scope="session")
def digits_cli_project(tmp_path_factory) -> dict:
    """``curator download digits`` then ``curator analyze`` (PCA, no workers), run once per
    session through the real command line; returns the project path and both outputs."""
    base = tmp_path_factory.mktemp("digits_cli")
    download = run_curator("download", "digits", "--dir", base)
    assert download.returncode == 0, download.stderr
    project = base / "digits"
    analyze = run_curator("analyze", project, "-q", "--projection", "pca", "--workers", "0")
    assert analyze.returncode == 0, analyze.stderr
    return {"project": project, "download": download, "analyze": analyze, "dir": base}


# ----------------------------------------------------------------------------- a real explorer
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Explorer:
    """`curator visualize ROOT --port PORT` as a real server, stopped with Ctrl-C."""

    def __init__(self, root: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([sys.executable, "-m", "curator.cli", "visualize", str(root), "--port", str(self.port)],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)

    def __enter__(self):
        line, deadline = "", time.monotonic() + 120
        while not line.startswith("ready:") and time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            assert line or self.proc.poll() is None, "curator visualize exited early"
        assert self.url in line, line
        return self

    def __exit__(self, *exc):
        os.killpg(self.proc.pid, signal.SIGINT)
        self.proc.communicate(timeout=30)


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


@contextmanager
def explorer_tab(root: Path):
    """A real explorer on ROOT and a Debian-chromium tab (1400x1000) recording every URL it
    requests: yields (server, tab, requests)."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (python) is not installed")
    requests: list[str] = []
    with Explorer(root) as server, sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            tab = browser.new_page(viewport={"width": 1400, "height": 1000})
            tab.on("request", lambda r: requests.append(r.url))
            yield server, tab, requests
        finally:
            browser.close()


def box_drag(page, area: dict, left: float, top: float, right: float, bottom: float, steps: int = 10) -> tuple:
    """Drag the mouse across ``area`` (a bounding box) from the fraction (left, top) to
    (right, bottom) in ``steps`` moves, as a user's box selection; returns the page
    coordinates (x0, y0, x1, y1) of the drag."""
    x0, y0 = area["x"] + area["width"] * left, area["y"] + area["height"] * top
    x1, y1 = area["x"] + area["width"] * right, area["y"] + area["height"] * bottom
    page.mouse.move(x0, y0)
    page.mouse.down()
    for k in range(1, steps + 1):
        page.mouse.move(x0 + (x1 - x0) * k / steps, y0 + (y1 - y0) * k / steps)
    page.mouse.up()
    return x0, y0, x1, y1
