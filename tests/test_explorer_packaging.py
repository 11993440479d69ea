"""The explorer's pages live in the top-level pages/ folder and ship inside the wheel as
curator/explorer/app_pages/ (never as a top-level `pages` package)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

from curator.explorer import PAGE_FILES, pages_dir

REPO = Path(__file__).resolve().parents[1]


def test_pages_found_in_the_source_tree():
    assert pages_dir() == REPO / "pages"
    for name in PAGE_FILES.values():
        assert (REPO / "pages" / name).is_file()


def test_package_list_is_complete():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    on_disk = {
        ".".join(p.parent.relative_to(REPO).parts)
        for top in ("curator", "sandbox_datasets")
        for p in (REPO / top).rglob("__init__.py")
    }
    assert on_disk <= listed, f"add to [tool.setuptools] packages: {sorted(on_disk - listed)}"
    assert config["package-dir"] == {"curator.explorer.app_pages": "pages"}
    assert "pages" not in listed


def test_wheel_contains_the_pages(tmp_path):
    src = tmp_path / "src"
    ignore = shutil.ignore_patterns(".venv", "build", "dist", "*.egg-info", "__pycache__", "bench-out", ".git", "tests")
    shutil.copytree(REPO, src, ignore=ignore)
    out = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index", str(src), "-w", str(tmp_path / "dist")],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    wheel = next((tmp_path / "dist").glob("curator-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for page in PAGE_FILES.values():
        assert f"curator/explorer/app_pages/{page}" in names
    assert "curator/explorer/app.py" in names
    assert not [n for n in names if n.startswith("pages/")]
