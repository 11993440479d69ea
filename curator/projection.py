"""2D map of the embedding space for the explorer: UMAP (fixed seed) fed with the faiss
neighbours we already computed, which spares UMAP's own (JIT-heavy) neighbour search; PCA
as a fast alternative."""

from __future__ import annotations

import sys

import numpy as np


def cache_umap_compilation() -> None:
    """Import umap (and pynndescent) with numba's on-disk cache switched on for every
    function they compile, so that only the first process on a machine pays the JIT.

    Most of umap's numba functions do not ask for ``cache=True``: every fresh process
    compiled them again (about 18 s of import and 7 s more on the first fit, on this 2-core
    machine under load). The cache lives in ``NUMBA_CACHE_DIR`` (curator/native_env.py sets
    it to the user cache folder); functions numba cannot cache are simply compiled as before.
    """
    if "umap" in sys.modules:  # already imported: its functions keep the options they got
        return
    import numba

    plain_njit, plain_jit = numba.njit, numba.jit

    def _cached(decorator):
        def wrapper(*args, **kwargs):
            kwargs.setdefault("cache", True)
            return decorator(*args, **kwargs)

        return wrapper

    numba.njit, numba.jit = _cached(plain_njit), _cached(plain_jit)
    try:
        import umap  # noqa: F401  (its import compiles pynndescent's and its own functions)
    finally:
        numba.njit, numba.jit = plain_njit, plain_jit


def project_2d(x: np.ndarray, nbr_idx: np.ndarray | None = None, nbr_sim: np.ndarray | None = None,
               method: str = "umap", seed: int = 42, n_neighbors: int = 15, min_dist: float = 0.1) -> np.ndarray:
    n = len(x)
    if n == 0:
        return np.zeros((0, 2), dtype=np.float32)
    if n < 5 or method == "pca":
        from sklearn.decomposition import PCA

        out = np.zeros((n, 2), dtype=np.float32)
        if n >= 2:
            comps = PCA(n_components=min(2, n, x.shape[1]), random_state=seed).fit_transform(x)
            out[:, : comps.shape[1]] = comps
        return out
    import warnings

    cache_umap_compilation()
    import umap

    k = n_neighbors if nbr_idx is None else min(n_neighbors, nbr_idx.shape[1] + 1)
    k = min(k, n - 1)
    kwargs = {}
    if nbr_idx is not None and nbr_idx.shape[1] + 1 >= k and (nbr_idx[:, : k - 1] >= 0).all():
        # UMAP expects each point to be its own first neighbour at distance 0
        idx = np.concatenate([np.arange(n)[:, None], nbr_idx[:, : k - 1]], axis=1).astype(np.int64)
        dist = np.concatenate([np.zeros((n, 1)), 1.0 - np.clip(nbr_sim[:, : k - 1], -1, 1)], axis=1).astype(np.float32)
        kwargs["precomputed_knn"] = (idx, np.maximum(dist, 0.0), None)
    # 200 epochs (UMAP's own choice above 10k points) keeps small sets as cheap as large ones
    reducer = umap.UMAP(n_neighbors=k, n_components=2, metric="cosine", n_epochs=200, random_state=seed, min_dist=min_dist,
                        init="spectral" if n > 100 else "random", **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return reducer.fit_transform(x).astype(np.float32)
