"""Exact and near duplicates, grouped, with one keeper per group.

Exact: identical decoded pixels (hash). Near: candidates from nearest neighbours in two
spaces (CNN embeddings, which catch re-encodings of photos, and brightness-normalised pixel
thumbnails, which separate digit-like images far better than CNN cosine), each candidate
then verified in pixel space: the mean absolute grey-level difference of the 32x32
thumbnails, minimised over shifts of up to one pixel, must be below ``max_pixel_diff``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..neighbors import knn, normalize, reduce_dims
from .base import Finding, empty_findings


class _UnionFind:
    def __init__(self, n: int):
        self.parent = np.arange(n)

    def find(self, a: int) -> int:
        root = a
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[a] != root:
            self.parent[a], a = root, self.parent[a]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def _groups_to_findings(issue, members_by_root, metrics, scores, group_offset):
    area = metrics.set_index("item_id")["area"].fillna(0)
    ids, gids, keeps, sc = [], [], [], []
    for gid, members in enumerate(sorted(members_by_root.values(), key=min), start=group_offset):
        members = sorted(members)
        keeper = min(members, key=lambda i: (-area.get(i, 0), i))
        for i in members:
            ids.append(i)
            gids.append(gid)
            keeps.append(i == keeper)
            sc.append(scores.get(i, 1.0))
    return Finding(issue, ids, sc, np.ones(len(ids), bool) if issue == "exact_duplicate" else np.zeros(len(ids), bool),
                   group_ids=gids, keep=keeps)


@dataclass
class ExactDuplicateCheck:
    """``exact_duplicate``: same decoded pixels (another file, name or format). Score 1, severe;
    every member is listed with its group_id, the keeper (largest, then first imported) has keep=true."""

    name = "exact_duplicate"

    def find(self, metrics: pd.DataFrame, group_offset: int = 1) -> pd.DataFrame:
        readable = metrics[(metrics["readable"] == 1) & metrics["pixel_hash"].notna()]
        groups = {}
        for h, ids in readable.groupby("pixel_hash")["item_id"]:
            if len(ids) > 1:
                groups[h] = list(ids)
        if not groups:
            return empty_findings()
        return _groups_to_findings(self.name, groups, metrics, {}, group_offset)


def shifted_pixel_diff(a: np.ndarray, b: np.ndarray, max_shift: int = 1) -> np.ndarray:
    """Mean |a - shift(b)| over the overlap, minimised over shifts up to ``max_shift`` pixels.

    a, b: (P, S, S) uint8 thumbnails of candidate pairs. Returns (P,) in [0, 1].
    """
    a = a.astype(np.float32) / 255.0
    b = b.astype(np.float32) / 255.0
    s = a.shape[1]
    best = np.full(a.shape[0], np.inf, dtype=np.float32)
    m = max_shift
    for dy in range(-m, m + 1):
        for dx in range(-m, m + 1):
            # compare the central (s - 2m)² window of a with b displaced by (dy, dx)
            aw = a[:, m : s - m, m : s - m]
            bw = b[:, m + dy : s - m + dy, m + dx : s - m + dx]
            best = np.minimum(best, np.abs(aw - bw).mean(axis=(1, 2)))
    return best


@dataclass
class NearDuplicateCheck:
    """``near_duplicate``: a different file showing the same picture up to noise, a small shift or
    re-compression. Candidates: the ``k`` nearest neighbours in CNN space and in thumbnail space;
    verified when the shift-tolerant pixel difference is below ``max_pixel_diff`` (in [0, 1];
    0.035 ≈ 9 grey levels). Score: 1 - pixel difference. Exact copies are left to
    ``exact_duplicate`` (only one representative of an exact group takes part)."""

    name = "near_duplicate"
    k: int = 8
    max_pixel_diff: float = 0.035
    max_shift: int = 1

    def thumbnail_pairs(self, thumbs, ids) -> np.ndarray:
        """Nearest-neighbour pairs (item ids) in brightness-normalised thumbnail space."""
        flat = np.asarray(thumbs[ids]).reshape(len(ids), -1).astype(np.float32)
        centred = flat - flat.mean(axis=1, keepdims=True)
        nbr, _ = knn(reduce_dims(normalize(centred), 64), min(self.k, len(ids) - 1))
        rows = np.repeat(np.arange(len(ids)), nbr.shape[1])
        cols = nbr.ravel()
        ok = cols >= 0
        return np.stack([ids[rows[ok]], ids[cols[ok]]], axis=1)

    def find(self, metrics, thumbs, extra_pairs=None, group_offset: int = 1) -> pd.DataFrame:
        """``extra_pairs``: (P, 2) item-id pairs from other neighbour searches (e.g. CNN space)."""
        readable = metrics[(metrics["readable"] == 1) & metrics["pixel_hash"].notna()].sort_values("item_id")
        # one representative per exact-duplicate group takes part
        rep_of_hash = readable.drop_duplicates("pixel_hash").set_index("pixel_hash")["item_id"]
        reps = rep_of_hash.to_numpy()
        if len(reps) < 2:
            return empty_findings()
        rep_of = np.full(int(metrics["item_id"].max()) + 1, -1, dtype=np.int64)
        rep_of[readable["item_id"].to_numpy()] = rep_of_hash.loc[readable["pixel_hash"]].to_numpy()
        pairs = [self.thumbnail_pairs(thumbs, reps)]
        if extra_pairs is not None and len(extra_pairs):
            pairs.append(rep_of[np.asarray(extra_pairs, dtype=np.int64)])
        pairs = np.sort(np.concatenate(pairs), axis=1)
        pairs = np.unique(pairs[(pairs[:, 0] >= 0) & (pairs[:, 0] != pairs[:, 1])], axis=0)
        if len(pairs) == 0:
            return empty_findings()
        a, b = pairs[:, 0], pairs[:, 1]
        diffs = np.empty(len(pairs), dtype=np.float32)
        for start in range(0, len(pairs), 4096):
            sl = slice(start, start + 4096)
            diffs[sl] = shifted_pixel_diff(np.asarray(thumbs[a[sl]]), np.asarray(thumbs[b[sl]]), self.max_shift)
        ok = diffs < self.max_pixel_diff
        if not ok.any():
            return empty_findings()
        uf = _UnionFind(len(rep_of))
        best: dict[int, float] = {}
        for i, j, d in zip(a[ok], b[ok], diffs[ok]):
            uf.union(int(i), int(j))
            for x in (int(i), int(j)):
                best[x] = min(best.get(x, 1.0), float(d))
        groups: dict[int, list[int]] = {}
        for i in best:
            groups.setdefault(uf.find(i), []).append(i)
        scores = {i: 1.0 - d for i, d in best.items()}
        return _groups_to_findings(self.name, groups, metrics, scores, group_offset)
