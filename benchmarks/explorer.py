"""Explorer speed on a large project: time from navigation to the drawn 2D plot, and from
box-select mouse-up to the updated image grid, in a real browser (Debian chromium).

    python benchmarks/explorer.py                      # 70,000 images, project cached in bench-out/
    python benchmarks/explorer.py --n 20000 --shots bench-out/explorer-shots

The project is generated, not analyzed: tiny 8×8 PNGs (scikit-learn digits with noise) are
written to disk and the store is filled directly — items (Project.create), metrics, issues,
tags tables and the arrays analyze writes (projection, neighbors, label_proba, embeddings) —
so the measurement is about the explorer, not about analysis. Targets: plot < 5 s, selection
answered < 2 s.

    python benchmarks/explorer.py --projections 1797,20000,70000   # per-method map time

``--projections`` times each projector method (UMAP, t-SNE, PCA at their defaults, one process
each so every figure includes its imports and JIT) on synthetic clustered unit vectors (a
384-dimensional mixture of 10 Gaussian clusters, like the CNN + pixel features), with the wall
and CPU seconds and ``uptime`` beside each figure.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


# ------------------------------------------------------------------------------------ project
def make_project(root: Path, n: int, seed: int = 0) -> Path:
    """A synthetic 'analyzed' project of n tiny images with planted issues."""
    from PIL import Image
    from sklearn.datasets import load_digits

    from curator.project import ItemRecord, Project
    from curator.store import METRIC_COLUMNS, atomic_save_npy, transaction

    rng = np.random.default_rng(seed)
    digits = load_digits()
    src = np.clip(np.rint(digits.images * 255 / 16), 0, 255).astype(np.uint8)
    pick = rng.integers(0, len(src), n)
    labels = digits.target[pick].astype(int)
    images = np.clip(src[pick].astype(np.int16) + rng.integers(-12, 13, (n, 8, 8)), 0, 255).astype(np.uint8)
    dark = rng.choice(n, n // 200, replace=False)
    images[dark] = (images[dark] * 0.12).astype(np.uint8)
    rest = np.setdiff1d(np.arange(n), dark)
    bright = rng.choice(rest, n // 200, replace=False)
    images[bright] = (images[bright] * 0.15 + 215).astype(np.uint8)
    flips = rng.choice(np.setdiff1d(rest, bright), n // 40, replace=False)
    given = labels.copy()
    given[flips] = (labels[flips] + rng.integers(1, 10, len(flips))) % 10

    t = time.perf_counter()

    def build(staging: Path):
        records = []
        for c in range(10):
            (staging / "images" / str(c)).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            rel = f"images/{given[i]}/{i:06d}.png"
            Image.fromarray(images[i]).save(staging / rel, compress_level=1)
            records.append(ItemRecord(path=str(root / rel), location=rel, label=str(given[i])))
        return records

    project = Project.create(root, build, source="synthetic benchmark", overwrite=True)
    print(f"  wrote {n:,} images in {time.perf_counter() - t:.1f} s")

    g = images.astype(np.float32) / 255
    cols = list(METRIC_COLUMNS)
    metrics = {
        "readable": np.ones(n, int), "error": [None] * n, "width": np.full(n, 8), "height": np.full(n, 8),
        "channels": np.ones(n, int), "file_size": rng.integers(90, 140, n), "brightness": g.mean((1, 2)),
        "brightness_high": np.percentile(g.reshape(n, -1), 99, axis=1), "brightness_low": np.percentile(g.reshape(n, -1), 5, axis=1),
        "contrast": g.std((1, 2)), "sharpness": np.abs(np.diff(g, axis=1)).mean((1, 2)) / np.maximum(g.std((1, 2)), 1e-3),
        "entropy": rng.normal(3.2, 0.3, n), "aspect_ratio": np.ones(n), "area": np.full(n, 64.0),
        "pixel_hash": [None] * n, "scan_key": [None] * n, "embed_key": [None] * n,
    }
    blank = [None] * n  # metrics the explorer does not show (e.g. fine_detail) stay empty
    rows = [(i, *[(v[i].item() if hasattr(v[i], "item") else v[i]) for v in (metrics.get(c, blank) for c in cols)]) for i in range(n)]

    # planted issues (scores in [0, 1], higher = worse)
    issue_rows = []
    for i in dark:
        issue_rows.append((int(i), "dark", float(rng.uniform(0.6, 1)), "severe", None, None, None))
    for i in bright:
        issue_rows.append((int(i), "bright", float(rng.uniform(0.6, 1)), "severe", None, None, None))
    blurry = rng.choice(rest, n // 300, replace=False)
    for i in blurry:
        issue_rows.append((int(i), "blurry", float(rng.uniform(0.3, 1)), "moderate", None, None, None))
    group = 0
    dup_pool = rng.permutation(np.setdiff1d(rest, np.concatenate([blurry, flips])))[: n // 50]
    for k in range(0, len(dup_pool) - 2, 3):
        group += 1
        kind = "exact_duplicate" if group % 4 == 0 else "near_duplicate"
        for j, i in enumerate(dup_pool[k : k + 3]):
            issue_rows.append((int(i), kind, float(rng.uniform(0.9, 1)), "moderate", None, group, int(j == 0)))
    for i in flips:
        issue_rows.append((int(i), "label_issue", float(rng.uniform(0.2, 1)), "severe" if rng.random() < 0.5 else "moderate",
                           str(labels[i]), None, None))
    outliers = rng.choice(rest, n // 500, replace=False)
    for i in outliers:
        issue_rows.append((int(i), "outlier", float(rng.uniform(3, 8)), "moderate", None, None, None))
    issue_rows = list({(r[0], r[1]): r for r in issue_rows}.values())

    with transaction(project.db) as c:
        c.executemany(f"INSERT OR REPLACE INTO metrics(item_id, {', '.join(cols)}) VALUES ({', '.join('?' * (len(cols) + 1))})", rows)
        c.execute("DELETE FROM issues")
        c.executemany("INSERT INTO issues(item_id, issue, score, severity, suggested_label, group_id, keep) VALUES (?,?,?,?,?,?,?)",
                      issue_rows)

    # arrays: a 2D map with one blob per (true) class, neighbours on it, probabilities, embeddings
    centers = np.stack([np.cos(np.arange(10) * 2 * np.pi / 10), np.sin(np.arange(10) * 2 * np.pi / 10)], 1) * 6
    xy = (centers[labels] + rng.normal(0, 1.1, (n, 2))).astype(np.float32)
    from sklearn.neighbors import NearestNeighbors

    nn = NearestNeighbors(n_neighbors=16).fit(xy).kneighbors(xy, return_distance=False)[:, 1:].astype(np.int32)
    proba = rng.dirichlet(np.ones(10) * 0.3, n).astype(np.float32)
    proba[np.arange(n), labels] += 2.0
    proba /= proba.sum(1, keepdims=True)
    emb = np.concatenate([xy, rng.normal(0, 0.3, (n, 30)).astype(np.float32)], axis=1).astype(np.float32)
    atomic_save_npy(project.array_path("projection.npy"), xy)
    atomic_save_npy(project.array_path("neighbors.npy"), nn)
    atomic_save_npy(project.array_path("label_proba.npy"), proba)
    atomic_save_npy(project.array_path("embeddings-synthetic.npy"), emb)
    counts: dict = {}
    for r in issue_rows:
        counts[r[1]] = counts.get(r[1], 0) + 1
    project.manifest["analysis"] = {
        "backbone": "synthetic", "backbone_key": "synthetic", "embeddings_file": "embeddings-synthetic.npy",
        "embedding_dim": int(emb.shape[1]), "projection": "synthetic", "items": n, "issues": counts, "timings": {},
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "label_proba_classes": [str(c) for c in range(10)],
    }
    project.save_manifest()
    project.close()
    return root


# ------------------------------------------------------------------------------------ browser
PLOT_READY_JS = """(n) => {
  for (const gd of document.querySelectorAll('.js-plotly-plot')) {
    const fd = gd._fullData;
    if (!fd || !fd.length || fd[0].type !== 'scattergl') continue;
    const pts = fd.reduce((s, t) => s + (t.visible === true && t.x ? t.x.length : 0), 0);
    const canvas = gd.querySelector('canvas.gl-canvas-context') || gd.querySelector('canvas');
    if (pts >= n && canvas && gd._fullLayout && !gd._transitioning) return true;
  }
  return false;
}"""

GRID_STATE_JS = """() => {
  const txt = [...document.querySelectorAll('[data-testid="stMarkdownContainer"]')]
      .map(e => e.innerText).find(t => / images in view/.test(t)) || '';
  const imgs = [...document.querySelectorAll('.cur-card img')];
  const running = false;  // the map may be re-registered after the grid; only the grid counts
  const stale = document.querySelectorAll('[data-stale="true"] .cur-card').length
      + [...document.querySelectorAll('[data-stale="true"] [data-testid="stMarkdownContainer"]')]
          .filter(e => / images in view/.test(e.innerText)).length;
  const loaded = imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0);
  const first = (document.querySelector('.cur-card .cur-hd b') || {}).innerText || '';
  return {txt, n: imgs.length, loaded, running, stale, first};
}"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(root: Path, port: int) -> subprocess.Popen:
    import urllib.request

    proc = subprocess.Popen([sys.executable, "-m", "curator.cli", "visualize", str(root), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.2)
        if proc.poll() is not None:
            raise RuntimeError(proc.stdout.read())
    raise RuntimeError("server did not start")


def wait_grid_settled(page, before: str | None, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = page.evaluate(GRID_STATE_JS)
        if st["txt"] and st["txt"] != before and st["loaded"] and not st["running"] and not st["stale"]:
            return st
        page.wait_for_timeout(20)
    raise TimeoutError(f"grid did not update (last state {st})")


HOVER_POINT_JS = """(k) => {
  const gd = document.getElementById('plot');
  if (!gd || !gd._fullData || !gd._fullLayout || !gd.querySelector('canvas')) return null;
  const t = gd._fullData.reduce((a, b) => (b.x.length > a.x.length ? b : a)), xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
  const i = Math.floor(t.x.length * k) % t.x.length;
  return {x: xa._offset + xa.d2p(t.x[i]), y: ya._offset + ya.d2p(t.y[i]),
          points: gd._fullData.reduce((s, tr) => s + tr.x.length, 0)};
}"""
HOVER_TIP_JS = """(prev) => { const t = document.getElementById('tip'), i = document.getElementById('tipimg');
  return t.style.display === 'block' && t.dataset.item !== prev && i.complete && i.naturalWidth > 0
         && document.getElementById('tiptext').innerText.includes('·') ? t.dataset.item : null; }"""


def measure_hover(page, url: str, n_points: int, hovers: int = 5) -> dict:
    """The hover map (``?hover=1``): time to the drawn map, then from mouse move to the image
    and card shown next to the cursor (median of ``hovers`` points, each a new item)."""
    t0 = time.perf_counter()
    page.goto(f"{url}/data-quality?hover=1")
    frame, point, deadline = None, None, time.monotonic() + 180
    while point is None or point["points"] < n_points:
        if time.monotonic() > deadline:
            raise TimeoutError("hover map not drawn")
        for f in page.frames:
            if "curator_hover_map" in f.url:
                frame = f
                try:
                    point = f.evaluate(HOVER_POINT_JS, 0.5)
                except Exception:
                    point = None
        page.wait_for_timeout(20)
    out = {"hover_map_drawn_s": round(time.perf_counter() - t0, 3)}
    box = page.locator("iframe[title*='curator_hover_map']").first.bounding_box()
    latencies, prev = [], None
    for k in range(hovers):
        pt = frame.evaluate(HOVER_POINT_JS, (k + 1) / (hovers + 1))
        page.mouse.move(box["x"] + pt["x"] + 2, box["y"] + pt["y"] + 2)
        t1 = time.perf_counter()
        page.mouse.move(box["x"] + pt["x"], box["y"] + pt["y"])
        handle = frame.wait_for_function(HOVER_TIP_JS, arg=prev, timeout=30_000, polling="raf")
        latencies.append(time.perf_counter() - t1)
        prev = handle.json_value()
    out["hover_preview_median_s"] = round(float(np.median(latencies)), 3)
    out["hover_preview_max_s"] = round(float(np.max(latencies)), 3)
    return out


def measure(root: Path, n_points: int, shots: Path | None, port: int | None = None) -> dict:
    from playwright.sync_api import sync_playwright

    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_server(root, port)
    results: dict = {}
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1500, "height": 1100})
            for run in ("cold", "warm"):
                t0 = time.perf_counter()
                page.goto(f"{url}/data-quality")
                page.wait_for_function(PLOT_READY_JS, arg=n_points, timeout=120_000, polling="raf")
                results[f"plot_drawn_{run}_s"] = round(time.perf_counter() - t0, 3)
                state = wait_grid_settled(page, None)
                results[f"page_settled_{run}_s"] = round(time.perf_counter() - t0, 3)
            if shots:
                page.screenshot(path=str(shots / "data_quality_before_select.png"))
            # box-select the middle-right part of the map
            drag = page.locator(".js-plotly-plot .nsewdrag").first
            box = drag.bounding_box()
            x0, y0 = box["x"] + box["width"] * 0.55, box["y"] + box["height"] * 0.25
            x1, y1 = box["x"] + box["width"] * 0.85, box["y"] + box["height"] * 0.6
            page.mouse.move(x0, y0)
            page.mouse.down()
            for k in range(1, 9):
                page.mouse.move(x0 + (x1 - x0) * k / 8, y0 + (y1 - y0) * k / 8)
            t1 = time.perf_counter()
            page.mouse.up()
            after = wait_grid_settled(page, state["txt"])
            results["selection_answered_s"] = round(time.perf_counter() - t1, 3)
            results["grid_before"] = state["txt"].split("\n")[0]
            results["grid_after"] = after["txt"].split("\n")[0]
            results.update(measure_hover(page, url, n_points))
            if shots:
                page.screenshot(path=str(shots / "data_quality_after_select.png"))
                page.set_viewport_size({"width": 1500, "height": 2600})
                page.wait_for_timeout(1500)
                page.screenshot(path=str(shots / "data_quality_grid.png"))
                page.set_viewport_size({"width": 1500, "height": 1100})
                for name, path in (("overview", ""), ("label_quality", "label-quality"), ("tags", "tags")):
                    page.goto(f"{url}/{path}")
                    if name == "label_quality":
                        page.wait_for_function(PLOT_READY_JS, arg=n_points, timeout=120_000)
                        wait_grid_settled(page, None)
                    else:
                        page.wait_for_timeout(4000)
                    page.screenshot(path=str(shots / f"{name}.png"))
            browser.close()
    finally:
        os.killpg(server.pid, signal.SIGINT)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
    return results


# ------------------------------------------------------------------------------------ projections
def clustered_vectors(n: int, dim: int = 384, clusters: int = 10, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors around ``clusters`` random centres (noise comparable to the spread of real
    embeddings: neighbours mostly, not always, share the centre)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim)).astype(np.float32)
    labels = rng.integers(0, clusters, n)
    x = centres[labels] + rng.normal(scale=1.2, size=(n, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x, labels


_ONE_MAP = """
import json, os, resource, sys, time
sys.path.insert(0, {repo!r})
import numpy as np
from benchmarks.explorer import clustered_vectors
from curator import projector as P
x, y = clustered_vectors({n})
t = time.perf_counter()
coords = P.compute_map(P.MapSpec(method={method!r}), x)
wall = time.perf_counter() - t
ru = resource.getrusage(resource.RUSAGE_SELF)
acc = P.map_knn_accuracy(coords, y) if {n} <= 20000 else None
print(json.dumps({{"wall_s": round(wall, 2), "process_cpu_s": round(ru.ru_utime + ru.ru_stime, 1), "map_10nn_acc": acc}}))
"""


def time_projections(sizes: list[int], methods=("pca", "umap", "tsne"), timeout: float = 3600) -> list[dict]:
    """Time every method at every size, each in a fresh process (imports and JIT included)."""
    rows = []
    for n in sizes:
        for method in methods:
            load = os.getloadavg()[0]
            proc = subprocess.run([sys.executable, "-c", _ONE_MAP.format(repo=str(REPO), n=n, method=method)],
                                  capture_output=True, text=True, timeout=timeout)
            if proc.returncode != 0:
                rows.append({"n": n, "method": method, "error": proc.stderr.strip().splitlines()[-1:]})
            else:
                rows.append({"n": n, "method": method, **json.loads(proc.stdout.strip().splitlines()[-1]),
                             "load_before": round(load, 2), "load_after": round(os.getloadavg()[0], 2)})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--projections", default=None, help="comma-separated sizes: time each map method instead")
    ap.add_argument("--n", type=int, default=70_000, help="images (default 70,000)")
    ap.add_argument("--dir", type=Path, default=REPO / "bench-out", help="where the generated project is kept")
    ap.add_argument("--rebuild", action="store_true", help="regenerate the project even if it exists")
    ap.add_argument("--shots", type=Path, default=None, help="folder for screenshots")
    ap.add_argument("--port", type=int, default=None)
    args = ap.parse_args()
    if args.projections:
        time_projections([int(v) for v in args.projections.split(",")])
        return 0
    if not Path(CHROMIUM).exists():
        print(f"{CHROMIUM} not found: apt-get install chromium", file=sys.stderr)
        return 2
    root = args.dir / f"explorer-{args.n}"
    if args.rebuild or not (root / "curator.json").exists() or "analysis" not in json.loads((root / "curator.json").read_text()):
        print(f"generating a {args.n:,}-image project in {root} …")
        t = time.perf_counter()
        make_project(root, args.n)
        print(f"  done in {time.perf_counter() - t:.1f} s")
    if args.shots:
        args.shots.mkdir(parents=True, exist_ok=True)
    n_points = int(np.isfinite(np.load(root / "arrays" / "projection.npy")).all(axis=1).sum())
    res = measure(root, n_points, args.shots, args.port)
    res["images"] = args.n
    print(json.dumps(res, indent=2))
    ok = res["plot_drawn_cold_s"] < 5 and res["selection_answered_s"] < 2
    print(f"hover map drawn: {res['hover_map_drawn_s']:.2f} s; image on hover: {res['hover_preview_median_s']:.3f} s median, "
          f"{res['hover_preview_max_s']:.3f} s max")
    print(f"plot drawn: {res['plot_drawn_cold_s']:.2f} s cold / {res['plot_drawn_warm_s']:.2f} s warm (target < 5 s); "
          f"selection answered: {res['selection_answered_s']:.2f} s (target < 2 s) -> {'OK' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
