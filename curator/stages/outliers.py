"""Stage 4: outliers, from the full-dimension neighbour similarities of stage 1."""

from __future__ import annotations

from ..checks.labels import OutlierCheck
from .neighbours import Neighbours


def outlier_findings(readable, nbrs: Neighbours):
    return OutlierCheck().find(readable, nbrs.sim)
