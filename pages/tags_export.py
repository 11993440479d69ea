"""Tags & Export: the tags made in the explorer (the same ones `curator export --tag` reads),
the images behind each tag, and CSV downloads of any issue list or tag in the export schema."""

import numpy as np
import streamlit as st

from curator.explorer import data as D
from curator.explorer import ui

data = ui.data()
st.title("Tags & Export")
tags = ui.tags_frame(data)
counts = tags.groupby("tag").size().rename("images").reset_index().sort_values(["images", "tag"], ascending=[False, True])

left, right = st.columns([2, 3], gap="large")
with left:
    st.subheader("Tags")
    if not len(counts):
        st.info("No tags yet. Tag images on the Data Quality or Label Quality page "
                "(e.g. `remove`, `relabel:7`); they are stored in the project database.")
    else:
        st.dataframe(counts, hide_index=True, width="stretch", height=min(35 * (len(counts) + 1) + 3, 320))
        st.caption("Command line: `curator export PROJECT --tag TAG` lists the tagged images.")

with right:
    st.subheader("Export")
    st.caption("CSV in the export schema: item_id, path, label, issue, score, severity, suggested_label, group_id, keep — "
               "exactly what `curator export` writes.")
    chosen = st.multiselect("Issue types", [t for t in D.ISSUE_TYPES if data.issue_counts.get(t)], key="tags_export_issues",
                            placeholder="all issue types",
                            format_func=lambda t: f"{t} ({data.issue_counts.get(t, 0):,})")
    n_rows = sum(data.issue_counts.get(t, 0) for t in (chosen or D.ISSUE_TYPES))
    ui.download_rows(f"Download {n_rows:,} issue rows", lambda: D.export_frame(data.root, chosen),
                     f"{data.name}-{'-'.join(chosen) if chosen else 'all'}-issues.csv", key="tags_dl_issues")
    st.markdown("**One list per issue type**")
    grid = st.grid(3, gap="small", min_column_width=200)
    for t in D.ISSUE_TYPES:
        if data.issue_counts.get(t):
            with grid.cell():
                ui.download_rows(f"{t} ({data.issue_counts[t]:,})", lambda t=t: D.export_frame(data.root, [t]),
                                 f"{data.name}-{t}.csv", key=f"tags_dl_{t}")

st.divider()
if len(counts):
    tag = st.selectbox("Images tagged", counts["tag"].tolist(), key="tags_current",
                       format_func=lambda t: f"{t} ({int(counts.loc[counts['tag'] == t, 'images'].iloc[0]):,})")
    ids = np.sort(tags.loc[tags["tag"] == tag, "item_id"].to_numpy(dtype=np.int64))
    with st.container(horizontal=True, vertical_alignment="center"):
        ui.download_rows(f"Download '{ui.md(tag)}' as CSV", lambda: D.export_frame(data.root, (), [tag]),
                         f"{data.name}-tag-{tag.replace(':', '_').replace('/', '_')}.csv", key="tags_dl_tag")
        picked = [i for i in st.session_state.get("picked", []) if i in set(ids.tolist())]
        if st.button(f"Remove '{ui.md(tag)}' from {len(picked)} picked", key="tags_rm_picked", disabled=not picked):
            D.write_tags(data.root, picked, tag, remove=True)
            ui.bump_tags()
            st.rerun()
        if st.button(f"Remove '{ui.md(tag)}' from all {len(ids):,}", key="tags_rm_all"):
            D.write_tags(data.root, ids, tag, remove=True)
            ui.bump_tags()
            st.rerun()
    ui.similar_panel(data, "tags")
    ui.image_grid(data, ids, "tags")
