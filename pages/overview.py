"""Overview: image count, issues per type (each opens the page that shows them), class
distribution with undersampled classes marked, median image size."""

import streamlit as st

from curator.explorer import data as D
from curator.explorer import figures, ui

data = ui.data()
st.title(ui.md(data.name))
a = data.analysis
st.caption(f"{data.n:,} images · analysed {ui.md(a.get('finished', '?'))} with {ui.md(a.get('backbone', '?'))} · "
           f"2D map: {ui.md(a.get('projection', '?'))}")

n_flagged = int(data.flagged.sum())
size = data.median_size()
classes = data.class_table()
undersampled = classes.loc[classes["undersampled"], "class"].tolist()
cols = st.columns(5)
cols[0].metric("Images", f"{data.n:,}", border=True)
cols[1].metric("Classes", f"{len([c for c in data.label_values if c != D.UNLABELLED]):,}", border=True,
               help=f"{len(undersampled)} undersampled" if undersampled else None)
cols[2].metric("Flagged images", f"{n_flagged:,}", f"{n_flagged / max(data.n, 1):.1%} of all", delta_color="off",
               delta_arrow="off", border=True, help="images with at least one issue")
cols[3].metric("Median image size", f"{size[0]:.0f} × {size[1]:.0f} px" if size else "–", border=True)
cols[4].metric("Label issues", f"{data.issue_counts.get('label_issue', 0):,}", border=True)

left, right = st.columns([5, 6], gap="large")
with left:
    st.subheader("Issues")
    st.caption("Click a count to open those images.")
    for issue in D.ISSUE_TYPES:
        count = data.issue_counts.get(issue, 0)
        sev = int((data.issues.loc[data.issues["issue"] == issue, "severity"] == "severe").sum()) if count else 0
        row = st.columns([2, 5], vertical_alignment="center")
        target = "label_quality" if issue == "label_issue" else "data_quality"
        if row[0].button(f"{count:,}", key=f"ov_open_{issue}", disabled=count == 0, width="stretch",
                         type="primary" if count else "secondary", help=f"open in {target.replace('_', ' ').title()}"):
            if target == "data_quality":
                st.session_state["dq_issues"] = [issue]
                st.session_state["dq_view"] = "Duplicate groups" if issue in D.DUPLICATE_ISSUES else "Images"
                for k in ("dq_classes", "dq_tags"):
                    st.session_state[k] = []
                ui.clear_selection("dq")
            else:
                ui.clear_selection("lq")
                st.session_state.pop("lq_pair", None)
            st.switch_page(ui.PAGES[target])
        row[1].markdown(f"**{issue.replace('_', ' ')}**" + (f" · :red[{sev:,} severe]" if sev else "")
                        + f"  \n:gray[{D.ISSUE_HELP[issue]}]")

with right:
    st.subheader("Class distribution")
    if not ui.no_labels_note(data, ", so there is no class distribution"):
        if undersampled:
            st.caption(f":red[Undersampled] (below the red dashed line, half the median class size): "
                       f"{', '.join(map(ui.md, undersampled))}")
        else:
            st.caption("No undersampled class: none is below the red dashed line (half the median class size).")
        median = float(classes.loc[classes["class"] != D.UNLABELLED, "images"].median())
        st.plotly_chart(figures.class_bars(classes, median), width="stretch", config={"displaylogo": False})
        st.dataframe(
            classes[["class", "images", "flagged_rate", "label_issue_rate", "undersampled"]],
            hide_index=True, width="stretch", height=min(35 * (len(classes) + 1) + 3, 420),
            column_config={
                "flagged_rate": st.column_config.ProgressColumn("flagged", format="percent", min_value=0, max_value=1,
                                                                help="images with at least one issue"),
                "label_issue_rate": st.column_config.ProgressColumn("label issues", format="percent", min_value=0, max_value=1),
            },
        )
