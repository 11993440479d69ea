"""Scale benchmark: time and peak memory of analyze at 100k real files and of the dataset-level
stages on up to 1M synthetic embeddings. Prints numbers; not a test.

  # 100,000 small image files, imported and analyzed end to end in a fresh process
  python benchmarks/scale.py --files 100000 --workdir /tmp/scale [--engine local|ray]
  # the dataset-level stages alone on a random 5k / 50k of that project's items (fresh processes)
  python benchmarks/scale.py --stages /tmp/scale/project-100000-local --subsets 5000,50000
  # the dataset-level stages alone on synthetic clustered embeddings, 5k / 50k / 1M
  python benchmarks/scale.py --synthetic 5000,50000,1000000 --workdir /tmp/scale
  # approximate indexes against exact search on real embeddings
  python benchmarks/scale.py --ann /tmp/scale/project-100000-local/arrays/embeddings-efficientnet-lite0_96.npy

Images: scikit-learn's 8x8 digits upscaled to 32 px with a random shift, contrast and noise
(benchmarks/speed.py::make_images), mixed 4:1 with 32 px crops of scikit-learn's two sample
photos at a random position and scale (label = photo). Peak RSS is sampled from
/proc/PID/status (VmRSS and RssAnon, 0.2 s) and attributed to the stage analyze announced last
on stderr. With ``--engine ray`` the benchmark becomes a child subreaper (benchmarks/speed.py),
so the CPU-seconds of Ray's workers are counted and the whole process tree's RSS is sampled.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's curator, not an installed one
PER_IMAGE = "per-image"


def load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


# ---------------------------------------------------------------------------- images
def make_files(root: Path, n: int, seed: int = 0) -> None:
    """``n`` small PNGs: 4 of 5 upscaled digits (10 classes), 1 of 5 photo crops (2 classes)."""
    from PIL import Image
    from sklearn.datasets import load_digits, load_sample_images

    digits = load_digits()
    photos = load_sample_images().images
    rng = np.random.default_rng(seed)
    for i in range(n):
        if i % 5 == 4:
            k = int(rng.integers(len(photos)))
            side = int(rng.integers(32, 96))
            y, x = int(rng.integers(0, 427 - side)), int(rng.integers(0, 640 - side))
            crop = Image.fromarray(photos[k][y : y + side, x : x + side]).resize((32, 32), Image.BILINEAR)
            arr = np.clip(np.asarray(crop, np.float32) + rng.normal(0, 3, (32, 32, 3)), 0, 255).astype(np.uint8)
            label = f"photo{k}"
        else:
            j = int(rng.integers(len(digits.images)))
            img = Image.fromarray(np.clip(digits.images[j] * 16, 0, 255).astype(np.uint8)).resize((32, 32), Image.BILINEAR)
            arr = np.roll(np.asarray(img, dtype=np.float32), tuple(rng.integers(-2, 3, size=2)), axis=(0, 1))
            arr = np.clip(arr * rng.uniform(0.8, 1.2) + rng.normal(0, 4, arr.shape), 0, 255).astype(np.uint8)
            label = str(digits.target[j])
        p = root / label / f"{i:06d}.png"
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr).save(p)


# ---------------------------------------------------------------------------- measuring
class RssSampler:
    """Peak VmRSS of a process per stage, the stage being whatever ``stage`` says when sampled."""

    def __init__(self, pid: int, period: float = 0.2, first: str = PER_IMAGE):
        self.pid, self.period = pid, period
        self.stage = first
        self.peaks: dict[str, tuple[int, int]] = {}
        self.series: list[tuple[float, str, int]] = []
        self._stop = threading.Event()
        self._t0 = time.perf_counter()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _rss(self) -> tuple[int, int] | None:
        """(VmRSS, RssAnon) in bytes: RssAnon is the heap; the rest is file pages (memory maps)."""
        got = {}
        try:
            with open(f"/proc/{self.pid}/status") as f:
                for line in f:
                    if line.startswith(("VmRSS:", "RssAnon:")):
                        got[line.split(":")[0]] = int(line.split()[1]) * 1024
        except OSError:
            return None
        return (got["VmRSS"], got.get("RssAnon", 0)) if "VmRSS" in got else None

    def _run(self):
        while not self._stop.wait(self.period):
            rss = self._rss()
            if rss is None:
                continue
            stage = self.stage
            total, anon = self.peaks.get(stage, (0, 0))
            self.peaks[stage] = (max(total, rss[0]), max(anon, rss[1]))
            self.series.append((round(time.perf_counter() - self._t0, 1), stage, *rss))

    def stop(self):
        self._stop.set()
        self._thread.join()


def run_sampled(cmd: list, env: dict, stage_names: dict, first: str = PER_IMAGE) -> dict:
    """Run ``cmd``; wall, CPU-s of the child, and peak RSS per stage (stages read off stderr)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start_load = load()
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)
    sampler = RssSampler(proc.pid, first=first)
    err_lines = []

    def read_err():
        for line in proc.stderr:
            err_lines.append(line)
            for label, key in stage_names.items():
                if line.startswith(label + " …"):
                    sampler.stage = key

    reader = threading.Thread(target=read_err, daemon=True)
    reader.start()
    out = proc.stdout.read()
    proc.wait()
    reader.join()
    sampler.stop()
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        print("peaks so far:", {k: (gb(a), gb(b)) for k, (a, b) in sampler.peaks.items()}, flush=True)
        per_image_growth(sampler.series)
        raise RuntimeError(f"{' '.join(map(str, cmd[:4]))} failed ({proc.returncode}): {''.join(err_lines)[-1500:]}")
    return {"wall": wall, "cpu": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
            "maxrss": after.ru_maxrss * 1024, "peaks": sampler.peaks, "series": sampler.series, "stdout": out,
            "load_before": start_load, "load_after": load()}


def env_with_repo() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def gb(nbytes: float) -> str:
    return f"{nbytes / 2**30:.2f} GB"


# ---------------------------------------------------------------------------- end to end
def run_files(n: int, work: Path, engine: str, batch_size: int, extra: list) -> dict:
    from curator.stage_status import STAGES

    images, project = work / f"images-{n}", work / f"project-{n}-{engine}"
    if not (images / ".complete").exists():
        shutil.rmtree(images, ignore_errors=True)
        t = time.perf_counter()
        make_files(images, n)
        (images / ".complete").write_text(str(n))
        print(f"made {n} files in {time.perf_counter() - t:.0f} s (load {load()})", flush=True)
    shutil.rmtree(project, ignore_errors=True)
    env = env_with_repo()
    curator = [sys.executable, "-m", "curator.cli"]
    imp = run_sampled(curator + ["import", str(images), "--out", str(project)], env, {})
    print(f"import: {imp['wall']:.0f} s wall, {imp['cpu']:.0f} CPU-s, peak RSS {gb(imp['maxrss'])} "
          f"(load {imp['load_before']} -> {imp['load_after']})", flush=True)
    cmd = curator + ["analyze", str(project), "--batch-size", str(batch_size)]
    if engine != "local":  # the Ray engine's option; plain analyze is the local engine
        cmd += ["--engine", engine]
    cmd += extra
    labels = {label: key for key, label in STAGES}
    tree = None
    if engine == "ray":  # Ray's workers are no children of analyze: count them as speed.py does
        from speed import TreeRSS, become_subreaper, reap_orphans

        become_subreaper()
        tree = TreeRSS()
        tree.__enter__()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    r = run_sampled(cmd, env, labels)
    if tree is not None:
        reap_orphans()
        tree.__exit__(None, None, None)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        r["cpu"] = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        print(f"Ray: CPU-s including its reaped workers {r['cpu']:.0f}, peak RSS of the whole process tree "
              f"{gb(tree.peak)} (the per-stage peaks below are the driver's)", flush=True)
    per_image_growth(r["series"])
    manifest = json.loads((project / "curator.json").read_text())["analysis"]
    r["timings"] = manifest["timings"]
    r["issues"] = manifest["issues"]
    report_run(f"analyze {n} files, engine {engine}", n, r)
    (work / f"series-{n}-{engine}.json").write_text(json.dumps(r["series"]))
    return r


def per_image_growth(series: list) -> None:
    """RSS at each fifth of the per-image stage: flat if memory is bounded by the batch size."""
    rows = [row for row in series if row[1] == PER_IMAGE]
    if len(rows) < 5:
        return
    picks = [rows[int(f * (len(rows) - 1))] for f in (0.2, 0.4, 0.6, 0.8, 1.0)]
    print("per-image stage RSS at 20/40/60/80/100 % of its time: "
          + ", ".join(f"{gb(r[2])} (anon {gb(r[3])})" for r in picks), flush=True)


def report_run(title: str, n: int, r: dict) -> None:
    print(f"\n== {title}")
    print(f"wall {r['wall']:.0f} s, {n / r['wall']:.0f} img/s, {r['cpu']:.0f} CPU-s "
          f"({1000 * r['cpu'] / n:.2f} CPU-ms/img), peak RSS {gb(r['maxrss'])} "
          f"(load {r['load_before']} -> {r['load_after']})")
    print("timings:", json.dumps(r.get("timings", {})))
    if r.get("issues"):
        print("issues:", json.dumps(r["issues"]))
    for stage, (peak, anon) in r["peaks"].items():
        print(f"  peak RSS {stage:<12} {gb(peak)}  (anonymous {gb(anon)}, file-backed pages the rest)")
    print(flush=True)


# ---------------------------------------------------------------------------- dataset-level stages
def subset_arrays(project: Path, n: int, work: Path, seed: int = 0) -> Path:
    """A random ``n`` of an analyzed project's items as a folder of arrays (emb.npy,
    thumbs.npy memory-mappable, metrics.parquet, classes.json) for :func:`run_arrays`:
    import order groups images by class folder, so the first n would be a few classes."""
    from curator import Project

    root = work / f"subset-{project.name}-{n}"
    if (root / "classes.json").exists():
        return root
    root.mkdir(parents=True, exist_ok=True)
    p = Project(project)
    metrics = p.metrics()
    ids = np.sort(np.random.default_rng(seed).choice(len(metrics), size=min(n, len(metrics)), replace=False))
    sub = metrics.iloc[ids].reset_index(drop=True)
    sub["item_id"] = np.arange(len(ids))
    sub.to_parquet(root / "metrics.parquet")
    for name, src in (("emb.npy", np.load(p.array_path(p.analysis["embeddings_file"]), mmap_mode="r")),
                      ("thumbs.npy", p.thumbnails())):
        out = np.lib.format.open_memmap(root / name, mode="w+", dtype=src.dtype, shape=(len(ids), *src.shape[1:]))
        for a in range(0, len(ids), 20_000):
            out[a : a + 20_000] = src[ids[a : a + 20_000]]
        out.flush()
        del out
    (root / "classes.json").write_text(json.dumps(p.classes))
    return root


def run_stages(project: Path, projection: str, n: int, work: Path) -> dict:
    """The dataset-level stages (curator.stages.run_stages) on a random ``n`` of an analyzed
    project's items in a fresh process; nothing is written to the project."""
    return run_arrays(subset_arrays(project, n, work), projection)


# ---------------------------------------------------------------------------- synthetic
def make_synthetic(n: int, dim: int, root: Path, seed: int = 0, chunk: int = 20_000) -> dict:
    """Memory-mapped clustered embeddings (n, dim) float32 and thumbnails (n, 32, 32, 3), a
    metrics frame, and the planted outliers and label errors (item ids). 10 classes of 10
    clusters each; an item = its cluster's centre + a 16-dim within-cluster variation + noise,
    ReLU'd like a CNN's pooled features; 0.2 % outliers (sparse, no cluster), 1 % labels flipped.
    Thumbnails: the cluster's smooth colour pattern with noise."""
    rng = np.random.default_rng(seed)
    n_clusters, variation = 100, 16
    centres = rng.normal(0, 1, (n_clusters, dim)).astype(np.float32)
    basis = (rng.normal(0, 1, (n_clusters, variation, dim)) * 0.35).astype(np.float32)
    patterns = rng.integers(0, 256, (n_clusters, 4, 4, 3)).astype(np.float32)
    patterns = np.repeat(np.repeat(patterns, 8, axis=1), 8, axis=2)  # (C, 32, 32, 3)
    root.mkdir(parents=True, exist_ok=True)
    emb = np.lib.format.open_memmap(root / "emb.npy", mode="w+", dtype=np.float32, shape=(n, dim))
    thumbs = np.lib.format.open_memmap(root / "thumbs.npy", mode="w+", dtype=np.uint8, shape=(n, 32, 32, 3))
    cluster = rng.integers(n_clusters, size=n)
    outliers = np.sort(rng.choice(n, size=max(1, n // 500), replace=False))
    flipped = np.sort(rng.choice(np.setdiff1d(np.arange(n), outliers), size=max(1, n // 100), replace=False))
    for a in range(0, n, chunk):
        c = cluster[a : a + chunk]
        x = centres[c] + np.einsum("nk,nkd->nd", rng.normal(0, 1, (len(c), variation)).astype(np.float32), basis[c])
        x += rng.normal(0, 0.6, x.shape).astype(np.float32)
        odd = outliers[(outliers >= a) & (outliers < a + chunk)] - a
        # out-of-domain: a few strong features no cluster has (like a photo among digits)
        x[odd] = rng.normal(0, 1.5, (len(odd), dim)) * (rng.random((len(odd), dim)) < 0.05) * 3
        emb[a : a + chunk] = np.maximum(x, 0)
        t = patterns[c] + rng.normal(0, 12, (len(c), 32, 32, 3))
        thumbs[a : a + chunk] = np.clip(t, 0, 255).astype(np.uint8)
    emb.flush()
    thumbs.flush()
    del emb, thumbs
    label = cluster % 10
    label[flipped] = (label[flipped] + 1 + rng.integers(9, size=len(flipped))) % 10
    metrics = synthetic_metrics(n, label, rng)
    metrics.to_parquet(root / "metrics.parquet")
    np.save(root / "planted_outliers.npy", outliers)
    np.save(root / "planted_flipped.npy", flipped)
    return {"outliers": outliers, "flipped": flipped}


def synthetic_metrics(n: int, label: np.ndarray, rng):
    """Per-image metrics typical of sharp, mid-grey 32 px images (no image-level defects)."""
    import pandas as pd

    return pd.DataFrame({
        "item_id": np.arange(n), "label": [str(v) for v in label], "readable": 1, "error": None,
        "width": 32, "height": 32, "channels": 3, "file_size": 2500,
        "brightness": rng.uniform(0.35, 0.65, n), "brightness_high": rng.uniform(0.7, 0.9, n),
        "brightness_low": rng.uniform(0.1, 0.3, n), "contrast": rng.uniform(0.15, 0.3, n),
        "sharpness": rng.uniform(80, 120, n), "fine_detail": rng.uniform(0.4, 0.6, n),
        "entropy": rng.uniform(6.0, 7.5, n), "aspect_ratio": 1.0, "area": 1024.0, "opacity": 1.0,
        "pixel_hash": [f"h{i}" for i in range(n)],
    })


ARRAYS_CODE = """
import json, os, sys, time
import numpy as np, pandas as pd
from curator.stages import DatasetInputs, run_stages
root = sys.argv[1]
metrics = pd.read_parquet(root + "/metrics.parquet")
inputs = DatasetInputs(metrics, np.load(root + "/emb.npy", mmap_mode="r"), np.load(root + "/thumbs.npy", mmap_mode="r"),
                       json.load(open(root + "/classes.json")), methods=sys.argv[2].split(","),
                       scratch_dir=root)  # as analyze does: the alignment's temporary files beside the arrays
t = {}
t0 = time.perf_counter()
r = run_stages(inputs, t)
t["total"] = round(time.perf_counter() - t0, 3)
f = r.findings
result = {"timings": t, "issues": f["issue"].value_counts().to_dict(), "label_space": r.label_space,
          "map": r.map_choice["space"], "map_finite": float(np.isfinite(r.maps[sys.argv[2].split(",")[0]]).all(axis=1).mean())}
if not os.path.exists(root + "/planted_outliers.npy"):
    print(json.dumps(result))
    sys.exit(0)
out = set(f.loc[f["issue"] == "outlier", "item_id"])
lab = set(f.loc[f["issue"] == "label_issue", "item_id"])
po, pf = np.load(root + "/planted_outliers.npy"), np.load(root + "/planted_flipped.npy")
print(json.dumps({**result, "outlier_recall": round(len(out & set(po.tolist())) / len(po), 3),
                  "outlier_precision": round(len(out & set(po.tolist())) / max(1, len(out)), 3),
                  "label_recall": round(len(lab & set(pf.tolist())) / len(pf), 3),
                  "label_precision": round(len(lab & set(pf.tolist())) / max(1, len(lab)), 3)}))
"""


def run_arrays(root: Path, projection: str) -> dict:
    """run_stages on a folder of arrays in a fresh process: time, CPU, peak RSS per stage."""
    from curator.stage_status import STAGES

    r = run_sampled([sys.executable, "-c", ARRAYS_CODE, str(root), projection], env_with_repo(),
                    {label: key for key, label in STAGES}, first="loading")
    r.update(json.loads(r["stdout"].strip().splitlines()[-1]))
    return r


def run_synthetic(n: int, dim: int, work: Path, projection: str) -> dict:
    root = work / f"synthetic-{n}-{dim}"
    if not (root / "classes.json").exists():
        t = time.perf_counter()
        make_synthetic(n, dim, root)
        (root / "classes.json").write_text(json.dumps([str(c) for c in range(10)]))
        print(f"made synthetic {n} x {dim} in {time.perf_counter() - t:.0f} s (load {load()})", flush=True)
    r = run_arrays(root, projection)
    report_run(f"dataset-level stages, synthetic {n} x {dim}", n, r)
    print("quality:", {k: r[k] for k in ("label_space", "map", "outlier_recall", "outlier_precision", "label_recall",
                                         "label_precision", "map_finite")})
    return r


def per_image_table(results: dict) -> None:
    """ms per image of each dataset-level stage at each size, and the ratio largest/smallest."""
    from curator.stage_status import STAGES

    sizes = sorted(results)
    keys = [k for k, _ in STAGES] + ["total"]
    print("\nms per image   " + "".join(f"{n:>12,}" for n in sizes) + "   ratio")
    for key in keys:
        vals = [1000 * results[n]["timings"].get(key, 0.0) / n for n in sizes]
        ratio = vals[-1] / vals[0] if vals[0] else float("nan")
        print(f"{key:<14} " + "".join(f"{v:12.3f}" for v in vals) + f"   {ratio:5.2f}")
    print("peak RSS (GB)  " + "".join(f"{results[n]['maxrss'] / 2**30:12.2f}" for n in sizes))
    print(flush=True)


# ---------------------------------------------------------------------------- index choice
def compare_indexes(x: np.ndarray, queries: int = 1000, seed: int = 1) -> None:
    """Build time, time to search every row (extrapolated from ``queries``) and recall@10
    against exact search, for the approximate indexes considered (curator/neighbors.py)."""
    import faiss

    from curator.neighbors import TRAIN_PER_LIST, lists_for

    n, d = x.shape
    rng = np.random.default_rng(seed)
    q = np.sort(rng.choice(n, min(queries, n), replace=False))
    t = time.perf_counter()
    exact = faiss.IndexFlatIP(d)
    exact.add(x)
    _, truth = exact.search(x[q], 11)
    t_exact = time.perf_counter() - t
    print(f"\n== indexes on {n} x {d} (load {load()}): exact search of everything ~{t_exact * n / len(q):.0f} s")
    del exact
    nlist = lists_for(n)
    train = x[np.sort(rng.choice(n, min(n, TRAIN_PER_LIST * nlist), replace=False))]

    def ivf(kind):
        if kind == "ivf-flat":
            return faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
        return faiss.IndexIVFScalarQuantizer(faiss.IndexFlatIP(d), d, nlist, faiss.ScalarQuantizer.QT_8bit,
                                             faiss.METRIC_INNER_PRODUCT)

    for kind, params in (("ivf-flat", (8, 16)), ("ivf-sq8", (8, 16, 32)), ("hnsw32", (64,))):
        t = time.perf_counter()
        if kind == "hnsw32":
            index = faiss.IndexHNSWFlat(d, 32, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = 80
        else:
            index = ivf(kind)
            index.cp.niter = 10
            index.train(train)
        index.add(x)
        built = time.perf_counter() - t
        for p in params:
            if kind == "hnsw32":
                index.hnsw.efSearch = p
            else:
                index.nprobe = p
            t = time.perf_counter()
            _, found = index.search(x[q], 11)
            searched = (time.perf_counter() - t) * n / len(q)
            recall = np.mean([len(set(a[1:]) & set(b[1:])) / 10 for a, b in zip(found, truth)])
            print(f"  {kind:<9} build {built:6.1f} s  {'efSearch' if kind == 'hnsw32' else 'nprobe'} {p:<3} "
                  f"search all ~{searched:6.1f} s  recall@10 {recall:.3f}  (load {load()})", flush=True)
        del index


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=0, help="make N small image files, import and analyze them")
    ap.add_argument("--engine", default="local", help="analyze's per-image engine: local or ray (passed through)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--stages", type=Path, default=None, help="rerun the dataset-level stages on this analyzed project")
    ap.add_argument("--subsets", default="", help="with --stages: comma-separated item counts (random N items)")
    ap.add_argument("--synthetic", default="", help="comma-separated sizes for the synthetic dataset-level run")
    ap.add_argument("--dim", type=int, default=1280, help="synthetic embedding width (EfficientNet-Lite0: 1280)")
    ap.add_argument("--projection", default="umap")
    ap.add_argument("--ann", default="", help="compare approximate indexes on this .npy of embeddings, or "
                                               "'synthetic:N' clustered rows of --dim")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/curator-scale"))
    ap.add_argument("analyze_args", nargs="*", help="more options for curator analyze (after --)")
    args = ap.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    print(f"start {time.strftime('%H:%M:%S')} load {load()} cpus {os.cpu_count()}", flush=True)
    if args.files:
        run_files(args.files, args.workdir, args.engine, args.batch_size, args.analyze_args)
    if args.stages:
        proj = args.stages
        total = json.loads((proj / "curator.json").read_text())["analysis"]["items"]
        results = {}
        for n in [int(v) for v in args.subsets.split(",")] if args.subsets else [total]:
            n = min(n, total)
            results[n] = run_stages(proj, args.projection, n, args.workdir)
            report_run(f"dataset-level stages on a random {n} of the items of {proj}", n, results[n])
            print("chosen:", {k: results[n][k] for k in ("label_space", "map", "map_finite")}, flush=True)
        if len(results) > 1:
            per_image_table(results)
    if args.ann:
        from curator.neighbors import normalize

        if args.ann.startswith("synthetic:"):
            n = int(args.ann.split(":")[1])
            root = args.workdir / f"synthetic-{n}-{args.dim}"
            if not (root / "emb.npy").exists():
                make_synthetic(n, args.dim, root)
            path = root / "emb.npy"
        else:
            path = Path(args.ann)
        compare_indexes(normalize(np.load(path, mmap_mode="r")))
    if args.synthetic:
        results = {}
        for n in [int(v) for v in args.synthetic.split(",")]:
            results[n] = run_synthetic(n, args.dim, args.workdir, args.projection)
        per_image_table(results)


if __name__ == "__main__":
    main()
