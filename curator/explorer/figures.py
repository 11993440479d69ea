"""Plotly figures of the explorer (no Streamlit here, so the server can build them ahead)."""

from __future__ import annotations

import numpy as np

from . import data as D

PALETTE = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
    "#393b79", "#e7ba52", "#637939", "#ad494a", "#7b4173", "#3182bd", "#fd8d3c", "#31a354", "#756bb1", "#636363",
]
MAX_CLASS_TRACES = 40


def plot_text(text) -> str:
    """User text (class names) for Plotly, which renders a subset of HTML in legends, tick
    labels and hover text (``<a href>``, ``<b>``…): escape ``& < >`` so it shows literally."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def plot_texts(values) -> list[str]:
    return [plot_text(v) for v in values]


COLOR_MODES = {"class": "class", "label": "given vs suggested label", "issue": "issue type", "tag": "tag"}
ISSUE_COLORS = {
    "unreadable": "#495057", "exact_duplicate": "#7048e8", "near_duplicate": "#ae3ec9", "dark": "#343a40",
    "bright": "#fab005", "blurry": "#15aabf", "low_information": "#adb5bd", "odd_aspect_ratio": "#fd7e14",
    "odd_size": "#e67700", "outlier": "#2f9e44", "label_issue": "#e03131",
}
NONE_COLOR = "#ced4da"


def color_label(color: str) -> str:
    return COLOR_MODES.get(color) or D.METRICS[color].label


def scatter(d: D.ExplorerData, mode: str = "class", spec=None, tag_of: np.ndarray | None = None):
    """The embedding map (memoised on ``d``, except when coloured by tag, which changes as
    the user tags): every point, item ids as customdata. ``mode``: "class" (one trace per
    class), "label" (classes faded, label issues drawn on top with a red ring), "issue" (worst
    issue type), "tag" (first tag, ``tag_of`` per item) or a metric key (continuous colour
    scale with a colour bar). ``spec``: the map (default: ``arrays/projection.npy``); its
    coordinates must be known (:meth:`ExplorerData.map_coords`).

    Built once per (map, colouring) so every rerun sends an identical figure: Streamlit then
    keeps the user's box/lasso selection and sends only a cache reference instead of the points."""
    if spec is not None and spec == d.default_map_spec():
        spec = None
    xy = d.projection if spec is None else d.map_coords(spec)
    if xy is None:
        raise ValueError(f"the map {spec} is not computed yet")
    if mode == "tag":
        return _scatter(d, mode, xy, tag_of)
    return d.memo(("scatter", mode, spec), lambda: _scatter(d, mode, xy))


def _category_traces(fig, xy, ok, values: np.ndarray, order: list, colors: dict, size, opacity, what: str):
    import plotly.graph_objects as go

    for name in order:
        m = ok & (values == name)
        if not m.any():
            continue
        ids = np.nonzero(m)[0].astype(np.int32)
        fig.add_trace(go.Scattergl(
            x=xy[m, 0], y=xy[m, 1], mode="markers", name=f"{plot_text(name)} ({len(ids):,})", customdata=ids,
            marker=dict(size=size, color=colors[name], opacity=opacity), meta=plot_text(name),
            hovertemplate=f"#%{{customdata}} · {what} %{{meta}}<extra></extra>",
        ))


def _scatter(d: D.ExplorerData, mode: str, xy: np.ndarray, tag_of: np.ndarray | None = None):
    import plotly.graph_objects as go

    ok = np.isfinite(xy).all(axis=1)
    n_ok = int(ok.sum())
    size = 7 if n_ok < 2_000 else 5 if n_ok < 20_000 else 3
    fig = go.Figure()
    opacity = 0.4 if mode == "label" else 0.75
    legend_title = {"label": "given label", "issue": "worst issue", "tag": "tag"}.get(mode, "class")
    if mode == "issue":
        worst = d.worst_issue()
        order = [t for t in D.ISSUE_TYPES if d.issue_counts.get(t)] + [D.NO_ISSUE]
        _category_traces(fig, xy, ok, worst, order, {**ISSUE_COLORS, D.NO_ISSUE: NONE_COLOR}, size, opacity, "issue")
    elif mode == "tag":
        tags = np.asarray(tag_of if tag_of is not None else np.full(d.n, "(untagged)", dtype=object), dtype=object)
        names = sorted(set(tags.tolist()) - {"(untagged)"})
        colors = {t: PALETTE[i % len(PALETTE)] for i, t in enumerate(names)} | {"(untagged)": NONE_COLOR}
        _category_traces(fig, xy, ok, tags, ["(untagged)"] + names, colors, size, opacity, "tag")
    elif mode in D.METRICS:
        v = d.metric(mode)
        has = ok & np.isfinite(v)
        if (ok & ~has).any():
            _category_traces(fig, xy, ok & ~has, np.full(d.n, "no value", dtype=object), ["no value"],
                             {"no value": NONE_COLOR}, size, opacity, D.METRICS[mode].label.lower())
        ids = np.nonzero(has)[0].astype(np.int32)
        lo, hi = (np.percentile(v[has], [1, 99]) if len(ids) else (0.0, 1.0))
        fig.add_trace(go.Scattergl(
            x=xy[has, 0], y=xy[has, 1], mode="markers", name=D.METRICS[mode].label, customdata=ids, text=v[has],
            marker=dict(size=size, color=v[has], colorscale="Viridis", cmin=float(lo), cmax=float(hi if hi > lo else lo + 1e-9),
                        opacity=opacity, showscale=True,
                        colorbar=dict(title=dict(text=D.METRICS[mode].label, side="right"), thickness=12, len=0.9)),
            hovertemplate=f"#%{{customdata}} · {D.METRICS[mode].label.lower()} %{{text:.4g}}<extra></extra>", showlegend=False,
        ))
    elif len(d.label_values) <= MAX_CLASS_TRACES:
        for code, name in enumerate(d.label_values):
            m = ok & (d.label_codes == code)
            if not m.any():
                continue
            ids = np.nonzero(m)[0].astype(np.int32)
            fig.add_trace(
                go.Scattergl(
                    x=xy[m, 0], y=xy[m, 1], mode="markers", name=f"{plot_text(name)} ({len(ids):,})",
                    customdata=ids, marker=dict(size=size, color=PALETTE[code % len(PALETTE)], opacity=opacity),
                    meta=plot_text(name), hovertemplate="#%{customdata} · %{meta}<extra></extra>",
                )
            )
    else:  # many classes: one trace, colour by class index, label in the hover text
        ids = np.nonzero(ok)[0].astype(np.int32)
        fig.add_trace(
            go.Scattergl(
                x=xy[ok, 0], y=xy[ok, 1], mode="markers", name="images", customdata=ids,
                text=plot_texts(d.labels[ok]), marker=dict(size=size, color=d.label_codes[ok], colorscale="Turbo", opacity=opacity),
                hovertemplate="#%{customdata} · %{text}<extra></extra>",
            )
        )
    if mode == "label":  # label issues on top: filled with the given label's colour, red ring
        m = ok & np.isfinite(d.label_issue_score)
        ids = np.nonzero(m)[0].astype(np.int32)
        big = len(ids) > 300
        fig.add_trace(
            go.Scattergl(
                x=xy[m, 0], y=xy[m, 1], mode="markers", name=f"label issue ({len(ids):,})",
                customdata=ids, text=[f"{plot_text(g)} → {plot_text(s)}" for g, s in zip(d.labels[m], d.suggested[m])],
                marker=dict(size=size + (3 if big else 6), color=[PALETTE[c % len(PALETTE)] for c in d.label_codes[m]],
                            line=dict(color="#c92a2a", width=1.2 if big else 2), opacity=1.0),
                hovertemplate="#%{customdata} · given %{text}<extra>label issue</extra>",
            )
        )
    fig.update_layout(
        height=480, margin=dict(l=8, r=8, t=8, b=8), dragmode="select", uirevision="keep", hovermode="closest",
        legend=dict(itemsizing="constant", title_text=legend_title, font=dict(size=11),
                    y=0.93, yanchor="top"),
        xaxis=dict(showticklabels=False, title=None, zeroline=False, showgrid=False),
        yaxis=dict(showticklabels=False, title=None, zeroline=False, showgrid=False),
        plot_bgcolor="#fbfbfd",
    )
    return fig


def histogram(d: D.ExplorerData, metric: str, view_mask: np.ndarray, lo=None, hi=None):
    """Histogram of a metric over all images (light) and the current view (dark), with the IQR
    outlier bands shaded: orange beyond 1.5×IQR (moderate), red beyond 2.5×IQR (severe).
    Returns (figure as a dict, bands)."""
    base = d.memo(("hist", metric), lambda: _hist_base(d, metric))
    if base is None:
        return {"data": [], "layout": {"height": 300, "annotations": [{"text": "no values", "showarrow": False}]}}, None
    edges, all_counts, bands, shapes, xrange = base
    v = d.metric(metric)
    sel = view_mask & np.isfinite(v)
    view_counts, _ = np.histogram(v[sel], bins=edges)
    centers = (edges[:-1] + edges[1:]) / 2
    width = float(edges[1] - edges[0])
    lines = [
        {"type": "line", "x0": x, "x1": x, "yref": "paper", "y0": 0, "y1": 1, "line": {"dash": "dash", "color": "#495057"}}
        for x in (lo, hi) if x is not None
    ]
    fig = {
        "data": [
            {"type": "bar", "x": centers, "y": all_counts, "width": width, "name": "all images", "marker": {"color": "#c9d3e6"},
             "hovertemplate": "%{x:.4g}: %{y:,} images<extra>all</extra>"},
            {"type": "bar", "x": centers, "y": view_counts, "width": width, "name": "in view", "marker": {"color": "#3b5bdb"},
             "hovertemplate": "%{x:.4g}: %{y:,} images<extra>in view</extra>"},
        ],
        "layout": {
            "height": 300, "margin": {"l": 8, "r": 8, "t": 8, "b": 8}, "barmode": "overlay", "bargap": 0, "showlegend": True,
            "legend": {"orientation": "h", "y": 1.02, "x": 0, "yanchor": "bottom", "font": {"size": 11}},
            "xaxis": {"title": {"text": D.METRICS[metric].label}, "range": xrange}, "yaxis": {"title": {"text": "images"}},
            "dragmode": False, "shapes": shapes + lines,
        },
    }
    return fig, bands


def _hist_base(d: D.ExplorerData, metric: str):
    v = d.metric(metric)
    finite = v[np.isfinite(v)]
    if not len(finite):
        return None
    vmin, vmax = float(finite.min()), float(finite.max())
    span = vmax - vmin or 1.0
    edges = np.linspace(vmin, vmin + span, 61)
    all_counts, _ = np.histogram(finite, bins=edges)
    width = edges[1] - edges[0]
    lo_x, hi_x = vmin - width, vmax + width
    bands = D.iqr_bands(v)
    shapes = []
    if bands is not None:
        for x0, x1, color in (
            (lo_x, bands.severe_lo, "rgba(224,49,49,0.16)"),
            (max(bands.severe_lo, lo_x), bands.moderate_lo, "rgba(253,126,20,0.16)"),
            (bands.moderate_hi, min(bands.severe_hi, hi_x), "rgba(253,126,20,0.16)"),
            (bands.severe_hi, hi_x, "rgba(224,49,49,0.16)"),
        ):
            x0, x1 = max(x0, lo_x), min(x1, hi_x)
            if x1 > x0:
                shapes.append({"type": "rect", "xref": "x", "yref": "paper", "x0": x0, "x1": x1, "y0": 0, "y1": 1,
                               "fillcolor": color, "line": {"width": 0}, "layer": "below"})
    return edges, all_counts, bands, shapes, [lo_x, hi_x]


def class_bars(classes, median: float):
    """Images per class, undersampled classes in red (Overview)."""
    colors = np.where(classes["undersampled"], "#e03131", "#3b5bdb")
    return {
        "data": [{
            "type": "bar", "x": plot_texts(classes["class"]), "y": classes["images"].tolist(),
            "marker": {"color": colors.tolist()},
            "customdata": np.stack([classes["flagged"], classes["flagged_rate"] * 100], axis=1).tolist(),
            "hovertemplate": "class %{x}: %{y:,} images<br>%{customdata[0]:,} flagged (%{customdata[1]:.1f}%)<extra></extra>",
            "text": ["undersampled" if u else "" for u in classes["undersampled"]], "textposition": "outside",
        }],
        "layout": {
            "height": 340, "margin": {"l": 8, "r": 8, "t": 24, "b": 8}, "showlegend": False,
            "xaxis": {"type": "category", "title": {"text": "class"}}, "yaxis": {"title": {"text": "images"}},
            "shapes": [
                {"type": "line", "xref": "paper", "x0": 0, "x1": 1, "y0": median, "y1": median, "line": {"dash": "dot", "color": "#495057"}},
                {"type": "line", "xref": "paper", "x0": 0, "x1": 1, "y0": median / 2, "y1": median / 2,
                 "line": {"dash": "dash", "color": "#e03131", "width": 1}},
            ],
            "annotations": [
                {"xref": "paper", "x": 1, "y": median, "xanchor": "right", "yanchor": "bottom", "showarrow": False,
                 "text": f"median {median:,.0f}", "font": {"size": 11, "color": "#495057"}},
            ],
        },
    }


def rate_bars(classes, overall: float):
    """Label issue rate per class (Label Quality); classes above twice the overall rate in red."""
    rate = classes["label_issue_rate"].to_numpy(dtype=float)
    return {
        "data": [{
            "type": "bar", "x": plot_texts(classes["class"]), "y": (rate * 100).tolist(),
            "marker": {"color": np.where(rate > 2 * max(overall, 1e-9), "#e03131", "#3b5bdb").tolist()},
            "customdata": np.stack([classes["label_issues"], classes["images"]], axis=1).tolist(),
            "hovertemplate": "class %{x}: %{y:.1f}% (%{customdata[0]:,} of %{customdata[1]:,})<extra></extra>",
        }],
        "layout": {"height": 220, "margin": {"l": 8, "r": 8, "t": 8, "b": 8},
                   "xaxis": {"type": "category", "title": {"text": "given label"}},
                   # never below 0 (plotly centres an all-zero axis on 0: -1..1 "%")
                   "yaxis": {"title": {"text": "% with label issue"}, "rangemode": "nonnegative"}},
    }
