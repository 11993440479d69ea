"""Did the class balance or the image statistics move between two splits?

Class shift: the label counts of both splits as a 2 x C contingency table, tested with
Pearson's chi-square (scipy.stats.chi2_contingency). Drift: per image metric, the two-sample
Kolmogorov-Smirnov test (scipy.stats.ks_2samp).

The ``shifted`` rule: p < 0.01 AND KS statistic >= 0.1. With thousands of images every tiny
difference is "significant", so significance alone flags everything; the KS statistic is the
largest gap between the two cumulative distributions, an effect size: 0.1 means that for
some value of the metric, the share of images below it differs by ten percentage points
between the splits (a third of the images brightened moves brightness by about 0.3).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

DRIFT_METRICS = ("brightness", "contrast", "sharpness", "entropy", "area", "aspect_ratio", "file_size")
ALPHA = 0.01
MIN_EFFECT = 0.1


def class_shift(labels_a: pd.Series, labels_b: pd.Series) -> tuple[list[dict], dict]:
    """Per-label counts and shares in A and B (unlabelled items left out), and the
    chi-square test {statistic, p_value, dof, only_in_a, only_in_b} (statistic None with fewer
    than two labels)."""
    ca = labels_a.dropna().astype(str).value_counts()
    cb = labels_b.dropna().astype(str).value_counts()
    labels = sorted(set(ca.index) | set(cb.index))
    na, nb = int(ca.sum()), int(cb.sum())
    rows = [{"label": lab, "count_a": int(ca.get(lab, 0)), "count_b": int(cb.get(lab, 0)),
             "share_a": round(ca.get(lab, 0) / na, 4) if na else 0.0,
             "share_b": round(cb.get(lab, 0) / nb, 4) if nb else 0.0} for lab in labels]
    test = {"statistic": None, "p_value": None, "dof": 0,
            "only_in_a": [lab for lab in labels if ca.get(lab, 0) and not cb.get(lab, 0)],
            "only_in_b": [lab for lab in labels if cb.get(lab, 0) and not ca.get(lab, 0)]}
    if len(labels) >= 2 and na and nb:
        from scipy.stats import chi2_contingency

        table = np.array([[r["count_a"] for r in rows], [r["count_b"] for r in rows]])
        res = chi2_contingency(table)
        test.update(statistic=round(float(res.statistic), 4), p_value=float(res.pvalue), dof=int(res.dof))
    return rows, test


def drift(metrics_a: pd.DataFrame, metrics_b: pd.DataFrame, metrics=DRIFT_METRICS) -> list[dict]:
    """Per metric: the KS statistic and p-value of A's values against B's, the medians, and
    ``shifted`` (p < ALPHA and statistic >= MIN_EFFECT)."""
    from scipy.stats import ks_2samp

    out = []
    for name in metrics:
        if name not in metrics_a or name not in metrics_b:
            continue
        va = pd.to_numeric(metrics_a[name], errors="coerce").to_numpy(dtype=np.float64)
        vb = pd.to_numeric(metrics_b[name], errors="coerce").to_numpy(dtype=np.float64)
        va, vb = va[np.isfinite(va)], vb[np.isfinite(vb)]
        if len(va) < 2 or len(vb) < 2:
            continue
        res = ks_2samp(va, vb)
        stat, p = float(res.statistic), float(res.pvalue)
        out.append({"metric": name, "statistic": round(stat, 4), "p_value": p,
                    "shifted": bool(p < ALPHA and stat >= MIN_EFFECT),
                    "median_a": float(np.median(va)), "median_b": float(np.median(vb))})
    return out
