"""Stage 4: outliers, from the full-dimension neighbour similarities of stage 1; items with an
image-level defect are scored but not reported (the defect is the finding), and a duplicate is
as odd as the least odd copy of its group."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from ..checks.labels import OutlierCheck
from .neighbours import Neighbours

COPY_ISSUES = ("exact_duplicate", "near_duplicate")


def copy_groups(findings: list, readable: np.ndarray) -> np.ndarray:
    """Each readable item's duplicate group number (-1: in none), from the duplicate findings;
    an exact and a near-duplicate group that share an item are one group."""
    src, dst = [], []
    for frame in findings:
        if not len(frame) or frame["issue"].iloc[0] not in COPY_ISSUES:
            continue
        rows = np.searchsorted(readable, frame["item_id"].to_numpy())
        ok = (rows < len(readable)) & (readable[np.clip(rows, 0, len(readable) - 1)] == frame["item_id"].to_numpy())
        rows, gid = rows[ok], frame["group_id"].to_numpy()[ok]
        anchor = pd.Series(rows).groupby(gid).transform("first").to_numpy()
        src.append(anchor)
        dst.append(rows)
    group = np.full(len(readable), -1, dtype=np.int64)
    if not src:
        return group
    src, dst = np.concatenate(src), np.concatenate(dst)
    graph = coo_matrix((np.ones(len(src)), (src, dst)), shape=(len(readable), len(readable)))
    _, component = connected_components(graph, directed=False)
    member = np.zeros(len(readable), dtype=bool)
    member[src] = member[dst] = True
    group[member] = component[member]
    return group


def outlier_findings(readable, nbrs: Neighbours, skip=None, findings=None):
    groups = copy_groups(findings, readable) if findings is not None else None
    return OutlierCheck().find(readable, nbrs.sim, skip, groups, pixel_sim=nbrs.pixel_sim)
