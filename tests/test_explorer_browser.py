"""A real browser (Debian chromium driven by Playwright) against `curator visualize`:
box-select a region of the 2D map, see the grid narrow to exactly the points in the box, tag
an image and find the tag in `curator export PROJECT --tag T`."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import CHROMIUM, CHROMIUM_ARGS, Explorer, box_drag

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason=f"Debian chromium not installed at {CHROMIUM} (apt-get install chromium); browser test skipped",
)

PLOT_READY = """(n) => {
  for (const gd of document.querySelectorAll('.js-plotly-plot')) {
    const fd = gd._fullData;
    if (!fd || !fd.length || fd[0].type !== 'scattergl') continue;
    const pts = fd.reduce((s, t) => s + (t.x ? t.x.length : 0), 0);
    if (pts >= n && gd.querySelector('canvas') && gd._fullLayout) return true;
  }
  return false;
}"""

GRID = """() => {
  const txt = [...document.querySelectorAll('[data-testid="stMarkdownContainer"]')]
      .map(e => e.innerText).find(t => / images in view/.test(t)) || '';
  const imgs = [...document.querySelectorAll('.cur-card img')];
  const stale = document.querySelectorAll('[data-stale="true"] .cur-card').length;
  const ids = [...document.querySelectorAll('.cur-card .cur-hd b')].map(b => parseInt(b.innerText.slice(1)));
  return {txt, ids, ready: imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0) && !stale};
}"""

# data coordinates of a pixel box inside the scattergl plot area
BOX_TO_DATA = """([x0, y0, x1, y1]) => {
  const gd = [...document.querySelectorAll('.js-plotly-plot')].find(g => g._fullData && g._fullData[0].type === 'scattergl');
  const r = gd.querySelector('.nsewdrag').getBoundingClientRect();
  const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
  return [xa.p2d(x0 - r.left), xa.p2d(x1 - r.left), ya.p2d(y1 - r.top), ya.p2d(y0 - r.top)];
}"""


def _wait_grid(page, previous: str | None, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    state = {}
    while time.monotonic() < deadline:
        state = page.evaluate(GRID)
        if state["txt"] and state["ready"] and state["txt"] != previous:
            return state
        page.wait_for_timeout(50)
    raise AssertionError(f"grid did not update: {state}")


def test_box_select_then_tag_reaches_export(copy_project):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (python) is not installed")
    root = copy_project()
    projection = np.load(root / "arrays" / "projection.npy")
    n_points = int(np.isfinite(projection).all(axis=1).sum())
    with Explorer(root) as server, sync_api.sync_playwright() as p:
        url = server.url
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
            page.goto(f"{url}/data-quality")
            page.wait_for_function(PLOT_READY, arg=n_points, timeout=120_000)
            before = _wait_grid(page, None)
            assert before["txt"].startswith(f"{len(projection):,} of {len(projection):,} images in view")

            # box-select the left half of the map
            area = page.locator(".js-plotly-plot .nsewdrag").first.bounding_box()
            x0, y0, x1, y1 = box_drag(page, area, 0.02, 0.02, 0.5, 0.98)
            after = _wait_grid(page, before["txt"])
            xmin, xmax, ymin, ymax = page.evaluate(BOX_TO_DATA, [x0, y0, x1, y1])
            inside = ((projection[:, 0] >= xmin) & (projection[:, 0] <= xmax)
                      & (projection[:, 1] >= ymin) & (projection[:, 1] <= ymax))
            n_in = int(inside.sum())
            assert 0 < n_in < n_points
            m = re.match(r"([\d,]+) of [\d,]+ images in view · ([\d,]+) selected in the 2D map", after["txt"])
            assert m, after["txt"]
            # plotly's box test and ours may disagree on a point lying exactly on the edge
            assert abs(int(m.group(1).replace(",", "")) - n_in) <= 2, (after["txt"], n_in)
            assert set(after["ids"]) <= set(np.nonzero(inside)[0].tolist())
            assert after["ids"] != before["ids"]

            # download the selection as CSV in the export schema
            with page.expect_download(timeout=60_000) as info:
                page.get_by_role("button", name=re.compile(r"^Download view as CSV")).click()
            csv = pd.read_csv(info.value.path())
            assert list(csv.columns) == ["item_id", "path", "label", "issue", "score", "severity", "suggested_label",
                                         "group_id", "keep"]
            assert set(csv["item_id"]) <= set(np.nonzero(inside)[0].tolist()) and len(set(csv["item_id"])) >= len(after["ids"])

            # tag the first image of the narrowed grid
            target = after["ids"][0]
            page.locator(f".st-key-dq_pick_{target} label").click()
            page.wait_for_function("() => /(^|\\n)1 picked · /.test(document.body.innerText)", timeout=60_000)
            tag_input = page.locator(".st-key-dq_tag input")
            tag_input.fill("browser-remove")
            tag_input.press("Enter")
            page.wait_for_timeout(300)
            page.locator(".st-key-dq_tag_add button").click()
            page.wait_for_function("() => document.body.innerText.includes('Added tag')", timeout=60_000)
        finally:
            browser.close()
    assert server.proc.returncode == 0

    out = subprocess.run([sys.executable, "-m", "curator.cli", "export", str(root), "--tag", "browser-remove"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    frame = pd.read_csv(io.StringIO(out.stdout))
    assert list(frame.columns[:3]) == ["item_id", "path", "label"]
    assert set(frame["item_id"]) == {target}
