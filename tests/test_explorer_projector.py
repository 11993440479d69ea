"""The projector in the explorer (Streamlit AppTest): links that carry the view, switching the
algorithm and its parameters, colouring by any column, the warning before a slow map."""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pytest

from curator import projector as PJ
from curator.explorer import APP_PATH, page_path

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

TIMEOUT = 300


def open_page(root, name: str, query: dict | None = None, state: dict | None = None) -> AppTest:
    os.environ["CURATOR_PROJECT"] = str(root)
    at = AppTest.from_file(str(APP_PATH), default_timeout=TIMEOUT)
    at.run()
    at.switch_page(os.path.relpath(page_path(name), APP_PATH.parent))
    for k, v in (query or {}).items():
        at.query_params[k] = v
    for k, v in (state or {}).items():
        at.session_state[k] = v
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def map_figure(at) -> dict:
    for chart in at.get("plotly_chart"):
        fig = json.loads(chart.proto.spec)
        if fig.get("layout", {}).get("dragmode") == "select":
            return fig
    raise AssertionError("no 2D map on the page")


def map_caption(at) -> str:
    return next(m.value for m in at.markdown if m.value.startswith("**2D map**"))


@pytest.fixture
def root(copy_project, monkeypatch):
    r = copy_project()
    monkeypatch.setenv("CURATOR_PROJECT", str(r))
    return r


def test_link_opens_data_quality_with_tsne_coloured_by_brightness(root):
    at = open_page(root, "data_quality", {"projection": "tsne", "color": "brightness"})
    assert map_caption(at).startswith("**2D map**: t-SNE (perplexity=30)") and "coloured by Brightness" in map_caption(at)
    space = at.session_state["dq_map_space"]
    cached = root / "arrays" / PJ.MapSpec(method="tsne", space=space).file_name
    assert cached.exists()  # computed because it was missing, and kept for the next visit
    fig = map_figure(at)
    assert any(t.get("marker", {}).get("colorbar", {}).get("title", {}).get("text") == "Brightness" for t in fig["data"])
    # the URL now spells out the whole view, so a copied link reopens it
    q = {k: at.query_params[k] for k in at.query_params}
    assert q["projection"] == "tsne" and q["color"] == "brightness" and q["perplexity"] == "30" and q["embedding"] == space


def test_switching_projection_redraws_the_map(root):
    at = open_page(root, "data_quality")
    before = map_figure(at)
    assert map_caption(at).startswith("**2D map**: PCA")  # the fixture's default map
    at.session_state["dq_map_method"] = "pca"
    at.session_state["dq_map_pc1"], at.session_state["dq_map_pc2"] = 3, 4
    at.run()
    assert not at.exception
    assert "PCA (components=3/4)" in map_caption(at)
    after = map_figure(at)
    assert after["data"][0]["x"] != before["data"][0]["x"]
    assert at.query_params["components"] == "3,4"
    at.session_state["dq_map_method"] = "umap"
    at.session_state["dq_map_nn"] = 8
    at.run()
    assert "UMAP (n_neighbors=8, min_dist=0.1)" in map_caption(at)
    assert (root / "arrays" / PJ.MapSpec(space=at.session_state["dq_map_space"], n_neighbors=8).file_name).exists()


@pytest.mark.parametrize("color, legend", [("issue", "worst issue"), ("label", "given label"), ("class", "class")])
def test_colour_by_category(root, color, legend):
    at = open_page(root, "label_quality" if color == "label" else "data_quality", {"color": color})
    fig = map_figure(at)
    assert fig["layout"]["legend"]["title"]["text"] == legend
    names = [t["name"] for t in fig["data"]]
    if color == "issue":
        from curator.issue_types import ISSUE_TYPES

        assert any(n.split(" (")[0] in ISSUE_TYPES for n in names) and any(n.startswith("(no issue)") for n in names), names
    if color == "label":
        assert any(n.startswith("label issue") for n in names)


def test_colour_by_tag_follows_new_tags(root):
    from curator import Project

    with Project(root) as p:
        p.add_tag([0, 1, 2], "review")
    at = open_page(root, "data_quality", {"color": "tag"})
    names = [t["name"] for t in map_figure(at)["data"]]
    assert "review (3)" in names and any(n.startswith("(untagged)") for n in names)


def test_link_filters_and_unknown_values(root):
    at = open_page(root, "data_quality", {"class": ["3", "nine"], "color": "nonsense", "embedding": "clip",
                                          "projection": "mds", "metric": "contrast"})
    assert at.session_state["dq_classes"] == ["3"]  # a class the project lacks is dropped
    assert at.session_state["dq_metric"] == "contrast"
    assert at.session_state["dq_map_color"] == "class" and at.session_state["dq_map_method"] in PJ.METHODS
    m = re.search(r"\*\*([\d,]+)\*\* of [\d,]+ images in view", "\n".join(x.value for x in at.markdown))
    assert m and int(m.group(1)) == 30


def test_slow_map_waits_for_the_go_ahead(root, monkeypatch):
    monkeypatch.setattr(PJ, "SLOW_SECONDS", 0.0)
    at = open_page(root, "data_quality", {"projection": "tsne"})
    assert any("takes about" in w.value for w in at.warning)
    assert map_caption(at).startswith("**2D map**: PCA")  # the default map meanwhile
    space = at.session_state["dq_map_space"]
    assert not (root / "arrays" / PJ.MapSpec(method="tsne", space=space).file_name).exists()
    at.button(key="dq_map_start").click().run()
    assert not at.exception
    assert map_caption(at).startswith("**2D map**: t-SNE")
    assert np.isfinite(np.load(root / "arrays" / PJ.MapSpec(method="tsne", space=space).file_name)).any()
