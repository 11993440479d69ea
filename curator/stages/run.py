"""All dataset-level stages in order, on arrays (no project I/O), so analyze and
benchmarks/scale.py run the same code."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..checks.base import FINDING_COLUMNS
from ..projector import FeatureSpaces
from ..stage_status import StageStatus
from .image_issues import image_findings
from .labels import class_indices, defect_mask, label_findings
from .maps import draw_maps, known_graphs
from .neighbours import find_neighbours, neighbour_table
from .outliers import outlier_findings


@dataclass
class DatasetInputs:
    """``metrics``: the project's metrics frame (one row per item, item_id = row); ``cnn``:
    (n, D) embeddings, ``thumbs``: (n, S, S, 3) thumbnails, ``user``: the user's own (n, D')
    vectors or None (all may be memory maps); ``classes``: the label names in class order."""

    metrics: pd.DataFrame
    cnn: np.ndarray
    thumbs: np.ndarray
    classes: list
    user: np.ndarray | None = None
    methods: list = field(default_factory=lambda: ["umap"])
    ignore_colour: bool = False  # near duplicates compared in luminance only
    scratch_dir: object = None  # a folder of the user's for the alignment's temporary files (large projects)


@dataclass
class DatasetResults:
    findings: pd.DataFrame
    neighbours: np.ndarray  # (n, 15) int32 item ids
    label_proba: np.ndarray  # (n, C) float32, NaN for unreadable items
    maps: dict  # method -> (n, 2) float32
    label_space: str
    map_choice: dict
    label_fit: dict = field(default_factory=dict)  # {"error", "margin" (the overall one)} of the label check


def run_stages(inputs: DatasetInputs, timings: dict, progress: bool = True) -> DatasetResults:
    status = StageStatus(timings, enabled=progress)
    metrics = inputs.metrics
    n = len(metrics)
    readable = metrics.loc[metrics["readable"] == 1, "item_id"].to_numpy()

    status.begin("neighbours")
    # the user's own vectors, when given, replace the CNN embedding for every check
    base = "user" if inputs.user is not None else "cnn"
    spaces = FeatureSpaces(readable, cnn=inputs.cnn, user=inputs.user, thumbs=inputs.thumbs)
    nbrs = find_neighbours(spaces, base)
    status.end()

    status.begin("duplicates")
    findings = image_findings(metrics, inputs.thumbs, readable, nbrs, colour_matters=not inputs.ignore_colour,
                              scratch_dir=inputs.scratch_dir)
    status.end()

    status.begin("labels")
    classes = inputs.classes
    labels = class_indices(metrics.set_index("item_id").loc[readable, "label"], classes)
    skip = defect_mask(findings, readable)  # a defect explains an odd embedding: not reported again
    label_space, label_nbrs, found, proba, label_fit = label_findings(spaces, base, labels, classes, readable, skip)
    findings.append(found)
    status.end()

    status.begin("outliers")
    findings.append(outlier_findings(readable, nbrs, skip, findings))
    status.end()

    status.begin("projection")
    known = known_graphs(label_space, label_nbrs, base, nbrs, len(readable))
    maps, map_choice = draw_maps(spaces, base, labels, inputs.methods, n, known, timings)
    status.end()

    full_proba = np.full((n, len(classes)), np.nan, dtype=np.float32)
    if len(classes) and len(proba):
        full_proba[readable] = proba
    present = [f for f in findings if len(f)]
    all_findings = pd.concat(present, ignore_index=True) if present else pd.DataFrame(columns=FINDING_COLUMNS)
    return DatasetResults(all_findings, neighbour_table(n, readable, nbrs.idx), full_proba, maps, label_space, map_choice,
                          label_fit)
