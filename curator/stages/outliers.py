"""Stage 4: outliers, from the full-dimension neighbour similarities of stage 1; items with an
image-level defect are scored but not reported (the defect is the finding)."""

from __future__ import annotations

from ..checks.labels import OutlierCheck
from .neighbours import Neighbours


def outlier_findings(readable, nbrs: Neighbours, skip=None):
    return OutlierCheck().find(readable, nbrs.sim, skip)
