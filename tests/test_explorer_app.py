"""Every explorer page under Streamlit's AppTest on the small analyzed project; plot and
table selections are injected through session state (``P_selection``, ``lq_pair``)."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest

from curator import Project
from curator.explorer import APP_PATH, page_path
from curator.explorer import data as D

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

TIMEOUT = 120


def page(name: str) -> str:
    return os.path.relpath(page_path(name), APP_PATH.parent)


def start(monkeypatch, root, name: str | None = None, state: dict | None = None) -> AppTest:
    monkeypatch.setenv("CURATOR_PROJECT", str(root))
    at = AppTest.from_file(str(APP_PATH), default_timeout=TIMEOUT)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    if name:
        at.switch_page(page(name))
    for k, v in (state or {}).items():
        at.session_state[k] = v
    if name or state:
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def markdown(at) -> str:
    return "\n".join(m.value for m in at.markdown)


def in_view(at) -> int:
    m = re.search(r"\*\*([\d,]+)\*\* (?:of [\d,]+ images|label issues|images) in view", markdown(at))
    assert m, markdown(at)
    return int(m.group(1).replace(",", ""))


def card_ids(at) -> list[int]:
    return [int(m.group(1)) for h in at.html for m in [re.search(r'class="cur-hd"><b>#(\d+)</b>', h.value)] if m]


@pytest.fixture(scope="module")
def d(analyzed_project):
    return D.load(analyzed_project)


# ------------------------------------------------------------------------------ overview
def test_overview_counts_classes_and_size(monkeypatch, analyzed_project, d):
    at = start(monkeypatch, analyzed_project)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Images"] == f"{d.n:,}"
    assert metrics["Classes"] == "10"
    assert metrics["Median image size"] == "32 × 32 px"
    assert metrics["Label issues"] == str(d.issue_counts["label_issue"])
    for issue in D.ISSUE_TYPES:
        button = at.button(key=f"ov_open_{issue}")
        assert button.label == f"{d.issue_counts[issue]:,}"
        assert button.disabled == (d.issue_counts[issue] == 0)
    assert "undersampled" in markdown(at) + "".join(c.value for c in at.caption)
    assert at.dataframe[0].value["images"].sum() == d.n


def test_overview_issue_count_opens_data_quality_filtered(monkeypatch, analyzed_project, d):
    at = start(monkeypatch, analyzed_project)
    at.button(key="ov_open_dark").click().run()
    assert not at.exception
    assert at.title[0].value == "Data Quality"
    assert at.multiselect(key="dq_issues").value == ["dark"]
    assert in_view(at) == d.issue_counts["dark"]
    assert set(card_ids(at)) == set(d.issue_ids["dark"])


def test_overview_duplicates_open_the_group_view(monkeypatch, analyzed_project, d):
    at = start(monkeypatch, analyzed_project)
    at.button(key="ov_open_exact_duplicate").click().run()
    assert at.button_group(key="dq_view").value == "Duplicate groups"
    text = markdown(at)
    assert "duplicate groups" in text and "Group" in text
    html = "".join(h.value for h in at.html)
    assert html.count("&#10003; keep") == len([g for g in d.duplicate_groups(d.issue_ids["exact_duplicate"])])


def test_overview_label_issues_open_label_quality(monkeypatch, analyzed_project):
    at = start(monkeypatch, analyzed_project)
    at.button(key="ov_open_label_issue").click().run()
    assert at.title[0].value == "Label Quality"


# ------------------------------------------------------------------------------ data quality
def test_data_quality_grid_sorted_by_metric(monkeypatch, analyzed_project, d):
    at = start(monkeypatch, analyzed_project, "data_quality")
    assert in_view(at) == d.n
    ids = card_ids(at)
    assert len(ids) == 24
    assert ids == d.sorted_ids(np.ones(d.n, bool), "brightness")[:24].tolist()
    assert ids[0] in d.issue_ids["dark"]  # darkest first
    at.button_group(key="dq_order").set_value("Descending").run()
    assert card_ids(at)[0] in d.issue_ids["bright"]
    at.selectbox(key="dq_metric").set_value("sharpness").run()
    assert card_ids(at)[:24] == d.sorted_ids(np.ones(d.n, bool), "sharpness", descending=True)[:24].tolist()
    at.selectbox(key="dq_page_size").set_value(48).run()
    assert len(card_ids(at)) == 48
    # per-image scores and issues on the cards
    html = "".join(h.value for h in at.html)
    assert "sharpness</span> <b>" in html and "cur-b" in html


def test_data_quality_filters(monkeypatch, analyzed_project, d):
    at = start(monkeypatch, analyzed_project, "data_quality")
    at.multiselect(key="dq_classes").set_value(["3"]).run()
    assert in_view(at) == int((d.labels == "3").sum())
    at.multiselect(key="dq_classes").set_value([]).run()
    at.button_group(key="dq_outliers").set_value("severe").run()
    severe = D.iqr_bands(d.metric("brightness")).level(d.metric("brightness")) == 2
    assert in_view(at) == int(severe.sum()) and set(d.issue_ids["dark"]) <= set(card_ids(at))
    assert "severe:" in "".join(c.value for c in at.caption)
    at.button_group(key="dq_outliers").set_value("all").run()
    at.slider(key="dq_range_brightness").set_range(0.2, 0.5).run()
    v = d.metric("brightness")
    assert in_view(at) == int(((v >= 0.2) & (v <= 0.5)).sum())


def test_data_quality_plot_selection_narrows_the_grid(monkeypatch, analyzed_project, d):
    chosen = [int(i) for i in np.nonzero(d.readable)[0][10:25]]
    at = start(monkeypatch, analyzed_project, "data_quality", {"dq_selection": chosen})
    assert in_view(at) == len(chosen)
    assert "selected in the 2D map" in markdown(at)
    assert sorted(card_ids(at)) == sorted(chosen)
    at.multiselect(key="dq_issues").set_value([D.NO_ISSUE]).run()  # selection AND filter
    assert set(card_ids(at)) == {i for i in chosen if not d.flagged[i]}
    at.button(key="dq_clear_sel").click().run()
    assert "dq_selection" not in at.session_state
    assert in_view(at) == int((~d.flagged).sum())


def test_data_quality_show_similar(monkeypatch, analyzed_project, d):
    at = start(monkeypatch, analyzed_project, "data_quality")
    first = card_ids(at)[0]
    readable_first = next(i for i in card_ids(at) if d.readable[i])
    at.button(key=f"dq_sim_{readable_first}").click().run()
    assert at.session_state["dq_similar"] == readable_first
    assert f"Most similar to #{readable_first}" in markdown(at)
    panel = next(h.value for h in at.html if "query image" in h.value)
    shown = [int(x) for x in re.findall(r'class="cur-hd"><b>#(\d+)</b>', panel)]
    assert shown[0] == readable_first and shown[1:] == d.similar(readable_first).tolist()
    at.button(key="dq_similar_close").click().run()
    assert "Most similar" not in markdown(at) and first in card_ids(at)


def test_data_quality_duplicate_groups_side_by_side(monkeypatch, analyzed_project, d):
    at = start(monkeypatch, analyzed_project, "data_quality")
    at.button_group(key="dq_view").set_value("Duplicate groups").run()
    groups = d.duplicate_groups()
    text = markdown(at)
    assert f"{len(groups)} duplicate groups" in text
    html = [h.value for h in at.html]
    keepers = [h for h in html if "&#10003; keep" in h]
    assert len(keepers) == len(groups)
    kept = {int(re.search(r"<b>#(\d+)</b>", h).group(1)) for h in keepers}
    assert kept == {g.item_ids[0] for g in groups}
    g = groups[0]
    at.button(key=f"dq_dup{g.group_id}_sim_{g.item_ids[1]}").click().run()
    assert f"Most similar to #{g.item_ids[1]}" in markdown(at)


def test_data_quality_tag_picked_and_whole_view(monkeypatch, copy_project):
    root = copy_project()
    d = D.load(root)
    at = start(monkeypatch, root, "data_quality")
    first, second = card_ids(at)[:2]
    at.checkbox(key=f"dq_pick_{first}").check().run()
    assert at.session_state["picked"] == [first]
    at.text_input(key="dq_tag").input("remove").run()
    at.button(key="dq_tag_add").click().run()
    assert not at.exception
    assert "Added tag **remove** to 1 image" in "".join(s.value for s in at.success)
    with Project(root) as p:
        assert p.tags().values.tolist() == [[first, "remove"]]
        assert p.export_frame(tags=["remove"])["item_id"].tolist() == [first]
    assert "tag: remove" in "".join(h.value for h in at.html)  # tag badge on the card
    # the whole current selection
    chosen = [int(i) for i in np.nonzero(d.readable)[0][30:37]]
    at.session_state["dq_selection"] = chosen
    at.run()
    at.radio(key="dq_tag_scope").set_value("view").run()
    at.text_input(key="dq_tag").input("relabel:7").run()
    at.button(key="dq_tag_add").click().run()
    with Project(root) as p:
        tags = p.tags()
    assert sorted(tags.loc[tags["tag"] == "relabel:7", "item_id"]) == chosen
    # tag filter in the sidebar
    del at.session_state["dq_selection"]
    at.multiselect(key="dq_tags").set_value(["relabel:7"]).run()
    assert sorted(card_ids(at)) == chosen
    # removing
    at.button(key="dq_tag_rm").click().run()
    with Project(root) as p:
        assert "relabel:7" not in set(p.tags()["tag"])


def test_data_quality_empty_tag_is_refused(monkeypatch, copy_project):
    root = copy_project()
    at = start(monkeypatch, root, "data_quality")
    at.button(key="dq_tag_add").click().run()
    assert "Type a tag first" in "".join(w.value for w in at.warning)
    at.text_input(key="dq_tag").input("x").run()
    at.button(key="dq_tag_add").click().run()  # scope "picked", nothing picked
    assert "Nothing to tag" in "".join(w.value for w in at.warning)


def test_data_quality_download_of_the_view(monkeypatch, analyzed_project):
    at = start(monkeypatch, analyzed_project, "data_quality", {"dq_selection": [1, 2, 3]})
    button = at.get("download_button")[0]
    assert "Download view as CSV (3 images)" in button.proto.label


# ------------------------------------------------------------------------------ label quality
def test_label_quality_ranked_list(monkeypatch, analyzed_project, d):
    at = start(monkeypatch, analyzed_project, "label_quality")
    n = d.issue_counts["label_issue"]
    assert in_view(at) == n
    ids = card_ids(at)
    scores = d.label_issue_score[ids]
    assert np.all(np.diff(scores) <= 0)  # most likely wrong first
    flipped = int(d.view_mask(path_contains="really_a_7").nonzero()[0][0])
    assert flipped in ids
    card = next(h.value for h in at.html if f"<b>#{flipped}</b>" in h.value)
    assert re.search(r'given <span class="cur-lbl">1</span> &#8594; <b><span class="cur-lbl">7</span>', card)
    assert at.dataframe[0].value[["given", "suggested"]].values.tolist()  # the class-pair table
    assert {m.label for m in at.metric} >= {"Label issues", "Most common confusion"}


def test_label_quality_pair_and_plot_selection_filter(monkeypatch, analyzed_project, d):
    at = start(monkeypatch, analyzed_project, "label_quality", {"lq_pair": ["1", "7"]})
    expected = [i for i in np.nonzero(np.isfinite(d.label_issue_score))[0] if d.labels[i] == "1" and d.suggested[i] == "7"]
    assert sorted(card_ids(at)) == sorted(expected) and "pair given **1** → suggested **7**" in markdown(at)
    at.button(key="lq_clear_pair").click().run()
    assert in_view(at) == d.issue_counts["label_issue"]
    issues = np.nonzero(np.isfinite(d.label_issue_score))[0]
    chosen = [int(issues[0]), int(np.nonzero(~np.isfinite(d.label_issue_score) & d.readable)[0][0])]
    at.session_state["lq_selection"] = chosen
    at.run()
    assert card_ids(at) == [chosen[0]]
    at.button_group(key="lq_list").set_value("all").run()
    assert sorted(card_ids(at)) == sorted(chosen)


def test_label_quality_relabel_tags(monkeypatch, copy_project):
    root = copy_project()
    d = D.load(root)
    at = start(monkeypatch, root, "label_quality", {"lq_pair": ["1", "7"]})
    at.radio(key="lq_tag_scope").set_value("view").run()
    at.button(key="lq_relabel").click().run()
    assert not at.exception
    with Project(root) as p:
        tags = p.tags()
    expected = [i for i in np.nonzero(np.isfinite(d.label_issue_score))[0] if d.labels[i] == "1" and d.suggested[i] == "7"]
    assert sorted(tags.loc[tags["tag"] == "relabel:7", "item_id"]) == sorted(expected)


# ------------------------------------------------------------------------------ tags & export
def test_tags_page_lists_shows_and_removes(monkeypatch, copy_project):
    root = copy_project()
    at = start(monkeypatch, root, "tags")
    assert "No tags yet" in "".join(i.value for i in at.info)
    with Project(root) as p:
        p.add_tag([5, 6, 7], "review")
        p.add_tag([8], "remove")
    at.run()
    table = at.dataframe[0].value
    assert dict(zip(table["tag"], table["images"])) == {"review": 3, "remove": 1}
    assert at.selectbox(key="tags_current").value == "review"
    assert sorted(card_ids(at)) == [5, 6, 7]
    labels = [b.proto.label for b in at.get("download_button")]
    assert any("Download 'review' as CSV" in x for x in labels)
    assert any(x.startswith("label_issue (") for x in labels)
    at.button(key="tags_rm_all").click().run()
    with Project(root) as p:
        assert set(p.tags()["tag"]) == {"remove"}


def test_not_analyzed_project_shows_an_error(monkeypatch, tmp_path, digits_folder):
    from curator.importers import import_project

    raw = import_project(digits_folder["root"], tmp_path / "raw")
    raw.close()
    monkeypatch.setenv("CURATOR_PROJECT", str(tmp_path / "raw"))
    at = AppTest.from_file(str(APP_PATH), default_timeout=TIMEOUT).run()
    assert "not analyzed yet" in at.error[0].value


def test_overview_marks_undersampled_classes(monkeypatch, copy_project):
    root = copy_project()
    with Project(root) as p:
        with p.db:
            p.db.execute("UPDATE items SET label = '0' WHERE label = '2' AND item_id % 4 != 0")
    at = start(monkeypatch, root)
    caption = next(c.value for c in at.caption if "Undersampled" in c.value)
    assert caption.endswith(": 2")
    assert at.dataframe[0].value.set_index("class").loc["2", "undersampled"]


def test_label_quality_explains_a_large_margin(monkeypatch, copy_project):
    """Where the images barely predict the labels, the page says why so few are flagged (the
    same note analyze prints)."""
    import json

    root = copy_project()
    at = start(monkeypatch, root, "label_quality")
    assert not [i for i in at.info if "predict the given labels poorly" in i.value]
    manifest = json.loads((root / "curator.json").read_text())
    manifest["analysis"].update(label_error=0.4, label_margin=0.8)
    (root / "curator.json").write_text(json.dumps(manifest))
    at = start(monkeypatch, root, "label_quality")
    note = next(i.value for i in at.info if "predict the given labels poorly" in i.value)
    assert "40%" in note and "over 0.80" in note
