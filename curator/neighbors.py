"""k-nearest-neighbour search with faiss on L2-normalised float32 vectors (cosine similarity):
exact inner product up to ``EXACT_LIMIT`` items, an inverted-file index with 8-bit scalar
quantisation (IVF-SQ8) beyond, always in the full dimension.

Why IVF-SQ8 (benchmarks/scale.py --ann on the 100k real EfficientNet-Lite0 embeddings of
README "Scale", 2 busy cores, load 5.7-7.2; search of all 100k rows, exact: ~450 s):
IVF-SQ8 (1264 lists, nprobe 16) built in 38 s and searched in 44 s at recall@10 0.973;
IVF-Flat 45 s + 76 s at 0.983; HNSW32 77 s + 53 s at 0.997. IVF-SQ8 is the fastest and keeps
one byte per dimension (1.3 GB at 1M x 1280; IVF-Flat and HNSW keep float32, 5 GB, HNSW
its graph besides), filled chunk by chunk, so the (N, D) float32 matrix never has to be in
memory at once. (On 50k x 1280 synthetic clusters all three reached recall@10 0.997-1.000.)"""

from __future__ import annotations

import numpy as np

from .native_env import single_threaded_blas

EXACT_LIMIT = 20_000  # all pairs up to here (20k x 20k x 1280: ~10 s); small projects unchanged
NPROBE = 16  # inverted lists searched per query
TRAIN_PER_LIST = 30  # k-means training points per list (faiss warns below 39; 30 loses no recall here)
CHUNK = 20_000  # rows normalised, added or searched at a time


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


def reduce_rows(rows, n: int, dims: int, limit: int | None = None, seed: int = 0) -> np.ndarray:
    """:func:`reduce_dims` of ``n`` rows produced on demand by ``rows(ids)``: up to ``limit``
    rows exactly as before; beyond, PCA fitted on ``limit`` random rows and applied chunk by
    chunk, so the fit costs the same at any size and the full-width rows never sit in memory.
    ``limit``: default ``EXACT_LIMIT``."""
    limit = EXACT_LIMIT if limit is None else limit
    if n <= limit:
        return reduce_dims(rows(np.arange(n)), dims, seed)
    from sklearn.decomposition import PCA

    sample = rows(np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False)))
    if sample.shape[1] <= dims:
        return np.concatenate([rows(np.arange(a, min(a + CHUNK, n))) for a in range(0, n, CHUNK)])
    solver = "covariance_eigh" if limit > 2 * sample.shape[1] else "randomized"
    pca = PCA(n_components=dims, svd_solver=solver, random_state=seed)
    out = np.empty((n, dims), dtype=np.float32)
    with single_threaded_blas():
        pca.fit(sample)
        for a in range(0, n, CHUNK):
            out[a : a + CHUNK] = pca.transform(rows(np.arange(a, min(a + CHUNK, n))))
    return out


def lists_for(n: int) -> int:
    """Inverted lists for ``n`` items: 4 sqrt(n), at most 4096 (training stays bounded)."""
    return int(min(4096, max(16, 4 * np.sqrt(n))))


def approximate_index(d: int, n: int, training: np.ndarray):
    """An empty IVF-SQ8 inner-product index for ``n`` rows of width ``d``, trained on the
    (normalised, float32) ``training`` rows: a random sample, so training does not grow with n."""
    import faiss

    nlist = min(lists_for(n), max(1, len(training) // 4))
    index = faiss.IndexIVFScalarQuantizer(faiss.IndexFlatIP(d), d, nlist, faiss.ScalarQuantizer.QT_8bit,
                                          faiss.METRIC_INNER_PRODUCT)
    index.cp.niter = 10
    index.train(np.ascontiguousarray(training, dtype=np.float32))
    index.nprobe = min(NPROBE, nlist)
    return index


def training_rows(n: int, nlist: int, seed: int = 0) -> np.ndarray:
    """Sorted random row numbers to train an index of ``nlist`` lists on."""
    size = min(n, TRAIN_PER_LIST * nlist)
    return np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))


def build_index(x: np.ndarray):
    """An index of the rows of ``x`` (normalised float32, may be a memory map): exact up to
    ``EXACT_LIMIT`` rows, IVF-SQ8 beyond (filled chunk by chunk)."""
    import faiss

    n, d = x.shape
    if n <= EXACT_LIMIT:
        index = faiss.IndexFlatIP(d)
        index.add(np.ascontiguousarray(x, dtype=np.float32))
        return index
    return build_index_from(lambda ids: np.ascontiguousarray(x[ids], dtype=np.float32), n, d)


def build_index_from(rows, n: int, d: int):
    """Like :func:`build_index` for rows produced on demand: ``rows(ids)`` returns those rows
    normalised float32, so an (N, D) matrix larger than memory never exists at once."""
    if n <= EXACT_LIMIT:
        return build_index(rows(np.arange(n)))
    index = approximate_index(d, n, rows(training_rows(n, lists_for(n))))
    for a in range(0, n, CHUNK):
        index.add(rows(np.arange(a, min(a + CHUNK, n))))
    return index


def knn(x: np.ndarray, k: int, *, normalized: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(indices, similarities) of the ``k`` nearest other items of every row of ``x``.

    Self-matches are removed; where fewer than ``k`` neighbours exist, index -1 / sim -inf.
    """
    x = x if normalized else normalize(x)
    n = x.shape[0]
    if n > EXACT_LIMIT:
        return knn_rows(lambda ids: np.ascontiguousarray(x[ids], dtype=np.float32), n, x.shape[1], k)
    k_eff = min(k + 1, n)
    index = build_index(x)
    sims, idx = index.search(x, k_eff)
    return _padded(*without_self(idx, sims, np.arange(n), k), k)  # fewer items than k + 1: padded


def knn_rows(rows, n: int, d: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`knn` of ``n`` rows produced on demand by ``rows(ids)`` (normalised float32): the
    index is filled and searched ``CHUNK`` rows at a time, so memory holds the index (one byte
    per dimension beyond ``EXACT_LIMIT``), one chunk and the (n, k) result."""
    if n <= EXACT_LIMIT:
        return knn(rows(np.arange(n)), k, normalized=True)
    index = build_index_from(rows, n, d)
    out_idx = np.empty((n, k), dtype=np.int64)
    out_sim = np.empty((n, k), dtype=np.float32)
    for a in range(0, n, CHUNK):
        ids = np.arange(a, min(a + CHUNK, n))
        sims, idx = index.search(rows(ids), min(k + 1, n))
        i, s = _padded(*without_self(idx, sims, ids, k), k)
        out_idx[ids], out_sim[ids] = i, np.where(i >= 0, s, -np.inf)
    return out_idx, out_sim


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
