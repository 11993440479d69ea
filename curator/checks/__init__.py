"""Quality checks, one small class per issue type (the cleanvision pattern): each computes a
score (higher = worse), flags items past a documented default threshold, and rates severity."""

from .base import Finding
from .image_checks import IMAGE_CHECKS, run_image_checks

__all__ = ["Finding", "IMAGE_CHECKS", "run_image_checks"]
