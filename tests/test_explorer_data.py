"""The explorer's Streamlit-free data layer: loading, filters, IQR bands, export rows,
duplicate groups, thumbnails and the cache keys."""

from __future__ import annotations

import numpy as np
import pytest

from curator import Project
from curator.explorer import data as D
from curator.explorer import figures
from curator.issue_types import EXPORT_COLUMNS


@pytest.fixture(scope="module")
def d(analyzed_project) -> D.ExplorerData:
    return D.load(analyzed_project)


def test_loads_everything_aligned(d, analyzed_project):
    with Project(analyzed_project) as p:
        n = len(p)
        issues = p.issues()
    assert d.n == n and d.projection.shape == (n, 2) and d.neighbors.shape[0] == n
    assert set(d.label_values) == {str(c) for c in range(10)}
    for t, ids in d.issue_ids.items():
        assert sorted(issues.loc[issues["issue"] == t, "item_id"]) == ids.tolist()
    assert d.flagged.sum() == issues["item_id"].nunique()
    # unreadable items: no projection, no metrics, flagged
    bad = d.issue_ids["unreadable"]
    assert len(bad) == 3 and not d.readable[bad].any() and np.isnan(d.projection[bad]).all()
    assert D.load(analyzed_project) is d  # one load per process and analysis version


def test_metrics_and_iqr_bands(d):
    for key in d.available_metrics():
        v = d.metric(key)
        assert v.shape == (d.n,)
    assert "uniqueness" in d.available_metrics() and "label_confidence" in d.available_metrics()
    # the colour metrics that dark and low_information ask are there to sort and filter by
    assert {"max_channel_high", "colour_contrast"} <= set(d.available_metrics())
    uniq = d.metric("uniqueness")
    exact = d.issue_ids["exact_duplicate"]
    assert np.nanmax(uniq[exact]) < 1e-3 < np.nanmedian(uniq)  # identical images: nothing unique about them
    bright = d.metric("brightness")
    bands = D.iqr_bands(bright)
    assert bands.severe_lo < bands.moderate_lo < bands.q1 <= bands.q3 < bands.moderate_hi < bands.severe_hi
    level = bands.level(bright)
    assert level[d.issue_ids["bright"]].min() == 2 and level[d.issue_ids["dark"]].min() == 2
    assert (level[~d.readable] == -1).all()
    assert D.iqr_bands(np.array([1.0, np.nan])) is None


def test_view_mask_filters_combine(d):
    everything = d.view_mask()
    assert everything.all()
    ones = d.view_mask(classes=["1"])
    assert (d.labels[ones] == "1").all() and ones.sum() == (d.labels == "1").sum()
    dark_or_bright = d.view_mask(issues=["dark", "bright"])
    assert set(np.nonzero(dark_or_bright)[0]) == set(d.issue_ids["dark"]) | set(d.issue_ids["bright"])
    clean = d.view_mask(issues=[D.NO_ISSUE])
    assert not d.flagged[clean].any() and clean.sum() == d.n - d.flagged.sum()
    sel = np.array([0, 5, 10, 99999])
    assert np.nonzero(d.view_mask(selection=sel))[0].tolist() == [0, 5, 10]
    severe = d.view_mask(metric="brightness", outliers="severe")
    assert set(d.issue_ids["dark"]) <= set(np.nonzero(severe)[0])
    rng = d.view_mask(metric="brightness", lo=0.2, hi=0.4)
    v = d.metric("brightness")[rng]
    assert ((v >= 0.2) & (v <= 0.4)).all()
    assert d.view_mask(path_contains="really_a_7").sum() == 1
    assert d.view_mask(tagged_ids=np.array([3, 4])).sum() == 2
    both = d.view_mask(classes=["1"], issues=["unreadable"])
    assert set(np.nonzero(both)[0]) == set(d.issue_ids["unreadable"])


def test_sorting_puts_missing_values_last(d):
    ids = d.sorted_ids(np.ones(d.n, bool), "brightness")
    v = d.metric("brightness")[ids]
    finite = np.isfinite(v)
    assert finite[: finite.sum()].all() and np.all(np.diff(v[finite]) >= 0)
    desc = d.sorted_ids(np.ones(d.n, bool), "brightness", descending=True)
    assert desc[0] in d.issue_ids["bright"] and set(desc[-3:]) == set(d.issue_ids["unreadable"])


def test_export_rows_match_the_export_schema(d, analyzed_project):
    flagged = np.nonzero(d.flagged)[0]
    rows = d.export_rows(flagged)
    assert list(rows.columns) == list(EXPORT_COLUMNS)
    with Project(analyzed_project) as p:
        full = p.export_frame()
    key = ["item_id", "issue"]
    a = rows.sort_values(key).reset_index(drop=True)
    b = full.sort_values(key).reset_index(drop=True)
    assert a.equals(b)
    clean = np.nonzero(~d.flagged)[0][:2]
    mixed = d.export_rows([clean[0], flagged[0], clean[1]])
    assert mixed["item_id"].tolist()[0] == clean[0] and mixed["issue"].isna().sum() == 2  # view order, blank issue rows
    only = d.export_rows(flagged, issues=["label_issue"])
    assert set(only["issue"]) == {"label_issue"} and only["suggested_label"].notna().all()


def test_duplicate_groups_have_one_keeper_first(d):
    groups = d.duplicate_groups()
    assert groups and {g.issue for g in groups} == {"exact_duplicate", "near_duplicate"}
    for g in groups:
        assert len(g.item_ids) >= 2 and g.keep[0] and sum(g.keep) == 1
    some = groups[0].item_ids[1]
    assert [g.group_id for g in d.duplicate_groups(np.array([some]))] == [groups[0].group_id]


def test_summaries(d):
    table = d.class_table()
    assert table["images"].sum() == d.n and not table["undersampled"].any()
    pairs = d.label_pairs()
    assert pairs["issues"].sum() == d.issue_counts["label_issue"]
    assert ("1", "7") in set(zip(pairs["given"], pairs["suggested"]))  # the planted flip
    w, h = d.median_size()
    assert (w, h) == (32.0, 32.0)
    i = int(np.nonzero(d.readable)[0][0])
    nb = d.similar(i)
    assert len(nb) > 0 and i not in nb


def test_thumbnails_and_placeholders(d):
    i = int(np.nonzero(d.readable)[0][0])
    data, mime = D.thumbnail(d, i)
    assert mime == "image/png" and data[:8] == b"\x89PNG\r\n\x1a\n"
    from PIL import Image
    import io

    assert max(Image.open(io.BytesIO(data)).size) == D.THUMB_PX
    bad = int(d.issue_ids["unreadable"][0])
    assert D.thumbnail(d, bad)[0] == D.placeholder_png("unreadable")
    assert D.thumbnail_bytes(d.root / "nope.png") is None


def test_figures(d):
    fig = figures.scatter(d, "class")
    assert figures.scatter(d, "class") is fig  # built once per analysis
    n_points = sum(len(t.x) for t in fig.data)
    assert n_points == int(np.isfinite(d.projection).all(axis=1).sum())
    assert all(t.type == "scattergl" for t in fig.data)
    ids = np.concatenate([np.asarray(t.customdata) for t in fig.data])
    assert len(np.unique(ids)) == n_points
    lab = figures.scatter(d, "label")
    assert lab.data[-1].name.startswith("label issue") and len(lab.data[-1].x) == d.issue_counts["label_issue"]
    hist, bands = figures.histogram(d, "brightness", d.view_mask(classes=["1"]))
    assert sum(hist["data"][0]["y"]) == np.isfinite(d.metric("brightness")).sum()
    assert sum(hist["data"][1]["y"]) == np.isfinite(d.metric("brightness")[d.labels == "1"]).sum()
    assert bands is not None and hist["layout"]["shapes"]


def test_cache_keys_follow_analysis_and_tags(copy_project):
    root = copy_project()
    v1, t1 = D.version_key(root), D.tags_version(root)
    with Project(root) as p:
        p.add_tag([1, 2], "remove")
        assert D.tags_version(root) != t1
        assert D.version_key(root) == v1  # tagging does not invalidate the analysis data
        p.manifest["analysis"]["finished"] = "2099-01-01T00:00:00Z"
        p.save_manifest()
    assert D.version_key(root) != v1
    assert D.read_tags(root)["item_id"].tolist() == [1, 2]
    D.write_tags(root, [2], "remove", remove=True)
    assert D.read_tags(root)["item_id"].tolist() == [1]


def test_undersampled_classes_are_marked(copy_project):
    root = copy_project()
    with Project(root) as p:
        with p.db:
            p.db.execute("UPDATE items SET label = '0' WHERE label = '2' AND item_id % 4 != 0")
    table = D.ExplorerData(root).class_table().set_index("class")
    assert table.loc["2", "undersampled"] and not table.drop(index="2")["undersampled"].any()
