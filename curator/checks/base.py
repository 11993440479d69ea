"""Shared shape of a check's result."""

from __future__ import annotations

import numpy as np
import pandas as pd

FINDING_COLUMNS = ["item_id", "issue", "score", "severity", "suggested_label", "group_id", "keep"]


def Finding(issue: str, item_ids, scores, severe, suggested=None, group_ids=None, keep=None) -> pd.DataFrame:
    """A frame of issue rows ready for the store (one row per flagged item)."""
    n = len(item_ids)
    return pd.DataFrame(
        {
            "item_id": np.asarray(item_ids, dtype=np.int64),
            "issue": issue,
            "score": np.round(np.asarray(scores, dtype=np.float64), 6),
            "severity": np.where(np.asarray(severe, dtype=bool), "severe", "moderate") if n else [],
            "suggested_label": suggested if suggested is not None else [None] * n,
            "group_id": group_ids if group_ids is not None else [None] * n,
            "keep": keep if keep is not None else [None] * n,
        },
        columns=FINDING_COLUMNS,
    )


def empty_findings() -> pd.DataFrame:
    return pd.DataFrame(columns=FINDING_COLUMNS)


def flagged_items(findings: list, issues) -> set:
    """Item ids that any of ``findings`` (one frame per check) flags with one of ``issues``."""
    return set().union(*(set(f["item_id"]) for f in findings if len(f) and f["issue"].iloc[0] in issues))
