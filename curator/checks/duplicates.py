"""Exact and near duplicates, grouped, with one keeper per group.

Exact: identical decoded pixels (hash). Near: candidates from nearest neighbours in two
spaces (CNN embeddings, which catch re-encodings of photos, and brightness-normalised pixel
thumbnails, which separate digit-like images far better than CNN cosine), each candidate
then verified in pixel space by :func:`pixel_difference` (smoothed 32x32 thumbnails, best
whole- or sub-pixel shift, relative to the pair's contrast). Groups are the connected
components of the verified pairs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .base import Finding, empty_findings


def _groups_to_findings(issue, groups, metrics, scores, group_offset, severe: bool):
    """One row per group member; group ids from ``group_offset``; keeper = largest, then first."""
    area = metrics.set_index("item_id")["area"].fillna(0)
    ids, gids, keeps, sc = [], [], [], []
    for gid, members in enumerate(sorted(groups, key=min), start=group_offset):
        members = sorted(members)
        keeper = min(members, key=lambda i: (-area.get(i, 0), i))
        for i in members:
            ids.append(i)
            gids.append(gid)
            keeps.append(i == keeper)
            sc.append(scores.get(i, 1.0))
    return Finding(issue, ids, sc, np.full(len(ids), severe), group_ids=gids, keep=keeps)


@dataclass
class ExactDuplicateCheck:
    """``exact_duplicate``: same decoded pixels (another file, name or format). Score 1, severe;
    every member is listed with its group_id, the keeper (largest, then first imported) has keep=true."""

    name = "exact_duplicate"

    def find(self, metrics: pd.DataFrame, group_offset: int = 1) -> pd.DataFrame:
        readable = metrics[(metrics["readable"] == 1) & metrics["pixel_hash"].notna()]
        groups = [list(ids) for _, ids in readable.groupby("pixel_hash")["item_id"] if len(ids) > 1]
        if not groups:
            return empty_findings()
        return _groups_to_findings(self.name, groups, metrics, {}, group_offset, severe=True)


def smooth_thumbnails(thumbs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """3x3 box-smoothed float thumbnails in [0, 1] and each one's contrast (std, floored)."""
    from scipy.ndimage import uniform_filter

    x = np.asarray(thumbs, dtype=np.float32) / 255.0
    spread = np.maximum(x.std(axis=(1, 2)), 0.02)
    return uniform_filter(x, size=(1, 3, 3), mode="nearest"), spread


REFINE_BELOW = 0.15  # pairs closer than this after whole-pixel shifts also try sub-pixel shifts


def _windows(sb: np.ndarray, m: int) -> dict:
    """The central window of ``sb`` displaced by every whole-pixel shift up to ``m``."""
    s = sb.shape[1]
    return {(dy, dx): sb[:, m + dy : s - m + dy, m + dx : s - m + dx]
            for dy in range(-m, m + 1) for dx in range(-m, m + 1)}


def shifted_difference(sa, sb, spread_a, spread_b, max_shift: int = 1, substeps: int = 3) -> np.ndarray:
    """Mean |sa - shift(sb)| over the central window, minimised over shifts, / mean contrast.

    Whole-pixel shifts first; pairs that come close (< REFINE_BELOW) are refined with
    bilinear sub-pixel shifts in steps of 1/``substeps`` pixel, since a one-pixel shift of a
    mid-sized image is a fraction of a thumbnail pixel.
    """
    s, m = sa.shape[1], max_shift
    aw = sa[:, m : s - m, m : s - m]
    wins = _windows(sb, m)
    best = np.full(sa.shape[0], np.inf, dtype=np.float32)
    for w in wins.values():
        best = np.minimum(best, np.abs(aw - w).mean(axis=(1, 2)))
    scale = 0.5 * (spread_a + spread_b)
    close = np.flatnonzero(best / scale < REFINE_BELOW)
    if len(close) and substeps > 1:
        a_c = aw[close]
        w_c = {k: v[close] for k, v in wins.items()}
        fractions = [i / substeps for i in range(-m * substeps, m * substeps + 1)]
        for fy in fractions:
            y0 = min(int(np.floor(fy)), m - 1)
            ty = fy - y0
            for fx in fractions:
                x0 = min(int(np.floor(fx)), m - 1)
                tx = fx - x0
                if ty == 0 and tx == 0:
                    continue  # whole-pixel shifts were done above
                shifted = ((1 - ty) * (1 - tx) * w_c[(y0, x0)] + (1 - ty) * tx * w_c[(y0, x0 + 1)]
                           + ty * (1 - tx) * w_c[(y0 + 1, x0)] + ty * tx * w_c[(y0 + 1, x0 + 1)])
                best[close] = np.minimum(best[close], np.abs(a_c - shifted).mean(axis=(1, 2)))
    return best / scale


def pixel_difference(a: np.ndarray, b: np.ndarray, max_shift: int = 1) -> np.ndarray:
    """Shift-tolerant, contrast-relative difference of thumbnail pairs.

    Both thumbnails are smoothed with a 3x3 box filter (pixel noise and JPEG ringing average
    out, while a different drawing or object still differs), then the mean absolute
    difference over the central window is minimised over shifts of up to ``max_shift``
    pixels and divided by the pair's mean contrast (std), so that two different but uniformly
    dark images do not look alike. a, b: (P, S, S) uint8. Returns (P,) float32.
    """
    sa, spread_a = smooth_thumbnails(a)
    sb, spread_b = smooth_thumbnails(b)
    return shifted_difference(sa, sb, spread_a, spread_b, max_shift)


@dataclass
class NearDuplicateCheck:
    """``near_duplicate``: a different file showing the same picture up to noise, a small shift or
    re-compression. Candidates: nearest-neighbour pairs in CNN space and in thumbnail space;
    verified when :func:`pixel_difference` is below ``max_pixel_diff`` (a fraction of the
    images' contrast: on digits, planted copies stay below 0.025 and distinct drawings above
    0.047; on 96 px photos a one-pixel shift stays below 0.033). Score: 1 - pixel difference.
    Exact copies are left to ``exact_duplicate`` (one representative per exact group takes part)."""

    name = "near_duplicate"
    max_pixel_diff: float = 0.04
    max_shift: int = 1

    def find(self, metrics, thumbs, candidate_pairs, group_offset: int = 1) -> pd.DataFrame:
        """``candidate_pairs``: (P, 2) item-id pairs from neighbour searches."""
        readable = metrics[(metrics["readable"] == 1) & metrics["pixel_hash"].notna()].sort_values("item_id")
        # one representative per exact-duplicate group takes part
        rep_of_hash = readable.drop_duplicates("pixel_hash").set_index("pixel_hash")["item_id"]
        reps = rep_of_hash.to_numpy()
        if len(reps) < 2:
            return empty_findings()
        rep_of = np.full(int(metrics["item_id"].max()) + 1, -1, dtype=np.int64)
        rep_of[readable["item_id"].to_numpy()] = rep_of_hash.loc[readable["pixel_hash"]].to_numpy()
        if candidate_pairs is None or len(candidate_pairs) == 0:
            return empty_findings()
        pairs = np.sort(rep_of[np.asarray(candidate_pairs, dtype=np.int64)], axis=1)
        pairs = np.unique(pairs[(pairs[:, 0] >= 0) & (pairs[:, 0] != pairs[:, 1])], axis=0)
        if len(pairs) == 0:
            return empty_findings()
        # smooth each involved thumbnail once, not once per pair
        involved, inverse = np.unique(pairs, return_inverse=True)
        inverse = inverse.reshape(pairs.shape)
        smooth, spread = smooth_thumbnails(np.asarray(thumbs[involved]))
        diffs = np.empty(len(pairs), dtype=np.float32)
        for start in range(0, len(pairs), 4096):
            ia, ib = inverse[start : start + 4096, 0], inverse[start : start + 4096, 1]
            diffs[start : start + 4096] = shifted_difference(smooth[ia], smooth[ib], spread[ia], spread[ib], self.max_shift)
        ok = diffs < self.max_pixel_diff
        if not ok.any():
            return empty_findings()
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components

        n_nodes = len(involved)
        graph = coo_matrix((np.ones(int(ok.sum())), (inverse[ok, 0], inverse[ok, 1])), shape=(n_nodes, n_nodes))
        _, component = connected_components(graph, directed=False)
        # closest verified match of each member (its score); members are nodes with any match
        best = np.full(n_nodes, np.inf, dtype=np.float32)
        np.minimum.at(best, inverse[ok, 0], diffs[ok])
        np.minimum.at(best, inverse[ok, 1], diffs[ok])
        matched = np.flatnonzero(np.isfinite(best))
        groups: dict[int, list[int]] = {}
        for node in matched:
            groups.setdefault(int(component[node]), []).append(int(involved[node]))
        scores = {int(involved[node]): 1.0 - float(best[node]) for node in matched}
        return _groups_to_findings(self.name, list(groups.values()), metrics, scores, group_offset, severe=False)
