"""curator: find what is wrong with an image-classification dataset.

Light on purpose: ``native_env`` sets thread and wait policies before numpy, torch or faiss
load, and ``Project`` (which needs pandas and numpy) is imported on first use, so that
``curator --help`` starts in a fraction of a second.
"""

from . import native_env  # noqa: F401  (first: before any native library loads)
from .errors import CuratorError

__version__ = "0.1.0"

__all__ = ["Project", "CuratorError", "__version__"]


def __getattr__(name):
    if name == "Project":
        from .project import Project

        return Project
    raise AttributeError(f"module 'curator' has no attribute {name!r}")
