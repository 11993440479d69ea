"""Exact and near duplicates, grouped, with one keeper per group.

Exact: identical decoded pixels (hash). Near: candidates from nearest neighbours in two
spaces (CNN embeddings, which catch re-encodings of photos, and brightness-normalised pixel
thumbnails, which separate digit-like images far better than CNN cosine), each candidate
then aligned and compared in colour (:mod:`curator.checks.align`) and kept when it is close
both absolutely and relative to the item's other neighbours. Groups are the connected
components of the verified pairs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..imaging import BACKGROUND
from .align import pair_differences, rank_within_nodes
from .base import Finding, empty_findings


GROUND = BACKGROUND[0]  # the neutral grey that transparent pixels are composited on
MIN_PICTURE_CONTRAST = 0.05  # inside contrast below which a transparent picture keeps the grey ground
# Only pairs closer than this on the grey are compared again on their own ground: retoned copies
# differ by 0.06-0.08 there, and of the 57,441 candidate pairs of Wesnoth's 5,782 unit sprites the
# three quarters at 0.2 or more include 9 that the second comparison brings below 0.10 (1 below
# 0.06): the second comparison on them all nearly doubled the stage (3.2 -> 5.6-6.0 s).
RETONE_BELOW = 0.2


def transparent_pictures(metrics: pd.DataFrame) -> np.ndarray:
    """Rows that are transparent pictures with detail inside (opacity below 0.99, inside
    contrast at least MIN_PICTURE_CONTRAST): those :func:`on_own_ground` recomposes. A flat
    paint (a black letter, a symbolic icon) keeps the grey: on its own mean colour it would
    vanish. None without an opacity column (metrics from before it was measured)."""
    if "opacity" not in metrics:
        return np.zeros(len(metrics), dtype=bool)
    opacity = metrics["opacity"].fillna(1.0).to_numpy(dtype=float)
    contrast = metrics["contrast"].fillna(0.0).to_numpy(dtype=float) if "contrast" in metrics else np.zeros(len(metrics))
    return (opacity < 0.99) & (contrast >= MIN_PICTURE_CONTRAST)


def on_own_ground(thumbs: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Copies of the chosen thumbnails in which the pixels of the grey ground (exactly
    GROUND in every channel: fully transparent there) take the mean colour of the rest, the
    picture. A brightness or contrast change of a transparent picture leaves its transparent
    pixels alone, so on the grey ground the copy differs from its original by a step along
    the whole silhouette that no gain and offset removes; on its own mean colour the ground
    moves with the picture (mean' = gain x mean + offset)."""
    part = np.array(thumbs[rows])
    ground = (part == GROUND).all(axis=-1)  # (K, S, S)
    picture = ~ground
    count = picture.sum(axis=(1, 2))
    usable = ground.any(axis=(1, 2)) & (count > 0)
    means = (part * picture[..., None]).sum(axis=(1, 2)) / np.maximum(count, 1)[:, None]
    fill = np.broadcast_to(np.rint(means).astype(part.dtype)[:, None, None, :], part.shape)
    return np.where((ground & usable[:, None, None])[..., None], fill, part)


def retone_transparent(thumbs, pairs, sizes, pictures, diffs, peaks, **options) -> None:
    """In place: pairs of two transparent pictures (``pictures``, per row of ``thumbs``:
    :func:`transparent_pictures`) are also compared on each picture's own mean colour
    (:func:`on_own_ground`) and keep the smaller difference, with its peak. A brightness or
    contrast change of a transparent picture (Wesnoth sprites and Tux Paint stamps changed by
    x0.94-1.10 and -12..+8 grey levels) leaves its grey ground alone: difference 0.06-0.08,
    peak 0.25-0.49 on the grey, missed. The grey comparison stays, since on its own colour a
    picture loses the contrast of its silhouette, which makes noise and JPEG weigh more.
    Only pairs closer than RETONE_BELOW on the grey are compared again. ``options`` go to
    :func:`pair_differences`."""
    both = pictures[pairs[:, 0]] & pictures[pairs[:, 1]] & (diffs < RETONE_BELOW)
    if not both.any():
        return
    nodes, local = np.unique(pairs[both], return_inverse=True)
    d2, p2 = pair_differences(on_own_ground(thumbs, nodes), local.reshape(-1, 2), sizes=sizes[nodes],
                              with_peaks=True, **options)
    rows = np.flatnonzero(both)
    better = d2 < diffs[rows]
    diffs[rows[better]] = d2[better]
    peaks[rows[better]] = p2[better]


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


@dataclass
class NearDuplicateCheck:
    """``near_duplicate``: a different file showing the same picture up to noise, a shift or
    a crop, a resize, re-compression or a small brightness/contrast change.

    Candidates: nearest-neighbour pairs in CNN space and in thumbnail space. Each candidate is
    aligned and compared in colour by :func:`curator.checks.align.pair_differences` (the
    residual difference in units of the images' contrast). A pair is a near duplicate when
    that difference is below 0.06 AND below 0.7 x the difference of either member to its
    runner-up (its closest candidate other than its best match), or below 0.10 AND below
    0.3 x that runner-up difference (``tiers``):
    similar but distinct pictures (two handwritten "1"s, two crops of one sky) sit in crowds
    of about equally close neighbours, while a copy stands out from the crowd (cleanlab's
    Datalab likewise judges a pair against the typical nearest-neighbour distance).
    Each tier also limits the pair's peak local difference
    (:func:`curator.checks.align.peak_difference`, the residual averaged over a few pixels):
    two clean look-alikes (glyphs of one letter in similar fonts, handwritten strokes that
    coincide but for a serif) can differ on average as little as a copy with noise or JPEG
    artefacts (0.02-0.05), but all in one place, where a copy's residual is spread over the
    picture. Amid a crowd the peak must stay below 0.15, or below 2.5 x the crowd's
    difference where that is more (a copy whose mean difference is near the limit has a
    peak of up to about twice it, and a crowd far enough for that is no look-alike's);
    far from any crowd, below 0.3. (A cap on the mean difference by each image's own noise
    level was tried first: clean resized, shifted or cropped copies of 28 px digits differ by
    up to 0.047 with no noise at all, as much as clean look-alikes.)
    Two transparent pictures are also compared with their transparent pixels on each
    picture's own mean colour instead of the grey (:func:`retone_transparent`): a brightness
    or contrast change moves a picture but not the grey it is shown on.
    Score: 1 - difference. ``colour_matters=False`` (``curator analyze --ignore-colour``)
    compares luminance only, so a recoloured copy is a near duplicate too.
    Exact copies are left to ``exact_duplicate`` (one representative per exact group takes part)."""

    name = "near_duplicate"
    # (max_difference, relative, max_peak, relative_peak); a pair passing any tier is verified:
    # close in absolute terms and clearly closer than the crowd, or a little less close but far
    # from any crowd (noise on a low-contrast photo raises the difference, the crowd stays far);
    # its peak local difference below max_peak or relative_peak x the crowd's, the larger
    tiers: tuple = ((0.06, 0.7, 0.15, 2.5), (0.10, 0.3, 0.3, None))
    colour_matters: bool = True  # False: pictures that differ only in colour are copies too

    def find(self, metrics, thumbs, candidate_pairs, group_offset: int = 1, scratch_dir=None) -> pd.DataFrame:
        """``candidate_pairs``: (P, 2) item-id pairs from neighbour searches; ``scratch_dir``: a
        folder of the user's for temporary files of a large alignment (see
        :func:`curator.checks.align.pair_differences`)."""
        readable = metrics[(metrics["readable"] == 1) & metrics["pixel_hash"].notna()].sort_values("item_id")
        # one representative per exact-duplicate group takes part
        rep_of_hash = readable.drop_duplicates("pixel_hash").set_index("pixel_hash")["item_id"]
        if len(rep_of_hash) < 2 or candidate_pairs is None or len(candidate_pairs) == 0:
            return empty_findings()
        rep_of = np.full(int(metrics["item_id"].max()) + 1, -1, dtype=np.int64)
        rep_of[readable["item_id"].to_numpy()] = rep_of_hash.loc[readable["pixel_hash"]].to_numpy()
        pairs = np.sort(rep_of[np.asarray(candidate_pairs, dtype=np.int64)], axis=1)
        pairs = np.unique(pairs[(pairs[:, 0] >= 0) & (pairs[:, 0] != pairs[:, 1])], axis=0)
        if len(pairs) == 0:
            return empty_findings()
        involved, inverse = np.unique(pairs, return_inverse=True)
        inverse = inverse.reshape(pairs.shape)
        by_id = metrics.set_index("item_id")
        sizes = by_id[["width", "height"]].reindex(involved).fillna(32).to_numpy()
        shown = np.asarray(thumbs)[involved]
        diffs, peaks = pair_differences(shown, inverse, sizes=sizes,
                                        colour_matters=self.colour_matters, with_peaks=True, scratch_dir=scratch_dir)
        retone_transparent(shown, inverse, sizes, transparent_pictures(by_id.reindex(involved)), diffs, peaks,
                           colour_matters=self.colour_matters, scratch_dir=scratch_dir)
        runner_up = _second_smallest_per_node(inverse, diffs, len(involved))
        crowd = np.minimum(runner_up[inverse[:, 0]], runner_up[inverse[:, 1]])
        ok = passes_tiers(diffs, crowd, self.tiers, peaks)
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


def passes_tiers(diffs: np.ndarray, crowd: np.ndarray, tiers: tuple, peaks: np.ndarray | None = None) -> np.ndarray:
    """Which pairs a (max_difference, relative[, max_peak[, relative_peak]]) tier verifies:
    closer than max_difference and than relative x the crowd's difference, and (where the
    tier sets a max_peak and ``peaks`` are given) with a peak local difference below
    max_peak, or below relative_peak x the crowd's difference where that is more (see
    :class:`NearDuplicateCheck`); a NaN peak (pair not refined) is not held against it."""
    ok = np.zeros(len(diffs), dtype=bool)
    for max_difference, relative, *rest in tiers:
        tier = (diffs < max_difference) & (diffs < relative * crowd)
        max_peak, relative_peak = (list(rest) + [None, None])[:2]
        if max_peak is not None and peaks is not None:
            limit = max_peak if relative_peak is None else np.maximum(max_peak, relative_peak * crowd)
            tier &= ~(peaks >= limit)  # a NaN peak (not measured) passes
        ok |= tier
    return ok


def _second_smallest_per_node(pairs: np.ndarray, values: np.ndarray, n_nodes: int) -> np.ndarray:
    """Each node's second-smallest value over the pairs it takes part in: its distance to the
    nearest candidate other than its closest one (inf with fewer than two: no crowd known)."""
    row, node, rank = rank_within_nodes(pairs, values)
    out = np.full(n_nodes, np.inf, dtype=np.float32)
    second = rank == 1
    out[node[second]] = values[row[second]]
    return out


def cross_split_matches(thumbs: np.ndarray, sizes: np.ndarray, pairs: np.ndarray, reference_group: np.ndarray,
                        tiers: tuple = NearDuplicateCheck.tiers,
                        pictures: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The near-duplicate verification of :class:`NearDuplicateCheck`, between two splits.

    ``pairs`` (P, 2): (query, reference) rows indexing ``thumbs`` and ``sizes`` (native width,
    height), every query a
    candidate copy of its reference (a test image and a training image). ``reference_group``
    (P,): which picture the reference shows (its duplicate group inside its own split, else its
    own id), so the reference split's own copies do not form a crowd. Each pair is aligned and
    compared (:func:`pair_differences`); the query's crowd is its difference to the nearest
    *other* reference picture, and a pair is verified by the same tiers (peak limit included)
    as within a project.
    Only each query's two closest candidates (after the whole-pixel search) are refined.
    ``pictures`` (per row of ``thumbs``): transparent pictures, compared on their own ground
    too (:func:`retone_transparent`). Returns (difference per pair, verified per pair)."""
    pairs = np.asarray(pairs, dtype=np.int64)
    if len(pairs) == 0:
        return np.zeros(0, np.float32), np.zeros(0, bool)
    diffs, peaks = pair_differences(thumbs, pairs, queries_only=True, sizes=sizes, with_peaks=True)
    if pictures is not None:
        retone_transparent(thumbs, pairs, sizes, np.asarray(pictures, dtype=bool), diffs, peaks, queries_only=True)
    # best difference per (query, reference picture), then each query's runner-up picture
    keys = pd.DataFrame({"q": pairs[:, 0], "g": np.asarray(reference_group), "d": diffs})
    per_picture = keys.groupby(["q", "g"], sort=False)["d"].min().reset_index().sort_values(["q", "d"])
    per_picture["rank"] = per_picture.groupby("q").cumcount()
    runner_up = per_picture[per_picture["rank"] == 1].set_index("q")["d"]
    crowd = runner_up.reindex(pairs[:, 0]).fillna(np.inf).to_numpy(dtype=np.float32)
    return diffs, passes_tiers(diffs, crowd, tiers, peaks)
