"""The projector in the explorer (Streamlit AppTest): links that carry the view, switching the
algorithm and its parameters, colouring by any column, the warning before a slow map."""

from __future__ import annotations

import io
import json
import os
import re

import numpy as np
import pytest
from PIL import Image

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


# ------------------------------------------------------------------------------ hover map routes
def _asgi_get(app, path: str, host: str) -> tuple[int, dict, bytes]:
    import asyncio

    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": path, "headers": [(b"host", host.encode())]}
    asyncio.run(app(scope, receive, send))
    head = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return head["status"], {k.decode(): v.decode() for k, v in head["headers"]}, body


def test_hover_routes_serve_thumbnails_cards_and_plotly_behind_the_host_guard(root):
    from curator.explorer import data as D
    from curator.explorer.host_guard import LoopbackHostGuard
    from curator.explorer.previews import PreviewRoutes

    async def streamlit(scope, receive, send):  # stands in for Streamlit's app
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b"streamlit"})

    app = LoopbackHostGuard(PreviewRoutes(streamlit), 8611)
    ok = "127.0.0.1:8611"
    status, headers, body = _asgi_get(app, "/_curator/thumb/0", ok)
    assert status == 200 and headers["content-type"] == "image/png" and body.startswith(b"\x89PNG")
    assert max(Image.open(io.BytesIO(body)).size) >= 96
    d = D.load(root)
    flagged = int(d.issues["item_id"].iloc[0])
    status, _, body = _asgi_get(app, f"/_curator/item/{flagged}", ok)
    card = json.loads(body)
    assert status == 200 and card["label"] == d.labels[flagged] and card["issues"][0]["issue"] in set(d.issues["issue"])
    status, headers, body = _asgi_get(app, "/_curator/plotly.min.js", ok)
    assert status == 200 and b"plotly.js" in body[:200] and headers["content-type"].startswith("text/javascript")
    assert _asgi_get(app, f"/_curator/thumb/{d.n}", ok)[0] == 404
    assert _asgi_get(app, "/_curator/../curator.db", ok)[0] == 404
    assert _asgi_get(app, "/_curator/thumb/0", "evil.example:8611")[0] == 403  # same guard as the app
    assert _asgi_get(app, "/data-quality", ok)[2] == b"streamlit"  # everything else goes to Streamlit
