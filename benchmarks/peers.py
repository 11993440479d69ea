"""Peer tools - cleanvision and cleanlab's Datalab - on the same images as curator's benchmark.

The peers live in their own virtual environment (``CURATOR_PEERS_VENV`` or
``<repo>/.bench-venv-peers``) because their pins (pandas, numpy, datasets, ...) must not leak
into curator's environment, and neither needs torch. This module therefore imports only the
stdlib, numpy and pandas at module level: curator's side calls :func:`run_peers`, which writes
the inputs to a work folder and re-runs this same file as ``<peers python> peers.py --worker DIR``.

    python benchmarks/peers.py --setup        # create the venv (about 1.5 min, ~700 MB)
    python benchmarks/peers.py --demo DIR     # tiny planted dataset, print the peers' findings

Findings come back in curator's issue vocabulary, one row per (tool, path, issue); ``score`` is
the tool's own quality score (0..1, lower = more severe), not comparable across tools.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ["cleanvision", "cleanlab[datalab]", "scikit-learn", "pandas", "pillow"]
# cleanvision issue type -> curator issue type (grayscale has no curator counterpart)
CLEANVISION_MAP = {
    "dark": "dark", "light": "bright", "blurry": "blurry", "low_information": "low_information",
    "odd_aspect_ratio": "odd_aspect_ratio", "odd_size": "odd_size",
    "exact_duplicates": "exact_duplicate", "near_duplicates": "near_duplicate",
}
# Datalab issue type -> curator issue type (null, non_iid, class_imbalance, underperforming_group
# are dataset-level or have no curator counterpart)
DATALAB_MAP = {"label": "label_issue", "outlier": "outlier", "near_duplicate": "near_duplicate"}
COLUMNS = ["tool", "path", "issue", "score"]


# ---------------------------------------------------------------------------- the venv

def peers_venv() -> Path:
    return Path(os.environ.get("CURATOR_PEERS_VENV") or REPO / ".bench-venv-peers")


def peers_python() -> Path:
    """The venv's interpreter (it may not exist yet: see :func:`ensure_peers_venv`)."""
    venv = peers_venv()
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def ensure_peers_venv(create: bool = False) -> tuple[Path | None, str]:
    """Return (python, versions) when the venv imports both peers; else create it when asked,
    or return (None, reason). Creating is opt-in because it downloads ~700 MB of packages."""
    py = peers_python()
    probe = "import cleanvision, cleanlab; print('cleanvision', cleanvision.__version__, 'cleanlab', cleanlab.__version__)"
    if py.exists():
        res = subprocess.run([str(py), "-c", probe], capture_output=True, text=True)
        if res.returncode == 0:
            return py, res.stdout.strip()
        reason = f"{py} cannot import the peers: {res.stderr.strip().splitlines()[-1:]}"
    else:
        reason = f"no peers venv at {peers_venv()} (run: python benchmarks/peers.py --setup)"
    if not create:
        return None, reason
    subprocess.run([sys.executable, "-m", "venv", str(peers_venv())], check=True)
    subprocess.run([str(py), "-m", "pip", "install", "-q", *PACKAGES], check=True)
    return ensure_peers_venv(create=False)


# ---------------------------------------------------------------------------- curator's side

def run_peers(items: pd.DataFrame, features: np.ndarray | None, workdir: Path,
              timeout: float | None = 3600) -> tuple[pd.DataFrame, dict]:
    """Run both peers on ``items`` (columns path, label[, readable]) and ``features`` (N x D,
    aligned with items, or None). Returns (findings with columns tool, path, issue, score; notes).
    A missing venv or a crashed worker becomes a note and an empty table, never an exception."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    py, why = ensure_peers_venv(create=False)
    if py is None:
        return pd.DataFrame(columns=COLUMNS), {"error": why}
    items.to_csv(workdir / "items.csv", index=False)
    feat_file = workdir / "features.npy"
    feat_file.unlink(missing_ok=True)
    if features is not None:
        np.save(feat_file, np.asarray(features, dtype=np.float32))
    for f in ("findings.csv", "notes.json"):
        (workdir / f).unlink(missing_ok=True)
    t = time.perf_counter()
    # own session, so a timeout also kills cleanvision's pool workers (a crash inside its
    # multiprocessing pool has been seen to hang instead of raising)
    proc = subprocess.Popen([str(py), str(Path(__file__).resolve()), "--worker", str(workdir)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=os.name != "nt")
    try:
        log, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9) if os.name != "nt" else proc.kill()
        log, _ = proc.communicate()
    notes = {"versions": why, "worker_wall_s": round(time.perf_counter() - t, 2)}
    (workdir / "worker.log").write_text(log)
    if proc.returncode != 0 or not (workdir / "notes.json").exists():
        notes["error"] = f"worker failed (exit {proc.returncode}, timeout {timeout}s): {log[-1500:]}"
        return pd.DataFrame(columns=COLUMNS), notes
    notes.update(json.loads((workdir / "notes.json").read_text()))
    found = pd.read_csv(workdir / "findings.csv", dtype={"path": str})
    return found, notes


# ---------------------------------------------------------------------------- worker (peers venv)

def _clock() -> tuple[float, float]:
    """(wall, CPU) seconds; CPU includes reaped children, since cleanvision uses a process pool."""
    try:
        import resource

        cpu = sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF),
                                                   resource.getrusage(resource.RUSAGE_CHILDREN)))
    except ImportError:  # Windows: own process only
        cpu = time.process_time()
    return time.perf_counter(), cpu


def _timed(fn, *args):
    """Run one tool; return (rows, notes) with timings, turning any exception into a note.
    Timings cover the whole tool step: importing it and our harness work (the unreadable-file
    pre-filter, the out-of-fold pred_probs), which the notes also time separately."""
    (w0, c0), notes = _clock(), {}
    try:
        rows, notes = fn(*args)
    except Exception as exc:  # one tool failing must not sink the other
        rows = []
        notes["error"] = f"{type(exc).__name__}: {exc}"
        notes["traceback"] = traceback.format_exc()[-2000:]
    w1, c1 = _clock()
    notes.update(wall_s=round(w1 - w0, 2), cpu_s=round(c1 - c0, 2))
    return rows, notes


def _cleanvision(paths: list[str]):
    """cleanvision at default settings (all default issue types, n_jobs = physical cores).

    cleanvision has no handling for files it cannot decode: ``FSDataset.__getitem__`` does
    ``Image.open(f).copy()`` unguarded, so one bad file raises and aborts ``find_issues``. We
    drop such files first with the same call, and do not report them: cleanvision itself never
    says a file is unreadable."""
    import cleanvision
    from cleanvision import Imagelab
    from cleanvision.utils.utils import get_max_n_jobs
    from PIL import Image

    ok, bad, t = [], [], time.perf_counter()
    for p in paths:
        try:
            with open(p, "rb") as f:
                Image.open(f).copy()
            ok.append(p)
        except Exception:
            bad.append(p)
    t_pre = round(time.perf_counter() - t, 2)
    lab = Imagelab(filepaths=ok, verbose=False)
    lab.find_issues(verbose=False)
    rows = []
    for src, dst in CLEANVISION_MAP.items():
        flag, score = f"is_{src}_issue", f"{src}_score"
        if flag in lab.issues:
            hit = lab.issues[lab.issues[flag]]
            rows += [("cleanvision", p, dst, float(s)) for p, s in hit[score].items()]
    notes = {"version": cleanvision.__version__, "n_images": len(ok), "n_jobs": get_max_n_jobs(),
             "prefiltered_unreadable": len(bad), "prefilter_s": t_pre,
             "unreadable": "not reported: cleanvision raises on undecodable files, so they were "
                           "dropped before it ran and are not listed as its findings",
             "near_duplicate": "phash equality; sets identical to an exact-duplicate set are "
                               "left out, so near_duplicate rarely repeats exact_duplicate rows"}
    return rows, notes


def _datalab(items: pd.DataFrame, features: np.ndarray | None):
    """Datalab at default settings with features and out-of-fold pred_probs.

    pred_probs come from 5-fold ``cross_val_predict`` of a logistic regression on the same
    features - cleanlab's documented recommended practice. Rows of unreadable images (zero
    features) and unlabeled rows are dropped. No image key is given, so Datalab does not run its
    cleanvision checks (those are the cleanvision rows)."""
    import cleanlab
    from cleanlab import Datalab
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict
    from threadpoolctl import threadpool_limits

    if features is None:
        return [], {"version": cleanlab.__version__, "skipped": "no features given"}
    keep = items["label"].notna().to_numpy()
    if "readable" in items:
        keep = keep & (items["readable"].to_numpy() != 0)
    sub, x = items[keep].reset_index(drop=True), np.asarray(features)[keep]
    labels = sub["label"].astype(str).to_numpy()
    # columns follow np.unique(labels), the same lexicographic order Datalab uses for its label map.
    # One BLAS thread: numpy's and scipy's OpenBLAS pools fight over few cores and made this
    # 50x slower (40 s for 200 x 1024) on a 2-core machine; this step is our harness, not Datalab.
    t = time.perf_counter()
    with threadpool_limits(1, user_api="blas"):
        pred_probs = cross_val_predict(LogisticRegression(max_iter=1000), x, labels, cv=5,
                                       method="predict_proba")
    t_probs = round(time.perf_counter() - t, 2)
    lab = Datalab(data={"label": labels}, label_name="label", verbosity=0)
    lab.find_issues(features=x, pred_probs=pred_probs)
    rows = []
    for src, dst in DATALAB_MAP.items():
        issues = lab.get_issues(src)
        hit = issues.index[issues[f"is_{src}_issue"]]
        rows += [("datalab", sub["path"][i], dst, float(issues[f"{src}_score"][i])) for i in hit]
    summary = lab.get_issue_summary()
    notes = {"version": cleanlab.__version__, "n_rows": int(keep.sum()), "dropped_rows": int((~keep).sum()),
             "pred_probs_s": t_probs, "oof_accuracy": round(float(np.mean(pred_probs.argmax(1) == lab.labels)), 3),
             "near_duplicate": "Datalab's near_duplicate includes exact duplicates; they are kept "
                               "as near_duplicate only, never listed as exact_duplicate",
             "other_issue_types": {r.issue_type: int(r.num_issues) for r in summary.itertuples()
                                   if r.issue_type not in DATALAB_MAP}}
    return rows, notes


def worker(workdir: Path) -> None:
    items = pd.read_csv(workdir / "items.csv", dtype={"path": str, "label": str})
    feat_file = workdir / "features.npy"
    features = np.load(feat_file) if feat_file.exists() else None
    rows, notes = [], {}
    for name, fn, args in (("cleanvision", _cleanvision, (items["path"].tolist(),)),
                           ("datalab", _datalab, (items, features))):
        r, notes[name] = _timed(fn, *args)
        rows += r
    pd.DataFrame(rows, columns=COLUMNS).to_csv(workdir / "findings.csv", index=False)
    (workdir / "notes.json").write_text(json.dumps(notes, indent=1, default=str))


# ---------------------------------------------------------------------------- demo

def build_demo(out: Path, n: int = 200, seed: int = 0):
    """200 scikit-learn digits upscaled to 32 px as PNG in class folders, with planted dark
    images, exact-duplicate copies, label flips and unreadable files. Returns (items, features,
    truth) with features = flattened pixels (zeros and readable=0 for unreadable files)."""
    from PIL import Image
    from sklearn.datasets import load_digits

    rng = np.random.default_rng(seed)
    digits = load_digits()
    idx = rng.choice(len(digits.images), n, replace=False)
    u8 = np.clip(np.rint(digits.images[idx] * 255 / 16), 0, 255).astype(np.uint8)
    images = [np.asarray(Image.fromarray(im).resize((32, 32), Image.BILINEAR)) for im in u8]
    labels = digits.target[idx].astype(int)
    dark, dup, flip = np.split(rng.permutation(n)[:20], [5, 10])
    given = labels.copy()
    given[flip] = (labels[flip] + rng.integers(1, 10, len(flip))) % 10
    truth: dict[str, set[str]] = {k: set() for k in ("dark", "exact_duplicate", "label_issue", "unreadable")}
    rows, feats = [], []

    def save(img, label, name):
        p = out / str(label) / name
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(p)
        rows.append((str(p), str(label), 1))
        feats.append(img.reshape(-1).astype(np.float32))
        return str(p)

    for i in range(n):
        img = (images[i] * 0.15).astype(np.uint8) if i in dark else images[i]
        p = save(img, given[i], f"{i:03d}.png")
        if i in dark:
            truth["dark"].add(p)
        if i in flip:
            truth["label_issue"].add(p)
        if i in dup:
            truth["exact_duplicate"] |= {p, save(img, given[i], f"{i:03d}_copy.png")}
    for name, data in (("zero_bytes.png", b""), ("not_an_image.png", b"<html>oops</html>")):
        p = out / "0" / name
        p.write_bytes(data)
        rows.append((str(p), "0", 0))
        feats.append(np.zeros(32 * 32, np.float32))
        truth["unreadable"].add(str(p))
    items = pd.DataFrame(rows, columns=["path", "label", "readable"])
    return items, np.stack(feats), truth


def demo(out: Path) -> None:
    items, features, truth = build_demo(out / "images")
    found, notes = run_peers(items, features, out / "peers")
    print(f"{len(items)} images; planted: " + ", ".join(f"{k} {len(v)}" for k, v in truth.items()))
    table = (found.groupby(["tool", "issue"])["path"].agg(flagged="nunique", paths=set).reset_index())
    # the demo plants no near duplicates: Datalab's near_duplicate rows are the exact copies
    ref = {**truth, "near_duplicate": truth["exact_duplicate"]}
    table["planted_found"] = [f"{len(p & ref[i])}/{len(ref[i])}" if i in ref else "-"
                              for i, p in zip(table["issue"], table["paths"])]
    print(table.drop(columns="paths").to_string(index=False))
    for tool in ("cleanvision", "datalab"):
        print(f"{tool}: " + json.dumps({k: v for k, v in notes.get(tool, {}).items() if k != "traceback"}))
    print("versions:", notes.get("versions"), "| worker wall:", notes.get("worker_wall_s"), "s",
          "| error:", notes.get("error", "none"))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--setup", action="store_true", help="create the peers venv")
    g.add_argument("--demo", type=Path, metavar="DIR", help="run the peers on a tiny planted dataset")
    g.add_argument("--worker", type=Path, metavar="DIR", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker(args.worker)
    if args.setup:
        t = time.perf_counter()
        py, msg = ensure_peers_venv(create=True)
        print(f"{py}: {msg} ({time.perf_counter() - t:.0f}s)")
        return
    demo(args.demo)


if __name__ == "__main__":
    main()
