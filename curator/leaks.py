"""Leakage between two splits: test (B) images that are exact or near copies of training (A)
images.

Exact copies are found by the decoded-pixel hash both analyses stored. Near copies use the
within-project verification (:func:`curator.checks.duplicates.cross_split_matches`): for every
B image its few nearest A images in CNN space and in thumbnail space are the candidates (a
faiss search, never all pairs; only where the nearest stands out, see GATE_RATIO), each
candidate is aligned and compared, and a pair is kept
when it is close in absolute terms and clearly closer than the B image's next-closest A
picture. A's own duplicate groups (from its analysis) count as one picture, so a training set
holding two copies of a picture does not hide a test copy of it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .checks.duplicates import cross_split_matches, transparent_pictures

LEAK_COLUMNS = ("path_a", "path_b", "label_a", "label_b", "kind", "score", "item_a", "item_b")
CANDIDATES = 3  # nearest A images per B image and feature space that are aligned and compared
# A B image is verified in a feature space only when its nearest A image there stands out
# from the next one (cosine distance below GATE_RATIO x the runner-up's) or is very close
# (below GATE_DISTANCE): a copy stands out from the crowd of merely similar pictures. On
# digits every planted copy but the 8-px shifts stood out in thumbnail space (ratio <= 0.12)
# against 1 in 4 untouched test images (benchmarks/compare.py); the alignment, the costly
# part, then runs for a fraction of the B images, a few pairs each.
GATE_RATIO = 0.7
GATE_DISTANCE = 0.02


def picture_groups(n: int, issues: pd.DataFrame) -> np.ndarray:
    """(n,) an id per item saying which picture it shows: items joined by the project's own
    exact_duplicate / near_duplicate groups share one id, every other item has its own."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    dup = issues[issues["issue"].isin(["exact_duplicate", "near_duplicate"]) & issues["group_id"].notna()]
    if dup.empty:
        return np.arange(n, dtype=np.int64)
    gids = pd.factorize(dup["issue"].astype(str) + ":" + dup["group_id"].astype(str))[0]
    items = dup["item_id"].to_numpy(dtype=np.int64)
    # bipartite item -- group graph; its components are the pictures
    rows = np.concatenate([items, n + gids])
    cols = np.concatenate([n + gids, items])
    size = n + int(gids.max()) + 1
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(size, size))
    _, comp = connected_components(graph, directed=False)
    return comp[:n].astype(np.int64)


def exact_leaks(a, b) -> pd.DataFrame:
    """Every (B item, A item) pair with identical decoded pixels."""
    fa = a.frame.loc[a.frame["readable"] & a.frame["pixel_hash"].notna(), ["item_id", "pixel_hash"]]
    fb = b.frame.loc[b.frame["readable"] & b.frame["pixel_hash"].notna(), ["item_id", "pixel_hash"]]
    m = fb.merge(fa, on="pixel_hash", suffixes=("_b", "_a"))
    return pd.DataFrame({"item_a": m["item_id_a"].to_numpy(np.int64), "item_b": m["item_id_b"].to_numpy(np.int64),
                         "kind": "exact_duplicate", "score": 1.0})


def stands_out(sims: np.ndarray, ratio: float = GATE_RATIO, distance: float = GATE_DISTANCE) -> np.ndarray:
    """Per row of nearest-first similarities: the nearest is very close, or clearly closer
    than the runner-up."""
    d = 1.0 - np.where(np.isfinite(sims), sims, -1.0)
    first, second = d[:, 0], d[:, 1] if d.shape[1] > 1 else np.full(len(d), 2.0)
    return (first <= distance) | (first <= ratio * second)


def near_leaks(a, b, spaces: list[tuple], skip_b: np.ndarray) -> pd.DataFrame:
    """Verified near copies. ``spaces``: per feature space, (positions into ``a.readable``,
    similarities[, gate ratio, gate distance]) of every readable B item's nearest A items,
    nearest first; ``skip_b``: B item ids already leaked exactly."""
    queries, refs = [], []
    for idx, sims, *gate in spaces:
        take = stands_out(sims, *gate) & ~np.isin(b.readable, skip_b)
        cols = idx[take, :CANDIDATES]
        queries.append(np.repeat(b.readable[take], cols.shape[1]))
        refs.append(cols.ravel())
    q, r = np.concatenate(queries), np.concatenate(refs)
    keep = r >= 0
    pairs = np.unique(np.stack([q[keep], a.readable[r[keep]]], axis=1), axis=0) if keep.any() else np.zeros((0, 2), np.int64)
    if len(pairs) == 0:
        return pd.DataFrame(columns=["item_a", "item_b", "kind", "score"])
    ib, inv_b = np.unique(pairs[:, 0], return_inverse=True)
    ia, inv_a = np.unique(pairs[:, 1], return_inverse=True)
    thumbs = np.concatenate([np.asarray(b.thumbs[ib]), np.asarray(a.thumbs[ia])])
    sizes = np.concatenate([b.sizes[ib], a.sizes[ia]])
    local = np.stack([inv_b.ravel(), len(ib) + inv_a.ravel()], axis=1)
    frames = pd.concat([b.frame.set_index("item_id").reindex(ib), a.frame.set_index("item_id").reindex(ia)])
    diffs, ok = cross_split_matches(thumbs, sizes, local, a.pictures[pairs[:, 1]], pictures=transparent_pictures(frames))
    found = pairs[ok]
    return pd.DataFrame({"item_a": found[:, 1], "item_b": found[:, 0], "kind": "near_duplicate",
                         "score": np.round(1.0 - diffs[ok].astype(np.float64), 4)})


def find_leaks(a, b, spaces: list[tuple]) -> pd.DataFrame:
    """One row per leaked (B item, A item) pair (a near copy of an A image is also listed
    against that image's exact copies in A): pairs whose labels differ first, then exact
    before near copies, then by score."""
    exact = exact_leaks(a, b)
    near = near_leaks(a, b, spaces, exact["item_b"].unique())
    if len(near):
        hashes = a.frame.set_index("item_id")["pixel_hash"]
        same = a.frame.loc[a.frame["pixel_hash"].notna(), ["item_id", "pixel_hash"]]
        twins = near.assign(pixel_hash=hashes.reindex(near["item_a"]).to_numpy()).merge(same, on="pixel_hash")
        twins = twins.loc[twins["item_id"] != twins["item_a"]].assign(item_a=lambda t: t["item_id"])
        near = pd.concat([near, twins[near.columns]], ignore_index=True).drop_duplicates(["item_a", "item_b"])
    leaks = pd.concat([f for f in (exact, near) if len(f)], ignore_index=True) if len(exact) or len(near) else \
        pd.DataFrame(columns=["item_a", "item_b", "kind", "score"])
    fa = a.frame.set_index("item_id")
    fb = b.frame.set_index("item_id")
    leaks["item_a"] = leaks["item_a"].astype(np.int64)
    leaks["item_b"] = leaks["item_b"].astype(np.int64)
    leaks["path_a"] = fa["path"].reindex(leaks["item_a"]).to_numpy()
    leaks["path_b"] = fb["path"].reindex(leaks["item_b"]).to_numpy()
    leaks["label_a"] = fa["label"].reindex(leaks["item_a"]).to_numpy()
    leaks["label_b"] = fb["label"].reindex(leaks["item_b"]).to_numpy()
    leaks["score"] = leaks["score"].astype(float)
    leaks = leaks.assign(_order=leaks["kind"].map({"exact_duplicate": 0, "near_duplicate": 1}), _same=~labels_differ(leaks))
    leaks = leaks.sort_values(["_same", "_order", "score", "item_b", "item_a"], ascending=[True, True, False, True, True])
    return leaks.reindex(columns=list(LEAK_COLUMNS)).reset_index(drop=True)


def labels_differ(leaks: pd.DataFrame) -> pd.Series:
    """True where a leaked pair's labels differ (the worst case: one of them is mislabelled)."""
    return leaks["label_a"].astype(object).fillna("") != leaks["label_b"].astype(object).fillna("")
