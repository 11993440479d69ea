"""The projector in a real browser (Debian chromium, Playwright) against `curator visualize`:
a link opens Data Quality with the t-SNE map coloured by brightness; clicking t-SNE redraws the
map and the URL follows; no request leaves 127.0.0.1."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest

from conftest import CHROMIUM, explorer_tab

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"Debian chromium not installed at {CHROMIUM}"),
]

# the scattergl map: its point count, first x values, whether a trace has a colour bar
MAP_STATE = """() => {
  for (const gd of document.querySelectorAll('.js-plotly-plot')) {
    const fd = gd._fullData;
    if (!fd || !fd.length || fd[0].type !== 'scattergl' || !gd.querySelector('canvas')) continue;
    return {points: fd.reduce((s, t) => s + (t.x ? t.x.length : 0), 0),
            x: Array.from(fd[0].x.slice(0, 5)),
            colorbar: fd.some(t => t.marker && t.marker.showscale),
            caption: ([...document.querySelectorAll('[data-testid="stMarkdownContainer"]')]
                      .map(e => e.innerText).find(t => t.startsWith('2D map')) || '')};
  }
  return null;
}"""


def wait_map(tab, check, timeout: float = 240) -> dict:
    deadline = time.monotonic() + timeout
    state = None
    while time.monotonic() < deadline:
        state = tab.evaluate(MAP_STATE)
        if state and check(state):
            return state
        tab.wait_for_timeout(200)
    raise AssertionError(f"map not as expected: {state}")


def test_link_view_and_switching_to_tsne(copy_project):
    root = copy_project()
    n_points = int(np.isfinite(np.load(root / "arrays" / "projection.npy")).all(axis=1).sum())
    with explorer_tab(root) as (server, tab, requests):
        # the contract: this link opens Data Quality with the t-SNE map coloured by brightness
        tab.goto(f"{server.url}/data-quality?projection=tsne&color=brightness")
        state = wait_map(tab, lambda s: s["points"] == n_points and s["caption"].startswith("2D map: t-SNE"))
        assert state["colorbar"] and "coloured by Brightness" in state["caption"]
        assert tab.locator("h1").first.inner_text().startswith("Data Quality")
        assert list(root.joinpath("arrays").glob("projection-tsne-*.npy"))

        # a fresh visit shows the default (PCA) map; clicking t-SNE redraws it and the URL follows
        tab.goto(f"{server.url}/data-quality")
        pca = wait_map(tab, lambda s: s["points"] == n_points and s["caption"].startswith("2D map: PCA"))
        for attempt in range(3):  # a click that lands while the page is still rerunning can be dropped
            tab.locator(".st-key-dq_map_method button", has_text="t-SNE").click()
            try:
                # the caption can be redrawn a moment before the chart: wait for both
                tsne = wait_map(tab, lambda s: s["caption"].startswith("2D map: t-SNE") and s["points"] == n_points
                                and s["x"] != pca["x"], timeout=60)
                break
            except AssertionError:
                if attempt == 2:
                    raise
        assert tsne["x"] != pca["x"]
        tab.wait_for_function("() => location.search.includes('projection=tsne')", timeout=60_000)
        query = parse_qs(urlsplit(tab.url).query)
        assert query["projection"] == ["tsne"] and "embedding" in query and "color" in query
    hosts = {urlsplit(u).hostname for u in requests if urlsplit(u).scheme in ("http", "https", "ws", "wss")}
    assert requests and hosts <= {"127.0.0.1"}, sorted(u for u in requests if urlsplit(u).hostname != "127.0.0.1")
