"""The hover map in a real browser (Debian chromium, Playwright): hovering a point shows its
image (>= 96 px, served by the app) with its label and issues next to the cursor; a box
selection still narrows the grid; nothing is requested from another host."""

from __future__ import annotations

import re
import time
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest

from conftest import CHROMIUM, box_drag, explorer_tab

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"Debian chromium not installed at {CHROMIUM}"),
]

# pixel position (in the component frame) of the first point of the first trace, and its id
POINT = """() => {
  const gd = document.getElementById('plot');
  if (!gd || !gd._fullData || !gd._fullLayout || !gd.querySelector('canvas')) return null;
  const t = gd._fullData[0], xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
  const k = Math.floor(t.x.length / 2);
  return {x: xa._offset + xa.d2p(t.x[k]), y: ya._offset + ya.d2p(t.y[k]), id: t.customdata[k],
          points: gd._fullData.reduce((s, tr) => s + tr.x.length, 0)};
}"""

TIP = """() => {
  const tip = document.getElementById('tip'), img = document.getElementById('tipimg');
  return {shown: tip.style.display === 'block', item: tip.dataset.item, text: tip.innerText,
          width: img.getBoundingClientRect().width, natural: img.naturalWidth, complete: img.complete,
          left: parseFloat(tip.style.left), top: parseFloat(tip.style.top)};
}"""


def test_hover_shows_the_image_and_box_selection_still_narrows_the_grid(copy_project):
    root = copy_project()
    n_points = int(np.isfinite(np.load(root / "arrays" / "projection.npy")).all(axis=1).sum())
    with explorer_tab(root) as (server, tab, requests):
        tab.goto(f"{server.url}/data-quality?hover=1")
        frame = None
        deadline = time.monotonic() + 180
        point = None
        while time.monotonic() < deadline and point is None:
            for f in tab.frames:
                if "curator_hover_map" in f.url:
                    frame = f
                    try:
                        point = f.evaluate(POINT)
                    except Exception:
                        point = None
            tab.wait_for_timeout(250)
        assert point and point["points"] == n_points, point
        box = tab.locator("iframe[title*='curator_hover_map']").first.bounding_box()
        tab.mouse.move(box["x"] + point["x"] + 3, box["y"] + point["y"] + 3)
        tab.mouse.move(box["x"] + point["x"], box["y"] + point["y"])
        frame.wait_for_function("() => { const i = document.getElementById('tipimg');"
                                " return document.getElementById('tip').style.display === 'block' && i.complete"
                                " && i.naturalWidth > 0 && document.getElementById('tiptext').innerText.includes('·'); }",
                                timeout=30_000)
        tip = frame.evaluate(TIP)
        item = int(tip["item"])
        assert tip["width"] >= 96 and tip["natural"] >= 96
        from curator.explorer import data as D

        d = D.load(root)
        assert f"#{item}" in tip["text"] and d.labels[item] in tip["text"]
        for info in d.item_issues.get(item, []):
            assert info.issue in tip["text"]
        # next to the cursor
        assert abs(tip["left"] - point["x"]) < 200 and abs(tip["top"] - point["y"]) < 250

        # box-select the left half: the grid narrows to the selection
        box_drag(tab, frame.locator(".nsewdrag").first.bounding_box(), 0.02, 0.02, 0.5, 0.98)
        tab.wait_for_function("() => / selected in the 2D map/.test(document.body.innerText)", timeout=60_000)
        m = re.search(r"([\d,]+) of ([\d,]+) images in view · ([\d,]+) selected", tab.locator("body").inner_text())
        assert m and 0 < int(m.group(1).replace(",", "")) < int(m.group(2).replace(",", ""))
    hosts = {urlsplit(u).hostname for u in requests if urlsplit(u).scheme in ("http", "https", "ws", "wss")}
    assert hosts <= {"127.0.0.1"}, sorted(u for u in requests if urlsplit(u).hostname != "127.0.0.1")
    assert any("/_curator/thumb/" in u for u in requests) and any(u.endswith("/_curator/plotly.min.js") for u in requests)
