"""Stage 2: the per-image checks (dark, bright, blurry, ...), exact and near duplicates.

Blur is judged against a reference sharpness: the lower of the item's pixel neighbours'
and its class's typical sharpness. Near-duplicate candidates are each item's 8 nearest
neighbours in the embedding and in the pixel space, and its 4 nearest by shift-free Fourier
magnitudes of the thumbnail."""

from __future__ import annotations

import numpy as np

from ..checks.duplicates import ExactDuplicateCheck, NearDuplicateCheck
from ..checks.image_checks import BlurryCheck, run_image_checks
from ..neighbors import knn_rows, normalize
from ..thumbnail_features import pixel_features, shift_free_features
from .neighbours import Neighbours, pairs

CANDIDATES = 8  # neighbours per item (per space) checked as near duplicates
SHIFT_FREE_CANDIDATES = 4  # near-duplicate candidates per item from Fourier magnitudes (shift-proof)


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


def shift_free_neighbours(thumbs, readable: np.ndarray | None = None, k: int = SHIFT_FREE_CANDIDATES) -> np.ndarray:
    """Each readable thumbnail's ``k`` nearest others by the Fourier magnitudes of its
    brightness-free luminance: a 1-px shift moves an 8-px digit by an eighth, out of reach of
    both the CNN's and the pixels' neighbours (the quality suite's digits missed 5 of 90 copies
    so). Features are made per chunk of rows (they are per image), never for all at once.
    ``readable``: the rows of ``thumbs`` taking part (default all); results index into it."""
    readable = np.arange(len(thumbs)) if readable is None else np.asarray(readable)
    n = len(readable)
    if n < 2:
        return np.full((n, 1), -1)

    def rows(ids):
        return normalize(shift_free_features(pixel_features(thumbs[readable[ids]])))

    return knn_rows(rows, n, rows(np.arange(1)).shape[1], min(k, n - 1))[0]


def image_findings(metrics, thumbs, readable: np.ndarray, nbrs: Neighbours, colour_matters: bool = True,
                   scratch_dir=None) -> list:
    """Findings frames of the image checks, exact duplicates and near duplicates. Adds the
    ``sharpness_reference`` column to ``metrics``. ``colour_matters=False``: near duplicates
    compared in luminance only (a recoloured copy is a copy); ``scratch_dir``: where a large
    alignment may keep temporary files."""
    metrics["sharpness_reference"] = sharpness_reference(metrics, readable, nbrs.pixel_idx)
    findings = run_image_checks(metrics)
    exact = ExactDuplicateCheck().find(metrics)
    findings.append(exact)
    n_exact_groups = int(exact["group_id"].max()) if len(exact) else 0
    candidates = np.concatenate([pairs(readable, nbrs.idx, CANDIDATES), pairs(readable, nbrs.pixel_idx, CANDIDATES),
                                 pairs(readable, shift_free_neighbours(thumbs, readable), SHIFT_FREE_CANDIDATES)])
    near = NearDuplicateCheck(colour_matters=colour_matters)
    findings.append(near.find(metrics, thumbs, candidates, group_offset=n_exact_groups + 1, scratch_dir=scratch_dir))
    return findings
