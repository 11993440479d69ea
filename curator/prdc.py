"""Precision, recall, density and coverage of one embedding set against another (Naeem et
al. 2020, "Reliable Fidelity and Diversity Metrics for Generative Models"), with A as the real
and B as the fake set, computed exactly with faiss nearest-neighbour searches instead of the
paper's N x M distance matrix.

Every real sample i has a ball of radius r_i = the distance to its k-th nearest other real
sample (fake samples likewise). With B the candidate split:
  precision = share of B inside at least one A ball   (B asks nothing A lacks)
  recall    = share of A inside at least one B ball   (B spans what A spans)
  density   = mean number of A balls holding a B sample, divided by k (about 1 when B is
              distributed like A; above 1 where B crowds into A's dense regions)
  coverage  = share of A balls holding at least one B sample
Balls are searched from their centres with a growing number of neighbours, only for the few
centres whose ball is not yet exhausted: a ball holds about k x |B| / |A| points, so the cost
stays near that of one k-NN search. Vectors are L2-normalised; distance is Euclidean.
"""

from __future__ import annotations

import numpy as np

from .neighbors import build_index, knn


def _distance(sims: np.ndarray) -> np.ndarray:
    return np.sqrt(np.maximum(2.0 - 2.0 * sims, 0.0))


def knn_radii(x: np.ndarray, k: int) -> np.ndarray:
    """Distance of every row to its k-th nearest other row (normalised rows)."""
    _, sims = knn(x, k, normalized=True)
    return _distance(sims[:, k - 1]).astype(np.float32)


def ball_members(centres: np.ndarray, radii: np.ndarray, points: np.ndarray, start: int = 16,
                 index=None) -> tuple[np.ndarray, np.ndarray]:
    """All (centre, point) pairs with distance(centre, point) <= radius of the centre."""
    n_points = len(points)
    index = index if index is not None else build_index(points)
    todo = np.arange(len(centres))
    k = min(max(start, 1), n_points)
    hit_c, hit_p = [], []
    while len(todo):
        sims, idx = index.search(np.ascontiguousarray(centres[todo]), k)
        dist = _distance(sims)
        inside = (dist <= radii[todo, None]) & (idx >= 0)
        open_ = inside[:, -1] & (k < n_points)  # the farthest found is still inside: look further
        done = ~open_
        rows, cols = np.nonzero(inside[done])
        hit_c.append(todo[done][rows])
        hit_p.append(idx[done][rows, cols])
        todo = todo[open_]
        k = min(k * 4, n_points)
    return np.concatenate(hit_c).astype(np.int64), np.concatenate(hit_p).astype(np.int64)


def prdc(real: np.ndarray, fake: np.ndarray, k: int = 5, *, real_radii: np.ndarray | None = None,
         fake_radii: np.ndarray | None = None, real_index=None, fake_index=None) -> dict:
    """{precision, recall, density, coverage, k} of ``fake`` against ``real`` (normalised rows).
    Radii and faiss indexes may be passed in when the caller has them already."""
    n, m = len(real), len(fake)
    if n <= k or m <= k:
        return {"precision": None, "recall": None, "density": None, "coverage": None, "k": k}
    real_radii = knn_radii(real, k) if real_radii is None else real_radii
    fake_radii = knn_radii(fake, k) if fake_radii is None else fake_radii
    fake_index = fake_index if fake_index is not None else build_index(fake)
    real_index = real_index if real_index is not None else build_index(real)
    start = int(np.clip(4 * k * m / n, 16, 256))
    c, p = ball_members(real, real_radii, fake, start=start, index=fake_index)
    precision = len(np.unique(p)) / m
    density = len(p) / (k * m)
    coverage = len(np.unique(c)) / n
    start = int(np.clip(4 * k * n / m, 16, 256))
    _, p_real = ball_members(fake, fake_radii, real, start=start, index=real_index)
    recall = len(np.unique(p_real)) / n
    return {"precision": round(float(precision), 4), "recall": round(float(recall), 4),
            "density": round(float(density), 4), "coverage": round(float(coverage), 4), "k": int(k)}


def outside_support(fake_to_real_idx: np.ndarray, fake_to_real_sims: np.ndarray, real_radii: np.ndarray) -> np.ndarray:
    """Per fake sample: min over its nearest real samples i of distance / r_i (> 1: outside
    every real k-NN ball checked; large: unlike anything in the real set)."""
    ok = fake_to_real_idx >= 0
    r = real_radii[np.where(ok, fake_to_real_idx, 0)]
    ratio = _distance(fake_to_real_sims) / np.maximum(r, 1e-6)
    ratio = np.where(ok, ratio, np.inf)
    return ratio.min(axis=1).astype(np.float32)
