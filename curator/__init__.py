"""curator: find what is wrong with an image-classification dataset."""

__version__ = "0.1.0"

from .errors import CuratorError  # noqa: E402
from .project import Project  # noqa: E402

__all__ = ["Project", "CuratorError", "__version__"]
