"""Compare: the project (A, e.g. train) against the one given with ``--compare`` (B, e.g. test):
leaked pairs side by side, B images outside A's support, per-metric drift (overlaid
histograms with the KS figures), the class-share table, and a joint 2D map of both splits
(fitted on demand, coloured by split or class)."""

import base64

import streamlit as st

from curator.compare import SHIFT_RULE
from curator.explorer import compare_view as CV
from curator.explorer import ui
from curator.export import to_bytes
from curator.leaks import LEAK_COLUMNS, labels_differ

data = ui.data()
other = CV.compare_root()
if other is None:
    st.info("Start the explorer with a second project to compare: `curator visualize TRAIN --compare TEST`.")
    st.stop()
ui.init_state(cmp_k=5, cmp_colour="Split", cmp_method="UMAP", cmp_only_differ=False, cmp_outside_n=24)
with st.spinner("Comparing the two splits…"):
    c = CV.comparison(data.root, other, k=int(st.session_state["cmp_k"]))
a, b = c.a, c.b
st.title(f"{ui.md(b.name)} against {ui.md(a.name)}")
st.caption(f"A = {ui.md(a.name)} ({a.items:,} images, the reference) · B = {ui.md(b.name)} ({b.items:,} images, the candidate) · "
           f"embedding {ui.md(a.embedding)} · computed in {c.timings.get('total', 0):.1f} s")

s = c.leak_summary()
p = c.prdc
shifted = [r["metric"] for r in c.drift if r["shifted"]]
cols = st.columns(6)
cols[0].metric("Leaked B images", f"{s['b_items']:,}", f"{s['share_of_b']:.1%} of B", delta_color="off", delta_arrow="off",
               border=True, help="B images that are exact or near copies of A images")
cols[1].metric("Labels differ", f"{s['labels_differ']:,}", border=True,
               help="leaked pairs whose labels differ: the same picture labelled two ways (the worst case)")
for col, key, helptext in ((cols[2], "precision", "share of B inside A's k-NN balls: low = B shows things A lacks"),
                           (cols[3], "recall", "share of A inside B's k-NN balls: low = B spans less than A"),
                           (cols[4], "coverage", "share of A's k-NN balls holding a B image")):
    col.metric(f"PRDC {key}", "–" if p[key] is None else f"{p[key]:.3f}", border=True, help=helptext)
cols[5].metric("Shifted metrics", f"{len(shifted)}", ", ".join(shifted) or "none", delta_color="off", delta_arrow="off",
               border=True, help=f"shifted = {SHIFT_RULE} (two-sample Kolmogorov-Smirnov)")

tabs = st.tabs(["Leaks", "Outside A's support", "Drift", "Classes", "Joint map"])

with tabs[0]:
    leaks = c.leaks
    st.markdown(f"**{s['pairs']:,}** leaked pairs ({s['exact_pairs']:,} exact, {s['near_pairs']:,} near) · "
                f"**{s['labels_differ']:,}** with differing labels, listed first (one of the two labels is wrong)")
    st.download_button("Download the pairs (CSV)", to_bytes(leaks.reindex(columns=list(LEAK_COLUMNS)), "csv"),
                       file_name=f"leaks-{b.name}-in-{a.name}.csv", mime="text/csv", key="cmp_dl_leaks",
                       icon=":material/download:", disabled=not len(leaks))
    if st.checkbox("Only pairs whose labels differ", key="cmp_only_differ") and len(leaks):
        leaks = leaks[labels_differ(leaks)]
    if not len(leaks):
        st.success("No B image is a copy of an A image." if not s["pairs"] else "No pair matches.")
    else:
        per_page = 8
        pages = max(1, -(-len(leaks) // per_page))
        page_no = st.pagination(pages, key=f"cmp_leak_pg_{len(leaks)}") if pages > 1 else 1
        differ = labels_differ(leaks).to_numpy()
        for j, row in enumerate(leaks.iloc[(page_no - 1) * per_page : page_no * per_page].itertuples(index=False)):
            bad = differ[(page_no - 1) * per_page + j]
            with st.container(border=True):
                st.markdown(f"**{row.kind.replace('_', ' ')}** · score {row.score:.3f}"
                            + (" · :red[**labels differ**]" if bad else ""))
                left, right = st.columns(2)
                for col, side, item, label, path, name in ((left, b, row.item_b, row.label_b, row.path_b, "B"),
                                                            (right, a, row.item_a, row.label_a, row.path_a, "A")):
                    img, mime = CV.thumbnail(side, int(item))
                    colour = "#c92a2a" if bad else "inherit"
                    col.html(f'<div class="cur-card"><img style="max-width:180px" src="data:{mime};base64,'
                             f'{base64.b64encode(img).decode()}"><div class="cur-hd"><b>{name}</b> #{int(item)} · '
                             f'<span class="cur-lbl" style="color:{colour}">{ui.esc(label)}</span></div>'
                             f'<div class="cur-muted">{ui.esc(path)}</div></div>')

with tabs[1]:
    st.markdown(f"B images ranked from **least** to most like anything in A: distance to the nearest A image divided "
                f"by that image's k-NN radius (k = {p['k']}); above 1 = outside every A ball checked.")
    n = st.selectbox("Show", [12, 24, 48, 96], key="cmp_outside_n", format_func=lambda v: f"top {v}")
    top = c.outside.head(int(n))
    grid = st.grid(ui.GRID_COLUMNS, gap="small", border=True, min_column_width=150)
    for row in top.itertuples(index=False):
        with grid.cell():
            img, mime = CV.thumbnail(b, int(row.item_id))
            st.html(f'<div class="cur-card" title="{ui.esc(row.path)}"><img src="data:{mime};base64,{base64.b64encode(img).decode()}">'
                    f'<div class="cur-hd"><b>#{int(row.item_id)}</b> · <span class="cur-lbl">{ui.esc(row.label)}</span></div>'
                    f'<div><span class="cur-muted">outside score</span> <b>{row.score:.2f}</b></div></div>')

with tabs[2]:
    st.markdown(f"Two-sample Kolmogorov-Smirnov test per metric; **shifted** = {SHIFT_RULE}: with thousands of images "
                "every tiny difference is significant, so the KS statistic (the largest gap between the two cumulative "
                "distributions) must also be at least 0.1.")
    st.dataframe([{k: r[k] for k in ("metric", "statistic", "p_value", "shifted", "median_a", "median_b")} for r in c.drift],
                 hide_index=True, key="cmp_drift_table")
    hist_cols = st.columns(2)
    for i, r in enumerate(c.drift):
        hist_cols[i % 2].plotly_chart(CV.drift_histogram(c, r["metric"], r), key=f"cmp_hist_{r['metric']}",
                                      config=ui.PLOT_CONFIG, width="stretch")

with tabs[3]:
    t = c.class_test
    if t["statistic"] is not None:
        st.markdown(f"Chi-square test of the class counts: statistic **{t['statistic']:.2f}**, dof {t['dof']}, "
                    f"p = **{t['p_value']:.3g}**" + (" (the class balance differs)" if t["p_value"] < 0.01 else ""))
    for names, where in ((t["only_in_a"], a.name), (t["only_in_b"], b.name)):
        if names:
            st.warning(f"Classes only in {ui.md(where)}: {', '.join(map(ui.md, names))}")
    if c.class_shift:
        st.plotly_chart(CV.class_figure(c), key="cmp_class_fig", config=ui.PLOT_CONFIG, width="stretch")
        st.dataframe(CV.class_table(c), hide_index=True, key="cmp_class_table",
                     column_config={"share_a": st.column_config.NumberColumn(f"share {a.name}", format="percent"),
                                    "share_b": st.column_config.NumberColumn(f"share {b.name}", format="percent"),
                                    "change": st.column_config.NumberColumn("change", format="percent")})
    else:
        st.info("Neither project has labels.")

with tabs[4]:
    with st.container(horizontal=True, vertical_alignment="bottom"):
        colour = st.segmented_control("Colour by", ["Split", "Class"], key="cmp_colour")
        method = st.segmented_control("Map", ["UMAP", "PCA"], key="cmp_method",
                                      help="UMAP keeps neighbourhoods (seconds to tens of seconds on large splits, once); PCA is instant")
    method = (method or "UMAP").lower()
    if CV.map_is_ready(c, method) or st.button("Draw the joint map", key="cmp_draw_map", icon=":material/scatter_plot:"):
        with st.spinner("Fitting one 2D map on both splits…"):
            points = CV.joint_map(c, method)
        st.plotly_chart(CV.map_figure(points, "split" if (colour or "Split") == "Split" else "class",
                                      {"A": f"A: {a.name}", "B": f"B: {b.name}"}),
                        key="cmp_map", config=ui.PLOT_CONFIG, width="stretch")
        st.caption(f"{len(points):,} images of both splits in one {method.upper()} map fitted on their joint embeddings. "
                   "Regions of one colour only (by split) are where one split has images the other lacks.")
    else:
        st.caption(f"The joint map is fitted on demand ({len(a.x) + len(b.x):,} images).")
