"""Data and figures of the explorer's Compare page (``curator visualize A --compare B``), free of
Streamlit so they can be tested directly.

The comparison is computed once per pair of analyses (keyed by both projects'
:func:`~curator.explorer.data.version_key`) and kept in this server process; the joint 2D map
of both splits is fitted only when the page asks for it (UMAP costs seconds to tens of seconds
on large splits), then kept too.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import pandas as pd

from ..compare import Comparison, compare
from ..neighbors import normalize, reduce_dims
from ..projector import MapSpec, compute_map
from . import data as D
from .figures import PALETTE, plot_text

COMPARE_ENV = "CURATOR_COMPARE"
SPLIT_COLOURS = {"A": "#3b5bdb", "B": "#f08c00"}
_CACHE: dict = {}
_LOCK = threading.Lock()


def compare_root() -> Path | None:
    """The second project of ``curator visualize A --compare B`` ($CURATOR_COMPARE), or None."""
    root = os.environ.get(COMPARE_ENV)
    return Path(root).expanduser().absolute() if root else None


def _key(a, b, *extra) -> tuple:
    return (D.version_key(a), D.version_key(b), *extra)


def comparison(a: str | os.PathLike, b: str | os.PathLike, k: int = 5) -> Comparison:
    """The comparison of B against A for their current analyses (computed once)."""
    key = _key(a, b, "compare", k)
    with _LOCK:
        if key not in _CACHE:
            _CACHE[key] = compare(a, b, k=k)
        return _CACHE[key]


def joint_map(c: Comparison, method: str = "umap") -> pd.DataFrame:
    """One 2D map fitted on both splits' embeddings: item_id, split ("A"/"B"), label, x, y."""
    key = _key(c.a.root, c.b.root, "map", method)
    with _LOCK:
        if key in _CACHE:
            return _CACHE[key]
    x = np.concatenate([c.a.x, c.b.x])
    split = np.array(["A"] * len(c.a.x) + ["B"] * len(c.b.x))
    coords = np.zeros((len(x), 2), np.float32)
    if len(x):
        # the projector's maps (UMAP on faiss neighbours, or PCA), PCA for a handful of points
        spec = MapSpec(method=method if len(x) >= 20 else "pca", space="cnn")
        coords = compute_map(spec, normalize(reduce_dims(x, 50)))
    fa, fb = c.a.frame.set_index("item_id"), c.b.frame.set_index("item_id")
    labels = np.concatenate([fa["label"].reindex(c.a.readable).to_numpy(object), fb["label"].reindex(c.b.readable).to_numpy(object)])
    out = pd.DataFrame({"item_id": np.concatenate([c.a.readable, c.b.readable]), "split": split,
                        "label": pd.Series(labels, dtype=object).fillna(D.UNLABELLED).astype(str).to_numpy(),
                        "x": coords[:, 0], "y": coords[:, 1]})
    with _LOCK:
        _CACHE[key] = out
    return out


def map_is_ready(c: Comparison, method: str) -> bool:
    return _key(c.a.root, c.b.root, "map", method) in _CACHE


def location(side, item_id: int) -> str:
    loc = str(side.frame.set_index("item_id").at[int(item_id), "location"])
    return loc if os.path.isabs(loc) else str(Path(side.root) / loc)


def thumbnail(side, item_id: int, px: int = D.THUMB_PX) -> tuple[bytes, str]:
    path = location(side, item_id)
    data = D._thumbnail_cached(path, D.file_stamp(path), px)
    return data if data is not None else (D.placeholder_png("missing", px), "image/png")


# ---------------------------------------------------------------------------------- figures
def map_figure(points: pd.DataFrame, colour_by: str = "split", names: dict | None = None):
    """Scatter of the joint map, one trace per split (or per class)."""
    import plotly.graph_objects as go

    names = names or {"A": "A", "B": "B"}
    size = 6 if len(points) < 2_000 else 4 if len(points) < 20_000 else 3
    fig = go.Figure()
    if colour_by == "split":
        groups = [(s, names.get(s, s), SPLIT_COLOURS[s]) for s in ("A", "B")]
        key = "split"
    else:
        values = sorted(points["label"].unique())
        groups = [(v, v, PALETTE[i % len(PALETTE)]) for i, v in enumerate(values)]
        key = "label"
    for value, name, colour in groups:
        m = points[key] == value
        if not m.any():
            continue
        sub = points[m]
        fig.add_trace(go.Scattergl(
            x=sub["x"], y=sub["y"], mode="markers", name=f"{plot_text(name)} ({int(m.sum()):,})",
            marker=dict(size=size, color=colour, opacity=0.6),
            customdata=np.stack([sub["item_id"], sub["split"].map(names).map(plot_text), sub["label"].map(plot_text)], axis=1),
            hovertemplate="#%{customdata[0]} · %{customdata[1]} · %{customdata[2]}<extra></extra>"))
    fig.update_layout(height=520, margin=dict(l=8, r=8, t=8, b=8), legend=dict(orientation="h", y=1.02, yanchor="bottom"),
                      xaxis=dict(visible=False), yaxis=dict(visible=False), dragmode="pan")
    return fig


def drift_histogram(c: Comparison, metric: str, row: dict):
    """Overlaid histograms (share of each split's images) of one metric, KS figures in the title."""
    import plotly.graph_objects as go

    va = pd.to_numeric(c.a.frame.loc[c.a.frame["readable"], metric], errors="coerce").dropna().to_numpy(float)
    vb = pd.to_numeric(c.b.frame.loc[c.b.frame["readable"], metric], errors="coerce").dropna().to_numpy(float)
    both = np.concatenate([va, vb])
    lo, hi = (float(both.min()), float(both.max())) if len(both) else (0.0, 1.0)
    edges = np.linspace(lo, hi if hi > lo else lo + 1, 41)
    fig = go.Figure()
    for values, name, colour in ((va, c.a.name, SPLIT_COLOURS["A"]), (vb, c.b.name, SPLIT_COLOURS["B"])):
        counts, _ = np.histogram(values, bins=edges)
        share = counts / max(len(values), 1)
        fig.add_trace(go.Bar(x=(edges[:-1] + edges[1:]) / 2, y=share, width=float(edges[1] - edges[0]),
                             name=plot_text(name), marker=dict(color=colour), opacity=0.55,
                             hovertemplate="%{x:.4g}: %{y:.1%}<extra>" + plot_text(name) + "</extra>"))
    flag = " · SHIFTED" if row["shifted"] else ""
    title = f"{D.METRICS[metric].label if metric in D.METRICS else metric}: KS {row['statistic']:.3f}, p = {row['p_value']:.2g}{flag}"
    fig.update_layout(barmode="overlay", bargap=0, height=260, margin=dict(l=8, r=8, t=36, b=8),
                      title=dict(text=title, font=dict(size=13, color="#c92a2a" if row["shifted"] else None)),
                      yaxis=dict(title="share of images", tickformat=".0%"), showlegend=True,
                      legend=dict(orientation="h", y=1.0, x=1, xanchor="right", yanchor="bottom", font=dict(size=11)))
    return fig


def class_table(c: Comparison) -> pd.DataFrame:
    t = pd.DataFrame(c.class_shift, columns=["label", "count_a", "count_b", "share_a", "share_b"])
    t["change"] = t["share_b"] - t["share_a"]
    return t.sort_values("change", key=lambda s: -s.abs()).reset_index(drop=True)


def class_figure(c: Comparison):
    import plotly.graph_objects as go

    t = pd.DataFrame(c.class_shift, columns=["label", "count_a", "count_b", "share_a", "share_b"])
    fig = go.Figure()
    for col, name, colour in (("share_a", c.a.name, SPLIT_COLOURS["A"]), ("share_b", c.b.name, SPLIT_COLOURS["B"])):
        fig.add_trace(go.Bar(x=[plot_text(v) for v in t["label"]], y=t[col], name=plot_text(name), marker=dict(color=colour),
                             hovertemplate="%{x}: %{y:.1%}<extra>" + plot_text(name) + "</extra>"))
    fig.update_layout(barmode="group", height=300, margin=dict(l=8, r=8, t=8, b=8), yaxis=dict(tickformat=".0%"),
                      legend=dict(orientation="h", y=1.02, yanchor="bottom"))
    return fig
