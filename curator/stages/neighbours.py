"""Stage 1: every readable item's nearest neighbours, in the full embedding dimension (the
outlier check, near-duplicate candidates, "show similar") and among the standardised pixel
thumbnails (near-duplicate candidates, the local sharpness reference).

Always the full dimension: PCA fitted on the dataset squeezes out exactly the directions in
which out-of-domain images differ, so outliers vanish. Exact search up to
``neighbors.EXACT_LIMIT`` items, an IVF-SQ8 index beyond, filled and searched chunk by chunk
from the memory-mapped embeddings (the (N, D) float32 matrix never exists at once)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..neighbors import knn, knn_rows

NEIGHBOURS = 15  # stored per item for "show similar", fed to UMAP
OUTLIER_NEIGHBOURS = 30  # large enough that a small cluster of odd images is still odd


@dataclass
class Neighbours:
    """(n, k) positions among the readable items (-1: none) and cosine similarities."""

    idx: np.ndarray
    sim: np.ndarray
    pixel_idx: np.ndarray
    pixel_sim: np.ndarray


def find_neighbours(spaces, base: str) -> Neighbours:
    n = len(spaces.readable)
    if n <= 1:
        none = np.full((n, 1), -1), np.full((n, 1), -np.inf)
        return Neighbours(*none, *none)
    k = min(OUTLIER_NEIGHBOURS, n - 1)
    idx, sim = knn_rows(spaces.rows(base), n, spaces.width(base), k)
    pixel_idx, pixel_sim = knn(spaces["pixels"], min(NEIGHBOURS, k), normalized=True)
    return Neighbours(idx, sim, pixel_idx, pixel_sim)


def pairs(ids: np.ndarray, nbr_idx: np.ndarray, k: int) -> np.ndarray:
    """(P, 2) item-id pairs of each row's first ``k`` neighbours (local indices -> ids)."""
    cols = nbr_idx[:, :k]
    out = np.stack([np.repeat(ids, cols.shape[1]), cols.ravel()], axis=1)
    out = out[out[:, 1] >= 0]
    out[:, 1] = ids[out[:, 1]]
    return out


def neighbour_table(n: int, readable: np.ndarray, nbr_idx: np.ndarray) -> np.ndarray:
    """(n, NEIGHBOURS) int32 item ids of each item's nearest items (-1: none or unreadable),
    for "show similar" in the explorer."""
    near = nbr_idx[:, :NEIGHBOURS]
    table = np.full((n, near.shape[1]), -1, dtype=np.int32)
    table[readable] = np.where(near >= 0, readable[np.clip(near, 0, None)], -1)
    return table
