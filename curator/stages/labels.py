"""Stage 3: label issues. Which features carry the labels best depends on the data (CNN +
standardised pixels on digit-like images, the CNN alone on colour photos; benchmarks/
quality.py), so it is measured first: the k-NN label agreement of each candidate space.
Beyond ``neighbors.EXACT_LIMIT`` items the agreement is measured on a random sample of that
size and only the chosen space's neighbours are searched for every item; the classifier is
fitted on a class-stratified sample of that size (LabelIssueCheck.fit_limit)."""

from __future__ import annotations

import numpy as np

from ..checks.base import flagged_items
from ..checks.labels import LabelIssueCheck, choose_label_features
from ..native_env import single_threaded_blas
from .. import neighbors
from ..neighbors import knn

DEFECTS = ("dark", "bright", "blurry", "low_information")  # items the label check skips


def class_indices(labels, classes) -> np.ndarray:
    """Label values -> class numbers (-1: unlabelled or unknown class)."""
    class_index = {c: i for i, c in enumerate(classes)}
    return np.asarray([class_index.get(v, -1) for v in labels], dtype=np.int64)


def choose_features(candidates: dict, labels: np.ndarray, limit: int | None = None, k: int = 10, seed: int = 0):
    """choose_label_features, bounded: (name, features, neighbour idx, neighbour sims).
    ``limit``: default ``neighbors.EXACT_LIMIT``."""
    limit = neighbors.EXACT_LIMIT if limit is None else limit
    n = len(labels)
    if n <= limit:
        return choose_label_features(candidates, labels, k)
    sample = np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))
    name = choose_label_features({key: f[sample] for key, f in candidates.items()}, labels[sample], k)[0]
    features = candidates[name]
    idx, sim = knn(features, min(k, n - 1), normalized=True)
    return name, features, idx, sim


def defect_mask(findings: list, readable: np.ndarray) -> np.ndarray:
    """Which readable items have an image-level defect (``DEFECTS``) among ``findings``."""
    return np.isin(readable, list(flagged_items(findings, DEFECTS)))


def label_findings(spaces, base: str, labels: np.ndarray, classes, readable: np.ndarray, skip: np.ndarray):
    """(label space name, its neighbours (idx, sim), findings, (N, C) proba, fit). ``skip``:
    items with an image-level defect (an odd embedding explained: neither trained on nor
    flagged). ``fit``: {"error": out-of-fold error on the labels checked, "margin": the overall
    margin that error asks for, around which the per-class margins lie} (empty when the check
    could not run), which tell the user why few or no
    labels were flagged where the images barely predict them."""
    label_space, features, lab_idx, lab_sim = choose_features(
        {f"{base}+pixels": spaces[f"{base}+pixels"], base: spaces[base]}, labels)
    check = LabelIssueCheck(fit_limit=neighbors.EXACT_LIMIT)
    with single_threaded_blas():  # small matrices: threads only wait on each other (10-40x on a busy machine)
        found, proba = check.find(readable, features, labels, classes, lab_idx, lab_sim, skip)
    known = (labels >= 0) & ~np.asarray(skip, dtype=bool)
    fit = {}
    if len(classes) >= 2 and known.any() and len(proba):
        fit = {"error": round(check.out_of_fold_error(proba, labels, known), 4),
               "margin": round(check.margin_needed(proba, labels, known), 4)}
    return label_space, (lab_idx, lab_sim), found, proba, fit
