"""The Streamlit explorer behind ``curator visualize``.

``app.py`` is the Streamlit entry script; the page scripts live in the repository's top-level
``pages/`` folder and are installed as ``curator/explorer/app_pages/`` (pyproject maps the
folder with ``package-dir``; not ``pages/``, which Streamlit would auto-load beside app.py). ``data.py`` is the Streamlit-free data layer (loading, filtering,
thumbnails, export rows); ``ui.py`` holds the shared widgets and the per-project caches.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import CuratorError

APP_PATH = Path(__file__).with_name("app.py")
PAGE_FILES = {
    "overview": "overview.py",
    "data_quality": "data_quality.py",
    "label_quality": "label_quality.py",
    "tags": "tags_export.py",
    "compare": "compare.py",
}


def pages_dir() -> Path:
    """Folder holding the page scripts: inside the installed package, else the source tree."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "app_pages", here.parent.parent / "pages"):
        if all((candidate / name).is_file() for name in PAGE_FILES.values()):
            return candidate
    raise CuratorError("the explorer's page scripts are missing (broken installation?); reinstall curator")


def page_path(name: str) -> Path:
    return pages_dir() / PAGE_FILES[name]


__all__ = ["APP_PATH", "PAGE_FILES", "pages_dir", "page_path"]
