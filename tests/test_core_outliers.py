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


def test_a_defective_image_whose_picture_is_foreign_too_is_an_outlier_as_well():
    """A defect explains an odd embedding only where the picture itself is typical: a blurred
    digit is still a digit at 16 px without its brightness (pixel neighbours), a blurred photo
    among digits is not. Both are skipped by the embedding alone."""
    ids, sim, odd = _dataset(n_odd=6)
    skip = np.zeros(len(ids), dtype=bool)
    skip[[400, 401]] = True
    _, typical_pixels, _ = _dataset(n_odd=0, seed=1)  # 400 items, none far out
    pixel_sim = np.vstack([typical_pixels, typical_pixels[:6]])
    found = set(OutlierCheck().find(ids, sim, skip, pixel_sim=pixel_sim)["item_id"])
    assert found == odd - {400, 401}
    pixel_sim[401] = pixel_sim[401] - 0.8  # 401's picture is far from every other one
    found = set(OutlierCheck().find(ids, sim, skip, pixel_sim=pixel_sim)["item_id"])
    assert found == odd - {400}


def test_a_copy_is_as_odd_as_the_least_odd_member_of_its_duplicate_group():
    """A noisy copy of a typical image can sit far out in embedding space (noise on a 28 px
    glyph); its typical original vouches for it. Copies of an odd image stay odd."""
    ids, sim, odd = _dataset(n_odd=6)
    groups = np.full(len(ids), -1)
    groups[[3, 400]] = 0  # an odd item grouped with a typical one: the copy of a typical image
    groups[[401, 402]] = 1  # two odd items grouped: copies of a foreign image
    found = set(OutlierCheck().find(ids, sim, copy_group=groups)["item_id"])
    assert found == odd - {400}


def test_duplicate_groups_are_read_from_the_findings():
    from curator.checks.base import Finding
    from curator.stages.outliers import copy_groups

    readable = np.array([0, 2, 3, 5, 7, 8])  # item 1, 4 and 6 unreadable
    exact = Finding("exact_duplicate", [2, 3], [1, 1], [False, False], group_ids=[1, 1])
    near = Finding("near_duplicate", [3, 7, 0, 8], [1, 1, 1, 1], [False] * 4, group_ids=[2, 2, 3, 3])
    dark = Finding("dark", [5], [1], [False])
    group = copy_groups([dark, exact, near], readable)
    assert group[1] == group[2] == group[4] >= 0  # 2-3 exact, 3-7 near: one group
    assert group[0] == group[5] >= 0 and group[0] != group[1]
    assert group[3] == -1


def test_an_image_far_out_in_both_views_is_an_outlier_whatever_its_defect():
    """Two views that agree: an image more than ``both_z`` robust sigma out both among the
    CNN neighbours and among the brightness-free pixel thumbnails is foreign even where
    neither alone is extreme (quality suite: photos shrunk into 8x8 digits, blurry and at
    embedding z 4-6.5, pixel z above 4; planted blurred or darkened digits stay below 2.8 in
    pixels). Far out in one view alone is not enough below ``z``."""
    ids, sim, _ = _dataset(n_odd=0)
    _, pixel_sim, _ = _dataset(n_odd=0, seed=1)
    check = OutlierCheck()
    base_z, base_pz = check.zscores(sim, check.skip_nearest), check.zscores(pixel_sim, pixel_sim.shape[1] // 3)
    assert base_z.max() < check.both_z and base_pz.max() < check.both_z

    def push(values, skip_nearest, row, z):
        """Lower row's similarities so that its robust z is ``z``."""
        dist = 1.0 - values[:, skip_nearest:].mean(axis=1)
        med = np.median(dist)
        sigma = 1.4826 * np.median(np.abs(dist - med))
        values[row] -= med + z * sigma - dist[row]

    both, embedding_only, pixels_only = 10, 11, 12
    for row, (z, pz) in {both: (5.0, 5.0), embedding_only: (5.0, 0.0), pixels_only: (0.0, 8.0)}.items():
        push(sim, check.skip_nearest, row, z)
        push(pixel_sim, pixel_sim.shape[1] // 3, row, pz)
    skip = np.zeros(len(ids), dtype=bool)
    for defective in (False, True):
        skip[[both, embedding_only, pixels_only]] = defective
        found = set(check.find(ids, sim, skip, pixel_sim=pixel_sim)["item_id"])
        assert found == {both}
