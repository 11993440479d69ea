"""The dataset-level stages beyond their limits (approximate neighbours, sampled label model,
sampled map), forced on small data by lowering the limits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from curator import neighbors, projector
from curator.checks.labels import LabelIssueCheck, out_of_fold_proba, stratified_sample
from curator.neighbors import knn, knn_rows, normalize, reduce_rows
from curator.projector import extend_map
from curator.stages import DatasetInputs, run_stages


def clustered(n: int, dim: int = 64, clusters: int = 10, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (clusters, dim))
    c = rng.integers(clusters, size=n)
    x = np.maximum(centres[c] + rng.normal(0, 0.5, (n, dim)), 0).astype(np.float32)
    return x, c


def test_approximate_neighbours_agree_with_exact(monkeypatch):
    x = normalize(clustered(3000)[0])
    exact_idx, exact_sim = knn(x, 10, normalized=True)
    monkeypatch.setattr(neighbors, "EXACT_LIMIT", 500)
    monkeypatch.setattr(neighbors, "CHUNK", 700)  # several chunks, the last one short
    idx, sim = knn(x, 10, normalized=True)
    assert idx.shape == (3000, 10) and (idx >= 0).all()
    assert not (idx == np.arange(3000)[:, None]).any()  # no self-matches
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(idx, exact_idx)])
    assert recall > 0.9
    # similarities are cosine (8-bit codes: close, not equal) and sorted
    assert np.abs(sim[:, 0] - exact_sim[:, 0]).max() < 0.05
    assert (np.diff(sim, axis=1) <= 1e-6).all()


def test_knn_rows_reads_chunks_and_matches_knn_below_the_limit():
    x = normalize(clustered(400)[0])
    asked = []

    def rows(ids):
        asked.append(len(ids))
        return x[ids]

    idx, sim = knn_rows(rows, len(x), x.shape[1], 5)
    ref_idx, ref_sim = knn(x, 5, normalized=True)
    assert np.array_equal(idx, ref_idx) and np.array_equal(sim, ref_sim)


def test_pca_fitted_on_a_sample_beyond_the_limit_keeps_the_structure():
    x, c = clustered(3000, dim=80)
    full = reduce_rows(lambda ids: x[ids], len(x), 8)
    sampled = reduce_rows(lambda ids: x[ids], len(x), 8, limit=600)
    assert sampled.shape == (3000, 8) and sampled.dtype == np.float32
    # same subspace: the sampled projection is (nearly) a rotation of the full one
    q, _ = np.linalg.qr(full - full.mean(0))
    resid = (sampled - sampled.mean(0)) - q @ (q.T @ (sampled - sampled.mean(0)))
    assert np.linalg.norm(resid) / np.linalg.norm(sampled - sampled.mean(0)) < 0.1


def test_stratified_sample_keeps_every_class():
    y = np.r_[np.zeros(5000, int), np.ones(30, int), np.full(400, 2)]
    s = stratified_sample(y, 1000)
    counts = np.bincount(y[s])
    assert counts[1] == 30  # a rare class is kept whole
    assert 700 < counts[0] < 1000 and len(np.unique(s)) == len(s)


def test_sampled_label_model_still_finds_planted_label_errors():
    x, c = clustered(4000, clusters=4, seed=1)
    y = c.copy()
    rng = np.random.default_rng(2)
    flipped = rng.choice(len(y), 40, replace=False)
    y[flipped] = (y[flipped] + 1) % 4
    feats = normalize(x)
    nbr_idx, nbr_sim = knn(feats, 10, normalized=True)
    check = LabelIssueCheck(fit_limit=800)
    found, proba = check.find(np.arange(len(y)), feats, y, ["a", "b", "c", "d"], nbr_idx, nbr_sim)
    assert proba.shape == (4000, 4) and np.allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    hit = set(found["item_id"]) & set(flipped.tolist())
    assert len(hit) >= 36 and len(found) <= 50
    # below the limit: exactly the unsampled model
    small = out_of_fold_proba(feats[:500], y[:500], 4)
    assert np.array_equal(small, out_of_fold_proba(feats[:500], y[:500], 4, fit_limit=800))


def test_extended_map_places_points_near_their_neighbours():
    rng = np.random.default_rng(0)
    truth = rng.uniform(0, 100, (3000, 2))
    feats = normalize(np.c_[truth, np.full(3000, 50.0)])  # neighbours in features = neighbours on the plane
    nbr_idx, nbr_sim = knn(feats, 10, normalized=True)
    sample = np.sort(rng.choice(3000, 300, replace=False))
    coords = extend_map(truth[sample], sample, (nbr_idx, nbr_sim), feats)
    assert np.isfinite(coords).all()
    assert np.allclose(coords[sample], truth[sample], atol=1e-3)
    err = np.linalg.norm(coords - truth, axis=1)
    assert np.median(err) < 5.0  # a fraction of the 100-wide layout
    # a point no neighbour chain reaches is placed from its nearest sample points
    cut = nbr_idx.copy()
    lonely = np.setdiff1d(np.arange(3000), sample)[0]
    cut[lonely] = -1
    coords = extend_map(truth[sample], sample, (cut, nbr_sim), feats)
    assert np.linalg.norm(coords[lonely] - truth[lonely]) < 15.0


def synthetic_inputs(n: int, methods, seed: int = 0):
    rng = np.random.default_rng(seed)
    x, c = clustered(n, dim=96, clusters=6, seed=seed)
    outlier = 17
    x[outlier] = np.where(rng.random(96) < 0.1, 6.0, 0.0)
    labels = c.copy()
    flipped = np.array([5, 105, 205, 305, 405])
    labels[flipped] = (labels[flipped] + 1) % 6
    patterns = rng.integers(0, 256, (6, 1, 1, 3))
    thumbs = np.clip(patterns[c] + rng.normal(0, 30, (n, 32, 32, 3)), 0, 255).astype(np.uint8)
    metrics = pd.DataFrame({
        "item_id": np.arange(n), "label": [str(v) for v in labels], "readable": 1, "width": 32, "height": 32,
        "brightness": 0.5, "brightness_high": 0.8, "brightness_low": 0.2, "contrast": 0.25, "sharpness": rng.uniform(80, 120, n),
        "fine_detail": 0.5, "entropy": 7.0, "aspect_ratio": 1.0, "area": 1024.0, "opacity": 1.0,
        "pixel_hash": [f"h{i}" for i in range(n)],
    })
    return DatasetInputs(metrics, x, thumbs, [str(v) for v in range(6)], methods=methods), outlier, flipped


@pytest.mark.parametrize("method", ["pca", pytest.param("umap", marks=pytest.mark.slow)])  # umap: ~10-25 s
def test_stages_beyond_the_limits_find_planted_issues(monkeypatch, method):
    monkeypatch.setattr(neighbors, "EXACT_LIMIT", 400)
    monkeypatch.setattr(projector, "MAP_SAMPLE_LIMIT", 500)
    inputs, outlier, flipped = synthetic_inputs(1500, [method])
    timings = {}
    result = run_stages(inputs, timings, progress=False)
    f = result.findings
    assert outlier in set(f.loc[f["issue"] == "outlier", "item_id"])
    assert len(set(f.loc[f["issue"] == "label_issue", "item_id"]) & set(flipped.tolist())) >= 4
    coords = result.maps[method]
    assert coords.shape == (1500, 2) and np.isfinite(coords).all()
    assert result.neighbours.shape == (1500, 15) and (result.neighbours >= 0).all()
    assert {"neighbours", "duplicates", "labels", "outliers", "projection"} <= set(timings)
