"""k-nearest-neighbour search with faiss: exact inner product up to ``EXACT_LIMIT`` items,
HNSW beyond (sub-quadratic), always on L2-normalised float32 vectors (cosine similarity)."""

from __future__ import annotations

import numpy as np

from .native_env import single_threaded_blas

EXACT_LIMIT = 100_000


def normalize(x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def reduce_dims(x: np.ndarray, dims: int, seed: int = 0) -> np.ndarray:
    """PCA to at most ``dims`` dimensions (cost linear in the item count)."""
    if x.shape[1] <= dims or x.shape[0] <= dims:
        return np.ascontiguousarray(x, dtype=np.float32)
    from sklearn.decomposition import PCA

    # covariance + eigh is O(N D^2) and 2-3x faster than randomized SVD when N >> D
    solver = "covariance_eigh" if x.shape[0] > 2 * x.shape[1] else "randomized"
    pca = PCA(n_components=dims, svd_solver=solver, random_state=seed)
    with single_threaded_blas():  # 2 s instead of 12-24 s for 5000x1280 -> 256 on a busy machine
        return np.ascontiguousarray(pca.fit_transform(x), dtype=np.float32)


def build_index(x: np.ndarray):
    import faiss

    n, d = x.shape
    if n <= EXACT_LIMIT:
        index = faiss.IndexFlatIP(d)
    else:
        index = faiss.IndexHNSWFlat(d, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 80
        index.hnsw.efSearch = 96
    index.add(x)
    return index


def knn(x: np.ndarray, k: int, *, normalized: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(indices, similarities) of the ``k`` nearest other items of every row of ``x``.

    Self-matches are removed; where fewer than ``k`` neighbours exist, index -1 / sim -inf.
    """
    x = x if normalized else normalize(x)
    n = x.shape[0]
    k_eff = min(k + 1, n)
    index = build_index(x)
    sims, idx = index.search(x, k_eff)
    return _padded(*without_self(idx, sims, np.arange(n), k), k)  # fewer items than k + 1: padded


def without_self(idx: np.ndarray, sims: np.ndarray, self_ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``k`` results of each row other than the query itself (``self_ids``: each
    row's own index), wherever it landed (exact duplicates can tie with it), order kept;
    index -1 / sim -inf where fewer remain."""
    is_other = (idx != np.asarray(self_ids)[:, None]) & (idx >= 0)
    order = np.argsort(~is_other, axis=1, kind="stable")[:, :k]
    out_idx = np.take_along_axis(idx, order, axis=1).astype(np.int64)
    out_sim = np.take_along_axis(sims, order, axis=1).astype(np.float32)
    valid = np.take_along_axis(is_other, order, axis=1)
    out_idx[~valid] = -1
    out_sim[~valid] = -np.inf
    return out_idx, out_sim


def _padded(idx: np.ndarray, sims: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows widened to ``k`` columns with index -1 / sim -inf."""
    if idx.shape[1] < k:
        pad = k - idx.shape[1]
        idx = np.pad(idx, ((0, 0), (0, pad)), constant_values=-1)
        sims = np.pad(sims, ((0, 0), (0, pad)), constant_values=-np.inf)
    return idx, sims


def knn_between(queries: np.ndarray, base: np.ndarray, k: int, *, normalized: bool = False,
                index=None) -> tuple[np.ndarray, np.ndarray]:
    """(indices into ``base``, similarities) of the ``k`` nearest ``base`` rows of every row of
    ``queries`` (two different sets, so nothing is dropped as a self-match); cosine similarity.
    Pass a prebuilt ``index`` of ``base`` to search it again without rebuilding.
    Where ``base`` has fewer than ``k`` rows, index -1 / sim -inf."""
    if not normalized:
        queries, base = normalize(queries), normalize(base)
    k_eff = min(k, len(base))
    if len(queries) == 0 or k_eff == 0:
        return np.full((len(queries), k), -1, np.int64), np.full((len(queries), k), -np.inf, np.float32)
    index = index if index is not None else build_index(np.ascontiguousarray(base, dtype=np.float32))
    sims, idx = index.search(np.ascontiguousarray(queries, dtype=np.float32), k_eff)
    idx = idx.astype(np.int64)
    return _padded(idx, np.where(idx >= 0, sims, -np.inf).astype(np.float32), k)


def joint_pca(a: np.ndarray, b: np.ndarray, dims: int, sample: int = 3000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Both sets projected onto one PCA basis (faiss ``PCAMatrix``, no scikit-learn import)
    fitted on a random sample of their union, so the fit does not grow with the item count;
    unchanged when already small."""
    import faiss

    a = np.ascontiguousarray(a, dtype=np.float32)
    b = np.ascontiguousarray(b, dtype=np.float32)
    if a.shape[1] <= dims or len(a) + len(b) <= dims:
        return a, b
    rng = np.random.default_rng(seed)
    union = len(a) + len(b)
    pick = np.sort(rng.choice(union, size=min(sample, union), replace=False))
    fit_on = np.ascontiguousarray(np.concatenate([a[pick[pick < len(a)]], b[pick[pick >= len(a)] - len(a)]]))
    pca = faiss.PCAMatrix(a.shape[1], dims)
    pca.train(fit_on)
    return pca.apply(a), pca.apply(b)
