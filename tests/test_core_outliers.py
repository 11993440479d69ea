"""The outlier check on embeddings built in the test."""

from __future__ import annotations

import numpy as np

from curator.checks.labels import OutlierCheck
from curator.neighbors import knn, normalize


def _dataset(n_odd: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(5, 64))
    normal = centres[rng.integers(5, size=400)] + 0.3 * rng.normal(size=(400, 64))
    odd_centre = rng.normal(size=64) * 3
    odd = odd_centre + 0.05 * rng.normal(size=(n_odd, 64))  # a tight little cluster of odd items
    x = normalize(np.vstack([normal, odd]))
    idx, sim = knn(x, 30, normalized=True)
    return np.arange(len(x)), sim, set(range(400, 400 + n_odd))


def test_a_small_cluster_of_odd_items_is_still_flagged():
    ids, sim, odd = _dataset(n_odd=6)
    found = OutlierCheck().find(ids, sim)
    assert set(found["item_id"]) == odd
    assert (found["score"] > OutlierCheck().z).all()


def test_no_outliers_in_a_homogeneous_set():
    ids, sim, _ = _dataset(n_odd=0)
    assert len(OutlierCheck().find(ids, sim)) == 0


def test_too_few_items_gives_nothing():
    ids, sim, _ = _dataset(n_odd=0)
    assert len(OutlierCheck().find(ids[:15], sim[:15])) == 0


def test_items_with_an_image_level_defect_are_not_reported_again():
    """A heavily blurred or darkened image sits far from everything; its defect is the finding
    (reported as blurry / dark), so the outlier check leaves it out but still flags the rest."""
    ids, sim, odd = _dataset(n_odd=6)
    skip = np.zeros(len(ids), dtype=bool)
    skip[[400, 401]] = True
    found = set(OutlierCheck().find(ids, sim, skip)["item_id"])
    assert found == odd - {400, 401}
