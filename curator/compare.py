"""``curator compare A B``: what a candidate split B (test) shares with, lacks from, and adds
to a reference split A (train): leaked copies, PRDC coverage, class shift, metric drift and
the B images outside A's support.

Both projects must be analyzed with the same embedding; everything is read from their stored
analyses (embeddings and thumbnails memory-mapped), nothing is decoded again and no 2D map is
fitted here (the explorer's Compare page fits one on demand). Cost: a handful of faiss
searches and the alignment of a few candidate pairs per B image.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .errors import CuratorError
from .leaks import CANDIDATES, find_leaks, labels_differ, picture_groups
from .thumbnail_features import pixel_features, shift_free_features
from .neighbors import build_index, joint_pca, knn_between, normalize
from .prdc import knn_radii, outside_support, prdc
from .project import Project
from .shell import command
from .shift import ALPHA, DRIFT_METRICS, MIN_EFFECT, class_shift, drift

# A + B items up to which the CNN space is searched at full dimension; beyond, a joint PCA to
# SEARCH_DIMS (fitted on a sample): the five k-NN searches cost O(|A| |B| D), and at 2 x 10k
# images the full 1280 dimensions took 4-5x longer than the rest of compare together
FULL_DIM_LIMIT = 10_000
SEARCH_DIMS = 128
THUMB_DIMS = 128
SHIFT_FREE_GATE = 0.6  # digits: 5 of 9 shifted copies below, 1 in 10 untouched test images
SUPPORT_NEIGHBOURS = 10  # nearest A items over which an item's outside-support ratio is taken
SHIFT_RULE = f"p < {ALPHA} and KS statistic >= {MIN_EFFECT}"


@dataclass
class Side:
    """One split as compare reads it: per-item frame (paths, labels, metrics), the readable
    items' normalised embeddings, thumbnails (memory-mapped) and duplicate pictures."""

    name: str
    root: str
    frame: pd.DataFrame
    readable: np.ndarray  # item ids of readable items
    x: np.ndarray  # (len(readable), D) L2-normalised embeddings
    thumbs: np.ndarray  # (N, S, S, 3) uint8, memory-mapped
    pictures: np.ndarray  # (N,) picture id (the project's duplicate groups merged)
    sizes: np.ndarray  # (N, 2) native (width, height) in pixels
    embedding: str  # backbone key, e.g. efficientnet-lite0@96

    @property
    def items(self) -> int:
        return len(self.frame)


def _backbone_hint(project: Project, key: str) -> str:
    backbone, _, resolution = key.partition("@")
    args = ["curator", "analyze", project.root, "--backbone", backbone]
    if resolution:
        args += ["--resolution", resolution]
    return command(*args)


def check_compatible(a: Project, b: Project) -> str:
    """The shared embedding key; one line naming the command to run when there is none."""
    for p in (a, b):
        if not p.is_analyzed:
            raise CuratorError(f"project {p.name!r} is not analyzed yet: run `{command('curator', 'analyze', p.root)}` "
                               "(both projects of a comparison must be analyzed)")
    ka = a.analysis.get("backbone_key") or a.analysis.get("backbone")
    kb = b.analysis.get("backbone_key") or b.analysis.get("backbone")
    if ka != kb or a.analysis.get("embedding_dim") != b.analysis.get("embedding_dim"):
        raise CuratorError(f"{a.name!r} was analyzed with {ka} but {b.name!r} with {kb}: their embeddings cannot be "
                           f"compared; run `{_backbone_hint(b, ka)}`")
    return ka


def load_side(project: Project, embedding: str) -> Side:
    items = project.items()
    metrics = project.metrics()
    cols = ["item_id", "readable", "pixel_hash", "width", "height", "opacity", *DRIFT_METRICS]
    frame = items.merge(metrics.reindex(columns=cols), on="item_id", how="left")
    frame["readable"] = frame["readable"].fillna(0).astype(int).eq(1)
    readable = frame.loc[frame["readable"], "item_id"].to_numpy(dtype=np.int64)
    emb = project.embeddings(mmap=True)
    x = normalize(np.asarray(emb[readable])) if len(readable) else np.zeros((0, emb.shape[1]), np.float32)
    sizes = frame[["width", "height"]].fillna(32).to_numpy(dtype=np.float64)
    return Side(project.name, str(project.root), frame, readable, x, project.thumbnails(),
                picture_groups(len(frame), project.issues(["exact_duplicate", "near_duplicate"])), sizes, embedding)


@dataclass
class Comparison:
    """Everything ``compare`` found; :meth:`to_dict` is the JSON contract."""

    a: Side
    b: Side
    leaks: pd.DataFrame
    prdc: dict
    class_shift: list
    class_test: dict
    drift: list
    outside: pd.DataFrame  # readable B items, least like A first: item_id, path, label, score
    timings: dict = field(default_factory=dict)

    def leak_summary(self) -> dict:
        lk = self.leaks
        return {"pairs": len(lk), "b_items": int(lk["item_b"].nunique()) if len(lk) else 0,
                "exact_pairs": int((lk["kind"] == "exact_duplicate").sum()),
                "near_pairs": int((lk["kind"] == "near_duplicate").sum()),
                "labels_differ": int(labels_differ(lk).sum()) if len(lk) else 0,
                "share_of_b": round(lk["item_b"].nunique() / max(self.b.items, 1), 4) if len(lk) else 0.0}

    def to_dict(self, top: int | None = 100) -> dict:
        outside = self.outside if not top else self.outside.head(top)
        return _clean({
            "a": {"name": self.a.name, "items": self.a.items, "path": self.a.root, "readable": len(self.a.readable)},
            "b": {"name": self.b.name, "items": self.b.items, "path": self.b.root, "readable": len(self.b.readable)},
            "embedding": self.a.embedding,
            "leaks": _records(self.leaks),
            "leak_summary": self.leak_summary(),
            "prdc": self.prdc,
            "class_shift": self.class_shift,
            "class_test": self.class_test,
            "drift": self.drift,
            "drift_rule": SHIFT_RULE,
            "outside_support": _records(outside),
            "timings": self.timings,
        })


def _records(frame: pd.DataFrame) -> list[dict]:
    return [{key: _plain(value) for key, value in row.items()} for row in frame.to_dict(orient="records")]


def _clean(obj):
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return _plain(obj)


def _plain(value):
    """JSON-safe scalars: numpy numbers as Python ones, NaN / infinity as None."""
    if isinstance(value, (np.integer, bool, np.bool_)):
        return value.item() if hasattr(value, "item") else value
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    if value is pd.NA or value is pd.NaT:
        return None
    return value


def compare(a: Project | str | os.PathLike, b: Project | str | os.PathLike, k: int = 5) -> Comparison:
    """Compare B (candidate, e.g. test) against A (reference, e.g. train)."""
    if k < 1:
        raise CuratorError("--k must be at least 1")
    timings: dict = {}
    t0 = time.perf_counter()
    pa = a if isinstance(a, Project) else Project(a, readonly=True)
    pb = b if isinstance(b, Project) else Project(b, readonly=True)
    embedding = check_compatible(pa, pb)
    sa, sb = load_side(pa, embedding), load_side(pb, embedding)
    timings["load"] = round(time.perf_counter() - t0, 3)

    t = time.perf_counter()
    xa, xb = sa.x, sb.x
    if len(xa) + len(xb) > FULL_DIM_LIMIT:
        xa, xb = (normalize(v) for v in joint_pca(xa, xb, SEARCH_DIMS))
    index_a = build_index(xa) if len(xa) else None
    kk = min(k, max(len(xa) - 1, 1), max(len(xb) - 1, 1))
    if len(xa) and len(xb):
        nbr_ba, sim_ba = knn_between(xb, xa, max(CANDIDATES, SUPPORT_NEIGHBOURS), normalized=True, index=index_a)
    else:
        nbr_ba = np.full((len(xb), SUPPORT_NEIGHBOURS), -1, np.int64)
        sim_ba = np.full(nbr_ba.shape, -np.inf, np.float32)
    radii_a = knn_radii(xa, kk) if len(xa) > kk else np.zeros(len(xa), np.float32)
    timings["neighbours"] = round(time.perf_counter() - t, 3)

    t = time.perf_counter()
    quality = prdc(xa, xb, kk, real_radii=radii_a if len(xa) > kk else None, real_index=index_a) \
        if len(xa) > kk and len(xb) > kk else {"precision": None, "recall": None, "density": None, "coverage": None, "k": kk}
    timings["prdc"] = round(time.perf_counter() - t, 3)

    t = time.perf_counter()
    if len(xa) and len(xb):
        pixels_a, pixels_b = pixel_features(sa.thumbs[sa.readable]), pixel_features(sb.thumbs[sb.readable])
        ta, tb = joint_pca(pixels_a, pixels_b, THUMB_DIMS)
        tnbr, tsim = knn_between(normalize(tb), normalize(ta), CANDIDATES, normalized=True)
    else:
        tnbr = np.full((len(xb), CANDIDATES), -1, np.int64)
        tsim = np.full(tnbr.shape, -np.inf, np.float32)
    timings["thumbnail_neighbours"] = round(time.perf_counter() - t, 3)
    t = time.perf_counter()
    spaces = [(nbr_ba, sim_ba), (tnbr, tsim)]
    if len(xa) and len(xb):
        fa, fb_ = shift_free_features(pixels_a), shift_free_features(pixels_b)
        # Fourier magnitudes of different pictures are close in absolute terms (most of the
        # energy sits in a few low frequencies), so only the relative test gates this space
        spaces.append((*knn_between(normalize(fb_), normalize(fa), CANDIDATES, normalized=True), SHIFT_FREE_GATE, 0.0))
    leaks = find_leaks(sa, sb, spaces)
    timings["leaks"] = round(time.perf_counter() - t, 3)

    t = time.perf_counter()
    fb = sb.frame.set_index("item_id")
    score = outside_support(nbr_ba, sim_ba, radii_a) if len(xa) > kk else np.full(len(xb), np.nan, np.float32)
    outside = pd.DataFrame({"item_id": sb.readable, "path": fb["path"].reindex(sb.readable).to_numpy(),
                            "label": fb["label"].reindex(sb.readable).to_numpy(),
                            "score": np.round(score.astype(np.float64), 4)})
    nearest = nbr_ba[:, 0] if nbr_ba.shape[1] else np.full(len(sb.readable), -1)
    outside["nearest_a"] = np.where(nearest >= 0, sa.readable[np.clip(nearest, 0, None)], -1) if len(sa.readable) else -1
    outside = outside.sort_values(["score", "item_id"], ascending=[False, True], na_position="last").reset_index(drop=True)
    classes, test = class_shift(sa.frame["label"], sb.frame["label"])
    ra, rb = sa.frame[sa.frame["readable"]], sb.frame[sb.frame["readable"]]
    moved = drift(ra, rb)
    timings["shift_support"] = round(time.perf_counter() - t, 3)
    timings["total"] = round(time.perf_counter() - t0, 3)
    return Comparison(sa, sb, leaks, quality, classes, test, moved, outside, timings)
