"""Label Quality: where the given labels disagree with the data. The 2D map coloured by given
label with label issues circled, the given × suggested class-pair table (click a row to filter),
per-class issue rates, and the ranked list of label issues with the image, given and suggested
label; tag them (e.g. ``relabel:7``) and export."""

import numpy as np
import streamlit as st

from curator.checks.labels import label_margin_note
from curator.explorer import data as D
from curator.explorer import figures, ui
from curator.explorer import projector_ui as PU

data = ui.data()
st.title("Label Quality")
if ui.no_labels_note(data, ", so there are no labels to check"):
    st.stop()
PU.apply_query(data, "lq")
filters = ui.sidebar_filters(data, "lq", issues=False)
n_issues = data.issue_counts.get("label_issue", 0)
labelled = int(data.labelled.sum())
classes = data.class_table()
pairs = data.label_pairs()

with st.sidebar:
    suggested_filter = st.multiselect("Suggested class", sorted(set(pairs["suggested"].tolist())), key="lq_suggested",
                                      persist_state="session", placeholder="any")
    scores = data.label_issue_score[np.isfinite(data.label_issue_score)]
    min_score = 0.0
    if len(scores) and scores.min() < scores.max():
        min_score = st.slider("Minimum issue score", float(scores.min()), float(scores.max()), float(scores.min()),
                              key="lq_min_score", format="%.3f")

cols = st.columns(4)
cols[0].metric("Label issues", f"{n_issues:,}", border=True)
cols[1].metric("Of labelled images", f"{n_issues / max(labelled, 1):.1%}", border=True)
cols[2].metric("Severe", f"{int((data.issues.loc[data.issues['issue'] == 'label_issue', 'severity'] == 'severe').sum()):,}",
               border=True)
top_pair = (f"{ui.md(pairs.iloc[0]['given'])} → {ui.md(pairs.iloc[0]['suggested'])} ({pairs.iloc[0]['issues']})"
            if len(pairs) else "–")
cols[3].metric("Most common confusion", top_pair, border=True, help="given → suggested (count)")
margin_note = label_margin_note(data.analysis)
if margin_note:
    st.info(margin_note[0].upper() + margin_note[1:] + ".")

left, right = st.columns([3, 2], gap="medium")
with left:
    spec, color = PU.controls(data, "lq", "label")
    spec = PU.resolve(data, "lq", spec)
    ui.set_map("lq", spec, color)
    selection = ui.map_selection("lq")
    ring = " — label issues have a :red[red ring]" if color == "label" else ""
    st.markdown(f"**2D map**: {spec.describe()}, coloured by {figures.color_label(color)}{ring}. Drag a box or lasso "
                "to narrow the list.")
    map_slot = st.container()
    if selection is None:
        with map_slot:
            ui.draw_map(data, "lq", color, spec)
with right:
    st.markdown("**Class pairs** (given × suggested) — click a row to filter")
    nonce = st.session_state.get("lq_pairs_nonce", 0)
    event = st.dataframe(
        pairs, key=f"lq_pairs_{nonce}", on_select="rerun", selection_mode="single-row", hide_index=True,
        width="stretch", height=240,
        column_config={"given": "given label", "suggested": "suggested label", "issues": st.column_config.NumberColumn("issues")},
    )
    rows = list(event.selection.rows) if event is not None and event.selection else []
    sig = tuple(rows)
    if sig != st.session_state.get("lq_pairs_sig", ()):
        st.session_state["lq_pairs_sig"] = sig
        if rows and rows[0] < len(pairs):
            st.session_state["lq_pair"] = [str(pairs.iloc[rows[0]]["given"]), str(pairs.iloc[rows[0]]["suggested"])]
        else:
            st.session_state.pop("lq_pair", None)
    st.markdown("**Label issue rate per class**")
    fig = figures.rate_bars(classes, n_issues / max(labelled, 1))
    st.plotly_chart(fig, width="stretch", config={"displayModeBar": False}, key="lq_rates")

pair = st.session_state.get("lq_pair")
ui.init_state(lq_list="issues")
mode = st.segmented_control("List", ["issues", "all"], key="lq_list", required=True, label_visibility="collapsed",
                            format_func={"issues": "Label issues, most likely wrong first",
                                         "all": "All images in view, lowest label confidence first"}.get)
mask = data.view_mask(classes=filters["classes"], tagged_ids=ui.tagged_ids(data, filters["tags"]),
                      path_contains=filters["path"], selection=selection)
is_issue = np.isfinite(data.label_issue_score)
if mode == "issues" or pair or suggested_filter:
    mask &= is_issue
    with np.errstate(invalid="ignore"):
        mask &= data.label_issue_score >= min_score - 1e-12
if suggested_filter:
    mask &= np.isin(data.suggested.astype(str), suggested_filter)
if pair:
    mask &= (data.labels == pair[0]) & (data.suggested.astype(str) == pair[1])
if mode == "issues":
    ids = np.nonzero(mask)[0]
    ids = ids[np.lexsort((ids, -data.label_issue_score[ids]))]
else:
    ids = data.sorted_ids(mask, "label_confidence" if "label_confidence" in data.available_metrics() else None)

with st.container(horizontal=True, vertical_alignment="center"):
    text = f"**{len(ids):,}** {'label issues' if mode == 'issues' else 'images'} in view"
    if pair:
        text += f" · pair given **{ui.md(pair[0])}** → suggested **{ui.md(pair[1])}**"
    if selection is not None:
        text += f" · {len(selection):,} selected in the 2D map"
    st.markdown(text)
    if pair and st.button("Clear pair", key="lq_clear_pair", icon=":material/close:"):
        st.session_state.pop("lq_pair", None)
        st.session_state["lq_pairs_sig"] = ()
        st.session_state["lq_pairs_nonce"] = nonce + 1
        st.rerun()
    if selection is not None and st.button("Clear map selection", key="lq_clear_sel", icon=":material/deselect:"):
        ui.clear_selection("lq")
        st.rerun()


def relabel_action(picked, view):
    """Tag each target with ``relabel:<suggested label>`` in one click."""
    target_kind = st.session_state.get("lq_tag_scope", "picked")
    target = [i for i in (picked if target_kind == "picked" else view) if data.suggested[i] is not None]
    if st.button(f"Tag {len(target):,} as relabel:<suggested>", key="lq_relabel", disabled=not target,
                 help="adds the tag relabel:<suggested label> to each target that has a suggestion"):
        groups = {}
        for i in target:
            groups.setdefault(str(data.suggested[i]), []).append(i)
        for label, members in groups.items():
            D.write_tags(data.root, members, f"relabel:{label}")
        ui.bump_tags()
        st.success(f"Tagged {len(target):,} images with relabel:<suggested> ({len(groups)} classes).")


ui.tag_panel(data, "lq", ids, view_name="in the list", extra=relabel_action)
with st.container(horizontal=True):
    ui.download_view(data, ids, "lq", issues=("label_issue",) if mode == "issues" else (), what="list")


def given_vs_suggested(i: int) -> str:
    conf = data.metric("label_confidence")[i] if "label_confidence" in data.available_metrics() else np.nan
    conf_txt = f"p(given) {conf:.2f}" if np.isfinite(conf) else ""
    if data.suggested[i] is None:
        return f'<div class="cur-muted">{conf_txt}</div>' if conf_txt else ""
    return (f'<div>given <span class="cur-lbl">{ui.esc(data.labels[i])}</span> &#8594; '
            f'<b><span class="cur-lbl">{ui.esc(data.suggested[i])}</span></b></div>'
            f'<div class="cur-muted">score {data.label_issue_score[i]:.3f} · {conf_txt}</div>')


ui.similar_panel(data, "lq")
ui.image_grid(data, ids, "lq", extra=given_vs_suggested, skip=("label_issue",),
              empty="No label issues match." if mode == "issues" else "No images match the current filters.")

if selection is not None:
    with map_slot:
        ui.draw_map(data, "lq", color, spec)
PU.write_query("lq", spec)
