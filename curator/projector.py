"""The embedding projector: which features a 2D map is drawn from, which algorithm draws it,
and where each map is kept.

Feature spaces (:class:`FeatureSpaces`): ``cnn`` (the backbone's embedding, PCA-256),
``pixels`` (standardised thumbnails, PCA-128), ``cnn+pixels`` (both, what the label check uses
on digit-like data), and with the user's own vectors ``user`` and ``user+pixels``. Which one
separates the classes best depends on the data (ImageNet features of 8x8 digits are weak), so
analyze measures the k-NN label agreement of each in full dimension and draws the default map
(``arrays/projection.npy``) on the best one.

Algorithms (:class:`MapSpec`): UMAP (n_neighbors, min_dist) fed with faiss neighbours,
t-SNE (perplexity; openTSNE's FFT-accelerated gradients, also fed with faiss neighbours) and
PCA (which two components). Every map is cached as ``arrays/projection-<method>-<params>.npy``
(atomic write); analyze removes the cached maps whenever it recomputes the issues.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .errors import CuratorError
from . import neighbors
from .neighbors import build_index, knn, normalize, reduce_rows, without_self

METHODS = ("umap", "tsne", "pca")
METHOD_LABELS = {"umap": "UMAP", "tsne": "t-SNE", "pca": "PCA"}
SPACE_LABELS = {
    "cnn": "CNN embedding",
    "pixels": "pixel thumbnails",
    "cnn+pixels": "CNN + pixels",
    "user": "your embeddings",
    "user+pixels": "your embeddings + pixels",
}
USER_EMBEDDINGS = "embeddings-user.npy"
CACHE_GLOB = "projection-*.npy"
MAP_SAMPLE_LIMIT = 20_000  # UMAP / t-SNE fitted on at most this many points (~20 s); the rest placed
SLOW_SECONDS = 60.0  # a map expected to take longer is computed only when asked to

Progress = Callable[[float, str], None]


# ---------------------------------------------------------------------------------- the spec
@dataclass(frozen=True)
class MapSpec:
    """One 2D map: algorithm, its parameters and the feature space. Only the parameters of
    ``method`` matter (and appear in :meth:`key`)."""

    method: str = "umap"
    space: str = "cnn"
    n_neighbors: int = 15
    min_dist: float = 0.1
    perplexity: float = 30.0
    components: tuple[int, int] = (1, 2)

    def __post_init__(self):
        if self.method not in METHODS:
            raise CuratorError(f"unknown projection {self.method!r}; use one of {', '.join(METHODS)}")
        if self.space not in SPACE_LABELS:
            raise CuratorError(f"unknown embedding {self.space!r}; use one of {', '.join(SPACE_LABELS)}")
        if not 2 <= int(self.n_neighbors) <= 200:
            raise CuratorError(f"n_neighbors must be between 2 and 200, not {self.n_neighbors}")
        if not 0.0 <= float(self.min_dist) <= 1.0:
            raise CuratorError(f"min_dist must be between 0 and 1, not {self.min_dist}")
        if not 2.0 <= float(self.perplexity) <= 100.0:
            raise CuratorError(f"perplexity must be between 2 and 100, not {self.perplexity}")
        a, b = (int(c) for c in self.components)
        if a == b or min(a, b) < 1 or max(a, b) > 50:
            raise CuratorError(f"PCA components must be two different numbers from 1 to 50, not {a} and {b}")
        object.__setattr__(self, "n_neighbors", int(self.n_neighbors))
        object.__setattr__(self, "min_dist", float(self.min_dist))
        object.__setattr__(self, "perplexity", float(self.perplexity))
        object.__setattr__(self, "components", (a, b))

    def params(self) -> dict:
        if self.method == "umap":
            return {"n_neighbors": self.n_neighbors, "min_dist": self.min_dist}
        if self.method == "tsne":
            return {"perplexity": self.perplexity}
        return {"components": self.components}

    def key(self) -> str:
        """e.g. ``umap-cnn+pixels-n15-d0.1``, ``tsne-cnn-p30``, ``pca-pixels-c1c2``."""
        p = self.params()
        if self.method == "umap":
            tail = f"n{p['n_neighbors']}-d{p['min_dist']:g}"
        elif self.method == "tsne":
            tail = f"p{p['perplexity']:g}"
        else:
            tail = "c{}c{}".format(*p["components"])
        return f"{self.method}-{self.space}-{tail}"

    @property
    def file_name(self) -> str:
        return f"projection-{self.key()}.npy"

    def describe(self) -> str:
        p = ", ".join(f"{k}={'/'.join(map(str, v)) if isinstance(v, tuple) else f'{v:g}'}" for k, v in self.params().items())
        return f"{METHOD_LABELS[self.method]} ({p}) of the {SPACE_LABELS[self.space]}"


_KEY = re.compile(r"^projection-(umap|tsne|pca)-([a-z+]+)-(.+)\.npy$")


# ---------------------------------------------------------------------------------- features
def thumbnail_features(thumbs: np.ndarray) -> np.ndarray:
    """Per-image standardised thumbnails (brightness/contrast removed), unit norm."""
    flat = thumbs.reshape(len(thumbs), int(np.prod(thumbs.shape[1:]))).astype(np.float32)
    flat -= flat.mean(axis=1, keepdims=True)
    return normalize(flat)


def space_names(*, user: bool, cnn: bool, thumbs: bool) -> list[str]:
    """The feature spaces a project with these arrays offers, embeddings first."""
    out = []
    for base, present in (("user", user), ("cnn", cnn)):
        if present:
            out += [base, f"{base}+pixels"] if thumbs else [base]
    return out + (["pixels"] if thumbs else [])


class FeatureSpaces:
    """The feature spaces of the readable items, computed when first asked for (PCA of a
    70k x 1280 embedding takes seconds) and kept. ``cnn``/``user``: (N, D) embeddings, the
    thumbnails (N, S, S, 3); any may be a memory map. ``readable``: row indices used."""

    def __init__(self, readable: np.ndarray, *, cnn=None, user=None, thumbs=None):
        self.readable = np.asarray(readable, dtype=np.int64)
        self._raw = {"cnn": cnn, "user": user}
        self._thumbs = thumbs
        self._made: dict[str, np.ndarray] = {}

    def names(self) -> list[str]:
        return space_names(user=self._raw["user"] is not None, cnn=self._raw["cnn"] is not None,
                           thumbs=self._thumbs is not None)

    def __contains__(self, name: str) -> bool:
        return name in self.names()

    def full(self, base: str) -> np.ndarray:
        """Unit-norm embedding rows of the readable items in full dimension."""
        return normalize(np.asarray(self._raw[base][self.readable], dtype=np.float32))

    def width(self, base: str) -> int:
        return int(self._raw[base].shape[1])

    def rows(self, base: str):
        """``rows(ids)``: unit-norm full-dimension rows ``ids`` (positions among the readable
        items), read on demand from the (memory-mapped) embeddings, for chunked work."""
        raw, readable = self._raw[base], self.readable
        return lambda ids: normalize(np.asarray(raw[readable[ids]], dtype=np.float32))

    def _pixel_rows(self, ids):
        return thumbnail_features(np.asarray(self._thumbs[self.readable[ids]]))

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self.names():
            raise CuratorError(f"the {SPACE_LABELS.get(name, name)} are not available in this project")
        if name not in self._made:
            # beyond EXACT_LIMIT items the PCA is fitted on a sample and applied in chunks
            n = len(self.readable)
            if name == "pixels":
                made = normalize(reduce_rows(self._pixel_rows, n, 128))
            elif name.endswith("+pixels"):
                made = np.hstack([self[name.split("+")[0]], self["pixels"]]) / np.float32(np.sqrt(2.0))
            else:
                made = normalize(reduce_rows(self.rows(name), n, 256))
            self._made[name] = np.ascontiguousarray(made, dtype=np.float32)
        return self._made[name]

    @classmethod
    def of_project(cls, project) -> "FeatureSpaces":
        """The spaces of an analysed project, from its array files (read only)."""
        metrics = project.metrics()
        readable = metrics.loc[metrics["readable"] == 1, "item_id"].to_numpy(dtype=np.int64)
        cnn = project.embeddings(mmap=True) if (project.analysis or {}).get("embeddings_file") else None
        user = load_user_embeddings(project)
        try:
            thumbs = project.thumbnails()
        except Exception:  # a damaged thumbnail file: maps of the embeddings still work
            thumbs = None
        return cls(readable, cnn=cnn, user=user, thumbs=thumbs)


def load_user_embeddings(project) -> np.ndarray | None:
    info = (project.analysis or {}).get("user_embeddings") or project.manifest.get("user_embeddings")
    path = project.array_path(USER_EMBEDDINGS)
    if not info or not path.exists():
        return None
    return project.load_array(USER_EMBEDDINGS, (len(project), int(info["dim"])), np.float32, mmap=True)


# ---------------------------------------------------------------------------------- choosing
def knn_agreement(features: np.ndarray, labels: np.ndarray, k: int = 10, max_queries: int = 2000, seed: int = 0,
                  max_items: int | None = None) -> float:
    """How often the majority label of an item's ``k`` nearest neighbours (self excluded,
    labelled items only) is its own label: leave-one-out k-NN accuracy in full dimension.
    Above ``max_queries`` labelled items a random sample of them is scored against all; above
    ``max_items``, against a random sample of ``max_items`` (a comparison between spaces, so
    sampling both sides keeps it fair and the search exact and bounded; default
    ``neighbors.EXACT_LIMIT``)."""
    max_items = neighbors.EXACT_LIMIT if max_items is None else max_items
    known = np.flatnonzero(labels >= 0)
    if len(known) < k + 2:
        return 0.0
    if len(known) > max_items:  # a sample of the items, so the search stays exact and bounded
        known = np.sort(np.random.default_rng(seed).choice(known, max_items, replace=False))
    x = normalize(features[known])
    y = labels[known]
    queries = np.arange(len(known))
    if len(queries) > max_queries:
        queries = np.sort(np.random.default_rng(seed).choice(len(known), max_queries, replace=False))
    sims, idx = build_index(x).search(x[queries], k + 1)
    nbr, _ = without_self(idx, sims, queries, k)
    valid = nbr >= 0
    votes = np.zeros((len(queries), int(y.max()) + 1))
    rows = np.repeat(np.arange(len(queries)), k)
    np.add.at(votes, (rows[valid.ravel()], y[np.clip(nbr, 0, None)].ravel()[valid.ravel()]), 1.0)
    return float((votes.argmax(axis=1) == y[queries]).mean())


def choose_space(spaces: FeatureSpaces, labels: np.ndarray, candidates=None) -> tuple[str, dict]:
    """The space whose 10 nearest neighbours agree most often with the given labels, and
    every candidate's agreement. Without two labelled classes: the embedding (no evidence)."""
    names = [c for c in (candidates or spaces.names()) if c in spaces]
    embeddings = [n for n in names if n in ("user", "cnn")]
    base = embeddings[0] if embeddings else names[0]
    labels = np.asarray(labels)
    if len(np.unique(labels[labels >= 0])) < 2:
        return base, {}
    scores = {name: round(knn_agreement(spaces[name], labels), 4) for name in names}
    best = max(names, key=lambda n: (scores[n], n == base))
    return best, scores


def map_knn_accuracy(coords: np.ndarray, labels: np.ndarray, k: int = 10, folds: int = 5) -> float:
    """How well a 2D map separates the classes: 5-fold cross-validated accuracy of a k-NN
    classifier on the map coordinates (labelled items with finite coordinates)."""
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    ok = (np.asarray(labels) >= 0) & np.isfinite(coords).all(axis=1)
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=0)
    return float(cross_val_score(KNeighborsClassifier(n_neighbors=k), coords[ok], np.asarray(labels)[ok], cv=cv).mean())


# ---------------------------------------------------------------------------------- computing
# seconds (fixed, per point) measured on the 2-core machine with benchmarks/explorer.py
# --projections at 1.8k, 20k and 70k points (UMAP 52 s, t-SNE 112 s at 70k when idle; UMAP
# rounded up for busy machines), for the warning shown before a slow map starts
COST = {"pca": (1.5, 3e-5), "umap": (6.0, 8e-4), "tsne": (3.0, 1.6e-3)}


def expected_seconds(method: str, n: int) -> float:
    fixed, per_point = COST[method]
    return fixed + per_point * n


def too_slow(method: str, n: int) -> bool:
    return expected_seconds(method, n) > SLOW_SECONDS


def compute_map(spec: MapSpec, features: np.ndarray, *, progress: Progress | None = None, seed: int = 42,
                neighbours: tuple[np.ndarray, np.ndarray] | None = None, sample_limit: int | None = None) -> np.ndarray:
    """(N, 2) float32 coordinates of ``features`` (unit-norm rows) for ``spec``.
    ``neighbours``: (indices, cosine similarities) without self, reused when given.
    Above ``sample_limit`` points UMAP and t-SNE are fitted on a random sample of that size and
    every other point is placed from its neighbours (:func:`extend_map`): linear, not
    super-linear, in the point count. PCA is linear already and uses every point."""
    report = progress or (lambda fraction, text: None)
    sample_limit = MAP_SAMPLE_LIMIT if sample_limit is None else sample_limit
    n = len(features)
    if n == 0:
        return np.zeros((0, 2), dtype=np.float32)
    if spec.method != "pca" and n > sample_limit:
        return _sampled_map(spec, features, report, seed, neighbours, sample_limit)
    if spec.method == "pca" or n < 5:
        return _pca(features, spec.components if spec.method == "pca" else (1, 2), seed)
    if spec.method == "umap":
        from .projection import project_2d

        k = min(spec.n_neighbors, n - 1)
        if neighbours is None or neighbours[0].shape[1] < k - 1:
            report(0.05, "nearest neighbours")
            neighbours = knn(features, k - 1, normalized=True)
        report(0.2, "UMAP layout")
        return project_2d(features, neighbours[0][:, : k - 1], neighbours[1][:, : k - 1], method="umap", seed=seed,
                          n_neighbors=k, min_dist=spec.min_dist)
    return _tsne(features, spec.perplexity, report, seed, neighbours)


def _sampled_map(spec: MapSpec, features: np.ndarray, report: Progress, seed: int, neighbours, limit: int) -> np.ndarray:
    n = len(features)
    sample = np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))
    if neighbours is None or neighbours[0].shape[1] < 1:
        report(0.02, "nearest neighbours")
        neighbours = knn(features, spec.n_neighbors, normalized=True)
    sub = compute_map(spec, np.ascontiguousarray(features[sample]), progress=lambda f, t: report(0.05 + 0.85 * f, t),
                      seed=seed, sample_limit=limit)
    report(0.9, "placing the other points")
    return extend_map(sub, sample, neighbours, features)


def extend_map(sample_coords: np.ndarray, sample: np.ndarray, neighbours: tuple[np.ndarray, np.ndarray],
               features: np.ndarray | None = None, rounds: int = 50) -> np.ndarray:
    """(N, 2) map of every point from the map of a ``sample`` of them: each other point goes to
    the similarity-weighted mean position of its already placed neighbours (``neighbours``:
    (N, k) indices and cosine similarities, -1 for none), round after round, so points reached
    only through other unsampled points are placed too; linear in N. Points no chain of
    neighbours connects to the sample are placed from their nearest sample points in
    ``features`` (when given; else they stay NaN)."""
    idx, sim = neighbours
    n = len(idx)
    coords = np.full((n, 2), np.nan, dtype=np.float64)
    placed = np.zeros(n, dtype=bool)
    coords[sample], placed[sample] = sample_coords, True
    weight = np.where(idx >= 0, np.clip(sim, 0.0, None) + 1e-6, 0.0)
    for _ in range(rounds):
        todo = np.flatnonzero(~placed)
        if len(todo) == 0:
            break
        nb = np.clip(idx[todo], 0, None)
        w = np.where(placed[nb] & (idx[todo] >= 0), weight[todo], 0.0)
        total = w.sum(axis=1)
        has = total > 0
        if not has.any():
            break
        rows, nb, w = todo[has], nb[has], w[has]
        near = np.where(w[:, :, None] > 0, coords[nb], 0.0)
        coords[rows] = (w[:, :, None] * near).sum(axis=1) / total[has, None]
        placed[rows] = True  # after the round: each round reads only earlier rounds' positions
    rest = np.flatnonzero(~placed)
    if len(rest) and features is not None:
        from .neighbors import knn_between

        base = np.ascontiguousarray(features[sample], dtype=np.float32)
        index = build_index(base)
        for a in range(0, len(rest), 20_000):
            part = rest[a : a + 20_000]
            i, s = knn_between(features[part], base, min(10, len(sample)), normalized=True, index=index)
            w = np.where(i >= 0, np.clip(s, 0.0, None) + 1e-6, 0.0)
            coords[part] = (w[:, :, None] * coords[sample[np.clip(i, 0, None)]]).sum(axis=1) / w.sum(axis=1, keepdims=True)
    return coords.astype(np.float32)


def _pca(x: np.ndarray, components: tuple[int, int], seed: int) -> np.ndarray:
    from sklearn.decomposition import PCA

    n, d = x.shape
    out = np.zeros((n, 2), dtype=np.float32)
    top = min(max(components), n, d)
    if n < 2 or top < 1:
        return out
    comps = PCA(n_components=top, random_state=seed).fit_transform(x)
    for col, c in enumerate(components):
        if c <= top:
            out[:, col] = comps[:, c - 1]
    return out


def _tsne(x: np.ndarray, perplexity: float, report: Progress, seed: int, neighbours=None) -> np.ndarray:
    import openTSNE
    from openTSNE.affinity import PerplexityBasedNN
    from openTSNE.nearest_neighbors import PrecomputedNeighbors

    n = len(x)
    perplexity = min(perplexity, max(2.0, (n - 1) / 3.0))
    k = min(n - 1, int(3 * perplexity))
    if neighbours is None or neighbours[0].shape[1] < k or (neighbours[0][:, :k] < 0).any():
        report(0.02, "nearest neighbours")
        neighbours = knn(x, k, normalized=True)
    idx, sim = neighbours[0][:, :k], neighbours[1][:, :k]
    dist = np.sqrt(np.maximum(2.0 - 2.0 * np.clip(sim, -1, 1), 0.0)).astype(np.float64)  # unit vectors
    report(0.1, "affinities")
    affinities = PerplexityBasedNN(knn_index=PrecomputedNeighbors(idx.astype(np.int64), dist), perplexity=perplexity,
                                   n_jobs=1, random_state=seed)
    total = 250 + 500
    done = [0]

    def tick(iteration, error, embedding):
        done[0] += 25
        report(0.15 + 0.85 * min(done[0], total) / total, f"t-SNE iteration {min(done[0], total)} of {total}")
        return False

    tsne = openTSNE.TSNE(n_components=2, perplexity=perplexity, n_jobs=1, random_state=seed, callbacks=tick,
                         callbacks_every_iters=25, verbose=False)
    init = openTSNE.initialization.pca(x, random_state=seed)
    emb = tsne.fit(affinities=affinities, initialization=init)
    return np.asarray(emb, dtype=np.float32)


# ---------------------------------------------------------------------------------- the cache
def cache_path(root: str | Path, spec: MapSpec) -> Path:
    return Path(root) / "arrays" / spec.file_name


def cached_map(root: str | Path, spec: MapSpec, n: int) -> np.ndarray | None:
    """The cached map, or None when missing or not (n, 2) float32 (stale, damaged)."""
    from .arrays import problem

    path = cache_path(root, spec)
    if problem(path, (n, 2), np.float32) is not None:
        return None
    return np.load(path)


def save_map(root: str | Path, spec: MapSpec, coords: np.ndarray) -> bool:
    """Cache a map atomically; False when the project cannot be written (read-only)."""
    from .store import atomic_save_npy

    try:
        atomic_save_npy(cache_path(root, spec), np.asarray(coords, dtype=np.float32))
        return True
    except OSError:
        return False


def clear_cache(root: str | Path) -> None:
    """Remove every cached map (they describe the previous analysis)."""
    for path in (Path(root) / "arrays").glob(CACHE_GLOB):
        if _KEY.match(path.name):
            path.unlink(missing_ok=True)


def full_map(n: int, readable: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """(n, 2) with the readable rows filled and NaN elsewhere (unreadable images)."""
    out = np.full((n, 2), np.nan, dtype=np.float32)
    out[readable] = coords
    return out


def parse_methods(text: str) -> list[str]:
    """``umap,tsne,pca`` -> ["umap", "tsne", "pca"] (the first draws projection.npy)."""
    methods = [m.strip().lower().replace("t-sne", "tsne") for m in str(text).split(",") if m.strip()]
    bad = [m for m in methods if m not in METHODS]
    if bad or not methods:
        raise CuratorError(f"unknown projection {bad[0] if bad else text!r}; use one or more of {','.join(METHODS)} (comma-separated)")
    return list(dict.fromkeys(methods))
