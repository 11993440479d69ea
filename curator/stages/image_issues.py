"""Stage 2: the per-image checks (dark, bright, blurry, ...), exact and near duplicates.

Blur is judged against a reference sharpness: the lower of the item's pixel neighbours'
and its class's typical sharpness. Near-duplicate candidates are each item's 8 nearest
neighbours in the embedding and in the pixel space."""

from __future__ import annotations

import numpy as np

from ..checks.duplicates import ExactDuplicateCheck, NearDuplicateCheck
from ..checks.image_checks import BlurryCheck, run_image_checks
from .neighbours import Neighbours, pairs

CANDIDATES = 8  # neighbours per item (per space) checked as near duplicates


def sharpness_reference(metrics, readable: np.ndarray, pixel_idx: np.ndarray) -> np.ndarray:
    """(n,) sharpness each item is compared with (NaN where none is known)."""
    reference = np.full(len(metrics), np.nan)
    if len(readable) > 1:
        neighbour_ids = np.where(pixel_idx >= 0, readable[np.clip(pixel_idx, 0, None)], -1)
        blur = BlurryCheck()
        sharpness = metrics["sharpness"].to_numpy()
        local = blur.local_reference(sharpness, neighbour_ids)
        by_class = blur.class_reference(sharpness, metrics["label"].to_numpy())[readable]
        with np.errstate(invalid="ignore"):
            reference[readable] = np.fmin(local, by_class)  # the lower of the two; NaN only if both are
    return reference


def image_findings(metrics, thumbs, readable: np.ndarray, nbrs: Neighbours) -> list:
    """Findings frames of the image checks, exact duplicates and near duplicates. Adds the
    ``sharpness_reference`` column to ``metrics``."""
    metrics["sharpness_reference"] = sharpness_reference(metrics, readable, nbrs.pixel_idx)
    findings = run_image_checks(metrics)
    exact = ExactDuplicateCheck().find(metrics)
    findings.append(exact)
    n_exact_groups = int(exact["group_id"].max()) if len(exact) else 0
    candidates = np.concatenate([pairs(readable, nbrs.idx, CANDIDATES), pairs(readable, nbrs.pixel_idx, CANDIDATES)])
    findings.append(NearDuplicateCheck().find(metrics, thumbs, candidates, group_offset=n_exact_groups + 1))
    return findings
