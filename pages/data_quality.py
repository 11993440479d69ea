"""Data Quality: pick a metric, see its distribution with IQR outlier bands, narrow the images
with filters and box/lasso selection in the 2D map, browse them sorted by the metric, find
similar images and duplicate groups, tag and export what you find."""

import numpy as np
import streamlit as st

from curator.explorer import data as D
from curator.explorer import figures, ui
from curator.explorer import projector_ui as PU

data = ui.data()
st.title("Data Quality")
PU.apply_query(data, "dq")
filters = ui.sidebar_filters(data, "dq")

metrics = data.available_metrics()
if st.session_state.get("dq_metric") not in metrics:
    st.session_state["dq_metric"] = "brightness" if "brightness" in metrics else metrics[0]
ui.init_state(dq_order="Ascending", dq_outliers="all", dq_view="Images")
bar = st.columns([3, 2, 3], vertical_alignment="bottom")
metric = bar[0].selectbox("Metric", metrics, key="dq_metric", format_func=lambda k: D.METRICS[k].label,
                          help="sort the images and draw the histogram by this metric")
order = bar[1].segmented_control("Order", ["Ascending", "Descending"], key="dq_order",
                                 required=True)
outliers = bar[2].segmented_control(
    "IQR outliers", ["all", "moderate", "severe"], key="dq_outliers", required=True,
    format_func={"all": "All images", "moderate": "Outliers (≥1.5×IQR)", "severe": "Severe (≥2.5×IQR)"}.get,
    help="keep only images outside the interquartile-range bands of this metric",
)

left, right = st.columns([3, 2], gap="medium")
with left:
    spec, color = PU.controls(data, "dq", "class")
    spec = PU.resolve(data, "dq", spec)
    ui.set_map("dq", spec, color)
    selection = ui.map_selection("dq")
    st.markdown(f"**2D map**: {spec.describe()}, coloured by {figures.color_label(color)} — drag a box, or pick the "
                "lasso, to narrow the grid")
    map_slot = st.container()
    if selection is None:
        with map_slot:
            ui.draw_map(data, "dq", color, spec)
with right:
    st.markdown(f"**{D.METRICS[metric].label}** distribution · :gray[{D.METRICS[metric].help}]")
    chart_slot = st.empty()
    values = data.metric(metric)
    finite = values[np.isfinite(values)]
    lo = hi = None
    if len(finite) and finite.min() < finite.max():
        vmin, vmax = float(finite.min()), float(finite.max())
        rng = st.slider("Range", vmin, vmax, (vmin, vmax), key=f"dq_range_{metric}", step=(vmax - vmin) / 200 or None,
                        format="%.4g", help="keep only images with the metric in this range")
        if rng[0] > vmin:
            lo = rng[0]
        if rng[1] < vmax:
            hi = rng[1]

mask = data.view_mask(
    classes=filters["classes"], issues=filters["issues"], tagged_ids=ui.tagged_ids(data, filters["tags"]),
    metric=metric, lo=lo, hi=hi, outliers=outliers or "all", path_contains=filters["path"], selection=selection,
)
fig, bands = figures.histogram(data, metric, mask, lo, hi)
with chart_slot.container():
    st.plotly_chart(fig, width="stretch", config={"displayModeBar": False}, key="dq_hist")
    if bands is not None:
        level = bands.level(values)
        st.caption(
            f"IQR {D.METRICS[metric].format(bands.q1)} – {D.METRICS[metric].format(bands.q3)} · "
            f":orange[moderate outliers: {int((level == 1).sum()):,}] · :red[severe: {int((level == 2).sum()):,}]"
        )

ids = data.sorted_ids(mask, metric, descending=order == "Descending")
ui.selection_bar("dq", len(ids), data.n, selection)
ui.similar_panel(data, "dq", metric)

view = st.segmented_control("Show", ["Images", "Duplicate groups"], key="dq_view", required=True,
                            label_visibility="collapsed")
ui.tag_panel(data, "dq", ids)
with st.container(horizontal=True):
    ui.download_view(data, ids, "dq", what="view")
if view == "Duplicate groups":
    ui.duplicate_groups_view(data, "dq", ids)
else:
    ui.image_grid(data, ids, "dq", metric=metric)

if selection is not None:
    with map_slot:
        ui.draw_map(data, "dq", color, spec)
PU.write_query("dq", spec)
