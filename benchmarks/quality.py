"""Detection quality on several real image sources at native resolution, with planted
problems of varied strength, one set of default thresholds, peers in the same run.

For every source of ``benchmarks/sources.py`` (digits 8x8, photo crops, icons with alpha,
font glyphs, greyscale textures, tiny colour images, ...):

1. plant problems on disjoint random items, each strength drawn per image: exact copies;
   near-duplicate copies (Gaussian noise sigma 4-12, 1-2 px shifts, JPEG q 60-90, resize
   0.5-2x, crops removing <= 10% of a side, small brightness/contrast changes); darkened
   (x 0.1-0.3), brightened, blurred (radius 1-2.5); label flips (5%, half to the most
   confusable class); out-of-domain images as outliers (a few from each source of another
   kind; ``--outliers native``: the same, never enlarged; ``--outliers cluster``: ten of one
   other source); unreadable files;
2. run the real CLI: ``curator import`` -> ``analyze`` -> ``export``;
3. run cleanvision and cleanlab's Datalab on the same files (Datalab gets curator's own
   embeddings as features) when their venv exists (``python benchmarks/peers.py --setup``);
4. print one table per source: precision / recall / F1 per issue for curator and the peers,
   the share of clean images flagged, and write montages of curator's false alarms and misses.

    python benchmarks/quality.py [--sources digits,photos,...] [--max-items 1500] [--seed 0]
                                 [--workdir DIR] [--no-peers] [--outliers mixed|native|cluster]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parent))
import sources as sources_mod  # noqa: E402

ISSUES = ["unreadable", "exact_duplicate", "near_duplicate", "dark", "bright", "blurry",
          "low_information", "odd_size", "odd_aspect_ratio", "outlier", "label_issue"]
IMAGE_LEVEL = ["unreadable", "exact_duplicate", "near_duplicate", "dark", "bright", "blurry"]
NEAR_KINDS = ["noise", "shift", "jpeg", "resize", "crop", "tone"]
# what each peer checks at all (other rows of its columns stay empty, not 0)
PEER_ISSUES = {
    "cleanvision": {"dark", "bright", "blurry", "low_information", "odd_aspect_ratio", "odd_size",
                    "exact_duplicate", "near_duplicate"},
    "datalab": {"near_duplicate", "outlier", "label_issue"},
}
SHARE = {"exact": 0.02, "near": 0.06, "dark": 0.02, "bright": 0.02, "blurry": 0.02, "flip": 0.05}


# ----------------------------------------------------------------------------- corruptions
def _split(img: Image.Image) -> tuple[np.ndarray, np.ndarray | None, str]:
    """Colour channels as float32 and the alpha channel (kept apart from every photometric change)."""
    if img.mode == "RGBA":
        a = np.asarray(img, dtype=np.float32)
        return a[..., :3], a[..., 3], "RGBA"
    mode = "L" if img.mode in ("L", "1", "I;16") else "RGB"
    return np.asarray(img.convert(mode), dtype=np.float32), None, mode


def _colour_mode(mode: str) -> str:
    return "RGB" if mode == "RGBA" else mode


def _join(colour: np.ndarray, alpha: np.ndarray | None, mode: str) -> Image.Image:
    colour = np.clip(np.rint(colour), 0, 255).astype(np.uint8)
    if alpha is None:
        return Image.fromarray(colour, _colour_mode(mode))
    return Image.fromarray(np.dstack([colour, np.clip(alpha, 0, 255).astype(np.uint8)]), "RGBA")


def photometric(img: Image.Image, fn) -> Image.Image:
    colour, alpha, mode = _split(img)
    return _join(fn(colour), alpha, mode)


def darken(img, rng):
    f = rng.uniform(0.1, 0.3)
    return photometric(img, lambda c: c * f), f"x{f:.2f}"


def brighten(img, rng):
    f = rng.uniform(0.1, 0.3)
    return photometric(img, lambda c: 255 - (255 - c) * f), f"headroom x{f:.2f}"


VISIBLE_BLUR = 2.0  # mean absolute luminance change (grey levels) below which a blur changed nothing one can see


def blur(img, rng):
    r = rng.uniform(1.0, 2.5)
    return img.filter(ImageFilter.GaussianBlur(r)), f"radius {r:.1f}"


def shown_change(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute difference of the two images' luminance as shown: composited on the
    neutral grey, so a change to the colour of transparent pixels counts for nothing (darkening
    a black symbolic icon changes nothing one can see)."""
    from curator.imaging import on_background

    la = np.asarray(on_background(a.convert("RGBA")).convert("L"), np.float32)
    lb = np.asarray(on_background(b.convert("RGBA")).convert("L"), np.float32)
    return float(np.abs(la - lb).mean())


def near_copy(img: Image.Image, kind: str, rng) -> tuple[Image.Image, str]:
    """A transformed copy that still shows the same picture."""
    side = min(img.size)
    if kind == "noise":
        s = rng.uniform(4, 12)
        return photometric(img, lambda c: c + rng.normal(0, s, c.shape)), f"noise sigma {s:.1f}"
    if kind == "shift":
        d = int(rng.integers(1, 3)) if side >= 16 else 1  # 2 px of an 8 px image is a quarter of it
        dy, dx = [int(v) for v in rng.choice([-d, 0, d], size=2)]
        if dy == dx == 0:
            dx = d
        a = np.asarray(img)
        pad = [(d, d), (d, d)] + [(0, 0)] * (a.ndim - 2)
        padded = np.pad(a, pad, mode="edge")
        h, w = a.shape[:2]
        return Image.fromarray(padded[d - dy : d - dy + h, d - dx : d - dx + w], img.mode), f"shift ({dy},{dx})"
    if kind == "jpeg":
        q = int(rng.integers(60, 91))
        colour, alpha, mode = _split(img)
        buf = io.BytesIO()
        Image.fromarray(np.clip(colour, 0, 255).astype(np.uint8), _colour_mode(mode)).save(buf, "JPEG", quality=q)
        return _join(np.asarray(Image.open(buf), dtype=np.float32), alpha, mode), f"jpeg q{q}"
    if kind == "resize":
        lo = max(0.5, 16 / side) if side >= 16 else 1.5  # never below 16 px: a 4 px digit is no copy
        f = float(np.exp(rng.uniform(np.log(lo), np.log(2.0))))
        if abs(f - 1) < 0.1:
            f = 1.25
        size = (max(1, round(img.width * f)), max(1, round(img.height * f)))
        return img.resize(size, Image.LANCZOS if rng.random() < 0.5 else Image.BILINEAR), f"resize x{f:.2f}"
    if kind == "crop":
        cut = [int(np.floor(rng.uniform(0, 0.1) * s)) for s in (img.width, img.width, img.height, img.height)]
        if sum(cut) == 0:
            cut[int(rng.integers(4))] = 1
        box = (cut[0], cut[2], img.width - cut[1], img.height - cut[3])
        return img.crop(box), f"crop {cut}"
    if kind == "tone":
        b, c = rng.uniform(-12, 12), rng.uniform(0.9, 1.1)
        return photometric(img, lambda x: (x - x.mean()) * c + x.mean() + b), f"contrast x{c:.2f} {b:+.0f}"
    raise ValueError(kind)


def confusable_class(labels: np.ndarray, images: list[Image.Image]) -> dict:
    """For each class, the other class whose mean 16x16 grey image is closest."""
    small = np.stack([np.asarray(im.convert("L").resize((16, 16), Image.BILINEAR), np.float32).ravel() for im in images])
    classes = sorted(set(labels))
    means = np.stack([small[labels == c].mean(axis=0) for c in classes])
    d = ((means[:, None] - means[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    return {c: classes[int(d[i].argmin())] for i, c in enumerate(classes)}


@dataclass
class Planted:
    truth: dict = field(default_factory=dict)  # issue -> set of paths
    # issue -> paths whose flag for that issue counts neither way: an upscaled copy is softer
    # and larger (blurry, odd_size are true of it), a crop changes the aspect ratio, an image
    # from another source may be dark or blurry as well as out of place
    ignore: dict = field(default_factory=dict)
    clean: set = field(default_factory=set)
    # files showing a source image with its pixels untouched (clean ones, label flips, exact
    # copies, originals of near copies): a near-duplicate group made only of these is the
    # source's own look-alikes, to be looked at, not a planted copy
    untouched: set = field(default_factory=set)
    detail: dict = field(default_factory=dict)  # path -> what was done
    labels: dict = field(default_factory=dict)  # path -> given label

    def add(self, issue, path, what=""):
        self.truth.setdefault(issue, set()).add(str(path))
        if what:
            self.detail[str(path)] = f"{issue}: {what}"


def plant(src, out: Path, seed: int, outlier_images: list) -> Planted:
    """Write the source with planted problems into a class-per-folder tree under ``out``."""
    rng = np.random.default_rng(seed)
    images, labels = src.images, np.array(src.labels)
    n = len(images)
    order = iter(rng.permutation(n))
    plan = {k: [next(order) for _ in range(max(3, int(round(share * n))))] for k, share in SHARE.items()}
    confusable = confusable_class(labels, images)
    classes = sorted(set(labels))
    given = labels.copy()
    for j, i in enumerate(plan["flip"]):
        given[i] = confusable[labels[i]] if j % 2 == 0 else rng.choice([c for c in classes if c != labels[i]])
    touched = {i for v in plan.values() for i in v}
    res = Planted()
    ext = "png"

    def path_for(i, suffix=""):
        p = out / str(given[i]) / f"{i:05d}{suffix}.{ext}"
        p.parent.mkdir(parents=True, exist_ok=True)
        res.labels[str(p)] = str(given[i])
        return p

    hashes: dict[str, list[Path]] = {}
    for i in range(n):
        img, what = images[i], ""
        if i in plan["dark"] or i in plan["bright"]:
            before = img
            img, what = darken(img, rng) if i in plan["dark"] else brighten(img, rng)
            change = shown_change(before, img)
            if change < VISIBLE_BLUR:  # black paint darkened (white brightened): nothing to see
                what = f"{what}, invisible (mean change {change:.1f} grey levels)"
        elif i in plan["blurry"]:
            sharp = img
            img, what = blur(img, rng)
            change = shown_change(sharp, img)
            if change < VISIBLE_BLUR:  # a featureless crop: blurring it is no defect anyone could see
                what = f"{what}, invisible (mean change {change:.1f} grey levels)"
        p = path_for(i)
        img.save(p)
        if not what:
            res.untouched.add(str(p))
        hashes.setdefault(hashlib.sha1(img.tobytes() + img.mode.encode() + str(img.size).encode()).hexdigest(), []).append(p)
        for key, issue in (("dark", "dark"), ("bright", "bright"), ("blurry", "blurry"), ("flip", "label_issue")):
            if i in plan[key] and "invisible" in what:
                res.ignore.setdefault(issue, set()).add(str(p))  # counts neither way
                res.detail[str(p)] = f"{issue}: {what}"
            elif i in plan[key]:
                res.add(issue, p, what or f"{labels[i]} -> {given[i]}")
        if i in plan["exact"]:
            q = path_for(i, "_copy")
            q.write_bytes(p.read_bytes())
            if not what:
                res.untouched.add(str(q))
            res.add("exact_duplicate", p, "original")
            res.add("exact_duplicate", q, "byte copy")
        if i in plan["near"]:
            kinds = [k for k in NEAR_KINDS if not (k == "crop" and min(img.size) < 10)]
            copy, what = near_copy(img, kinds[int(rng.integers(len(kinds)))], rng)
            q = path_for(i, "_near")
            copy.save(q)
            # JPEG or a contrast change of black paint can leave every pixel as it was: a copy
            same = copy.mode == img.mode and copy.size == img.size and np.array_equal(np.asarray(copy), np.asarray(img))
            kind = "exact_duplicate" if same else "near_duplicate"
            res.add(kind, p, "original")
            res.add(kind, q, f"{what}, pixel-identical" if same else what)
            if what.startswith(("resize", "crop")):
                for issue in ("blurry", "odd_size", "odd_aspect_ratio"):
                    res.ignore.setdefault(issue, set()).add(str(q))
        if i not in touched:
            res.clean.add(str(p))
    # natural exact duplicates already in the source are real finds
    for group in hashes.values():
        if len(group) > 1:
            for p in group:
                res.add("exact_duplicate", p, "natural exact duplicate")
                res.clean.discard(str(p))
    for k, img in enumerate(outlier_images):
        p = out / str(classes[k % len(classes)]) / f"odd_{k}.png"
        img.save(p)
        res.labels[str(p)] = str(classes[k % len(classes)])
        res.add("outlier", p, "image from another source")
        for issue in ISSUES:
            if issue != "outlier":
                res.ignore.setdefault(issue, set()).add(str(p))
    bad = out / str(classes[0])
    (bad / "zero_bytes.png").write_bytes(b"")
    some = next(iter(res.clean))
    (bad / "truncated.png").write_bytes(Path(some).read_bytes()[: max(40, Path(some).stat().st_size // 3)])
    (bad / "not_an_image.png").write_text("<html>oops</html>")
    for name in ("zero_bytes.png", "truncated.png", "not_an_image.png"):
        res.add("unreadable", bad / name, name)
        res.labels[str(bad / name)] = str(classes[0])
    return res


# ----------------------------------------------------------------------------- running
def run_cli(*args) -> tuple[float, float]:
    """Run the curator CLI; (wall seconds, CPU seconds of the child)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    # the curator script of this interpreter's environment, so the benchmark works without an activated venv
    exe = shutil.which("curator", path=str(Path(sys.executable).parent)) or "curator"
    res = subprocess.run([exe, *map(str, args)], capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit(f"curator {' '.join(map(str, args))} failed ({res.returncode}):\n{res.stderr[-3000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.perf_counter() - t, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def scores(flagged: dict, truth: dict, ignore: dict, issues=ISSUES) -> pd.DataFrame:
    rows = []
    for issue in issues:
        true = truth.get(issue, set())
        pred = flagged.get(issue, set()) - (ignore.get(issue, set()) - true)
        tp = len(pred & true)
        p = tp / len(pred) if pred else (1.0 if not true else 0.0)
        r = tp / len(true) if true else float("nan")
        f1 = 2 * p * r / (p + r) if true and (p + r) else float("nan")
        rows.append({"issue": issue, "planted": len(true), "flagged": len(pred), "P": p, "R": r, "F1": f1})
    return pd.DataFrame(rows).set_index("issue")


def montage(paths: list[str], captions: list[str], out: Path, cell: int = 96, cols: int = 8) -> None:
    """A grid of images (transparency on a checkerboard) with a caption under each."""
    from PIL import ImageDraw

    if not paths:
        return
    rows = (len(paths) + cols - 1) // cols
    sheet = Image.new("RGB", (cols * cell, rows * (cell + 24)), "white")
    draw = ImageDraw.Draw(sheet)
    yy, xx = np.mgrid[:cell, :cell]
    board = Image.fromarray(np.where(((yy // 8) + (xx // 8)) % 2, 200, 150).astype(np.uint8)).convert("RGB")
    for k, (p, cap) in enumerate(zip(paths, captions)):
        x, y = (k % cols) * cell, (k // cols) * (cell + 24)
        try:
            im = Image.open(p)
            im.load()
            im = im.convert("RGBA")
            scale = cell / max(im.size)
            im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))), Image.NEAREST)
            tile = board.copy()
            tile.paste(im, ((cell - im.width) // 2, (cell - im.height) // 2), im)
            sheet.paste(tile, (x, y))
        except Exception:
            draw.text((x + 4, y + cell // 2), "unreadable", fill="red")
        for line, text in enumerate([cap[i : i + 16] for i in range(0, min(len(cap), 32), 16)]):
            draw.text((x + 2, y + cell + 1 + 11 * line), text, fill="black")
    sheet.save(out)


# What "another source" means for the planted outliers: images of a different kind (characters,
# pictures, graphics), a few from each, so that most of them are isolated. ``--outliers cluster``
# plants ten images of one other source instead (digits, or photos into digits): a small foreign
# cluster, which at these sizes is also an upscaled, visibly blurred image.
DOMAINS = {"digits": "characters", "mnist": "characters", "glyphs": "characters",
           "photos": "pictures", "tiny-colour": "pictures", "textures": "pictures", "photo-tiles": "pictures",
           "icons": "graphics", "icons-128": "graphics", "symbolic": "graphics", "stamps": "graphics",
           "sprites": "graphics", "clipart": "graphics"}
N_OUTLIERS = 10


def outlier_images(name: str, src, seed: int, kind: str = "mixed") -> list:
    """``N_OUTLIERS`` images from other sources, in the source's mode and at its size."""
    target, mode = src.images[0].size, src.images[0].mode
    rng = np.random.default_rng(seed + 7)
    if kind == "cluster":
        others = ["digits" if name != "digits" else "photos"]
    else:
        others = [o for o in sources_mod.SOURCES if DOMAINS[o] != DOMAINS.get(name)]
    pools = []
    for other in others:
        try:
            pools.append(sources_mod.load_source(other, max_items=200, seed=seed + 1).images)
        except sources_mod.SourceUnavailable:
            continue
    if not pools:
        return []
    # drawn without replacement within each source (for "cluster", the draw of earlier versions)
    per_pool = -(-N_OUTLIERS // len(pools))
    picks = [iter(rng.choice(len(pool), min(per_pool, len(pool)), replace=False)) for pool in pools]
    out = []
    for k in range(N_OUTLIERS):
        img = pools[k % len(pools)][int(next(picks[k % len(pools)]))]
        if img.mode == "RGBA" and mode != "RGBA":  # an icon: its picture on a neutral ground
            ground = Image.new("RGBA", img.size, (128, 128, 128, 255))
            img = Image.alpha_composite(ground, img)
        if kind == "native" and (img.size[0] < target[0] or img.size[1] < target[1]):
            out.append(on_canvas(img, target, mode))
        else:
            out.append(img.convert(mode).resize(target, Image.BILINEAR))
    return out


def on_canvas(img: Image.Image, size: tuple[int, int], mode: str) -> Image.Image:
    """``img`` at its own resolution (shrunk only to fit), centred on a canvas of ``size``:
    transparent where the source has alpha, the neutral grey otherwise. Enlarging a foreign
    image blurs it, and then the blur check, not the outlier check, is what finds it."""
    img = img.convert("RGBA")
    if img.size[0] > size[0] or img.size[1] > size[1]:
        img.thumbnail(size, Image.BILINEAR)
    canvas = Image.new("RGBA", size, (128, 128, 128, 0 if mode in ("RGBA", "LA") else 255))
    canvas.alpha_composite(img, ((size[0] - img.size[0]) // 2, (size[1] - img.size[1]) // 2))
    return canvas.convert(mode)


def bench_source(name: str, args, workdir: Path, peers_mod) -> dict:
    src = sources_mod.load_source(name, max_items=args.max_items, seed=args.seed)
    outliers = outlier_images(name, src, args.seed, args.outliers)
    root = workdir / name
    images, project = root / "images", root / "project"
    shutil.rmtree(root, ignore_errors=True)
    images.mkdir(parents=True)
    planted = plant(src, images, args.seed, outliers)
    run_cli("import", images, "--out", project)
    (root / "truth.json").write_text(json.dumps({"truth": {k: sorted(v) for k, v in planted.truth.items()},
                                                 "clean": sorted(planted.clean), "detail": planted.detail,
                                                 "ignore": {k: sorted(v) for k, v in planted.ignore.items()}}))
    wall, cpu = run_cli("analyze", project, "-q", *args.analyze_args)
    csv = root / "issues.csv"
    run_cli("export", project, "-o", csv)
    export = pd.read_csv(csv, dtype={"label": str, "suggested_label": str})
    ours = {issue: set(g["path"]) for issue, g in export.groupby("issue")}
    table = scores(ours, planted.truth, planted.ignore).rename(columns=lambda c: c if c == "planted" else f"curator {c}")
    n_items = len(planted.labels)
    result = {"source": name, "description": src.description, "items": n_items, "analyze_wall_s": round(wall, 1),
              "analyze_cpu_s": round(cpu, 1), "clean": len(planted.clean)}
    flagged_clean = export[export["path"].isin(planted.clean)]
    result["clean_flagged"] = int(flagged_clean["path"].nunique())
    result["clean_flagged_by_issue"] = flagged_clean.groupby("issue")["path"].nunique().to_dict()
    result["timings"] = json.loads((project / "curator.json").read_text())["analysis"]["timings"]
    peer_tables = {}
    if peers_mod is not None:
        from curator import Project

        proj = Project(project)
        items = proj.items()
        paths = items["path"].astype(str).tolist()
        feats = np.asarray(proj.embeddings())
        readable = proj.metrics().set_index("item_id").loc[items["item_id"], "readable"].to_numpy()
        frame = pd.DataFrame({"path": paths, "label": items["label"].astype(str), "readable": readable})
        found, notes = peers_mod.run_peers(frame, feats, root / "peers")
        result["peer_notes"] = notes
        for tool, g in found.groupby("tool"):
            flagged = {issue: set(gg["path"]) for issue, gg in g.groupby("issue")}
            peer_tables[tool] = scores(flagged, planted.truth, planted.ignore)
            checks = peer_tables[tool].index.isin(sorted(PEER_ISSUES.get(tool, ISSUES)))
            table[f"{tool} P"] = peer_tables[tool]["P"].where(checks)
            table[f"{tool} R"] = peer_tables[tool]["R"].where(checks)
            fl_clean = g[g["path"].isin(planted.clean)]["path"].nunique()
            result[f"{tool}_clean_flagged"] = int(fl_clean)
    result["table"] = table
    # curator's false alarms and misses: a table, and a montage (up to 24 of each kind) to look at
    errors = []
    for issue in ISSUES:
        pred, true = ours.get(issue, set()) - planted.ignore.get(issue, set()), planted.truth.get(issue, set())
        errors += [{"kind": "FP", "issue": issue, "path": p, "detail": planted.detail.get(p, "")} for p in sorted(pred - true)]
        errors += [{"kind": "FN", "issue": issue, "path": p, "detail": planted.detail.get(p, "")} for p in sorted(true - pred)]
    errors = pd.DataFrame(errors, columns=["kind", "issue", "path", "detail"])
    errors.to_csv(root / "errors.csv", index=False)
    shown = errors.groupby(["issue", "kind"], sort=False).head(24)
    captions = [f"{e.kind} {e.issue[:10]} {(e.detail if e.kind == 'FP' else e.detail.split(': ')[-1])[:20]}"
                for e in shown.itertuples()]
    montage(list(shown["path"]), captions, root / "errors.png")
    result["montage"] = str(root / "errors.png")
    result.update(natural_groups(export, planted, root))
    return result


def natural_groups(export: pd.DataFrame, planted: Planted, root: Path) -> dict:
    """Near-duplicate groups made only of untouched source images (clean ones, label flips,
    exact copies, originals of planted copies): the source's own (natural) near duplicates,
    or false alarms. Listed and drawn (natural_pairs.png) to be looked at,
    and precision is also reported without them, labelled as such."""
    near = export[export["issue"] == "near_duplicate"]
    groups = [g for _, g in near.groupby("group_id") if set(g["path"]) <= planted.untouched]
    paths, caps = [], []
    for k, g in enumerate(groups[:40]):
        for p, score in zip(g["path"], g["score"]):
            paths.append(p)
            caps.append(f"group {k} {score:.3f}")
    montage(paths, caps, root / "natural_pairs.png")
    pd.DataFrame([{"group": k, "path": p} for k, g in enumerate(groups) for p in g["path"]]).to_csv(root / "natural_pairs.csv", index=False)
    members = {p for g in groups for p in g["path"]}
    others = export[~export["path"].isin(members) | (export["issue"] != "near_duplicate")]
    clean_without = int(others.loc[others["path"].isin(planted.clean), "path"].nunique())
    pred = set(near["path"]) - members
    true = planted.truth.get("near_duplicate", set())
    precision = len(pred & true) / len(pred) if pred else 1.0
    return {"natural_groups": len(groups), "natural_members": len(members), "clean_flagged_without_natural": clean_without,
            "near_precision_without_natural": round(precision, 3), "natural_montage": str(root / "natural_pairs.png")}


def targets_met(r: dict) -> bool:
    t = r["table"]
    planted = t[t["planted"] > 0]
    image_level = planted.loc[[i for i in planted.index if i in IMAGE_LEVEL]]
    ok = bool((image_level[["curator P", "curator R"]] >= 0.95).all().all())
    ok &= float(t.loc["label_issue", "curator F1"]) >= 0.90
    return ok and r["clean_flagged"] < 0.01 * r["clean"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sources", default=",".join(sources_mod.SOURCES))
    ap.add_argument("--max-items", type=int, default=1500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--outliers", choices=["mixed", "cluster", "native"], default="mixed",
                    help="planted out-of-domain images: a few from each source of another kind "
                         "(mixed), the same never enlarged (native: a smaller one is placed at its own size "
                         "on a canvas of the source's size, so it is not also blurred), or ten of one other "
                         "source (cluster)")
    ap.add_argument("--no-peers", action="store_true", help="skip cleanvision and Datalab")
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("analyze_args", nargs="*", help="extra arguments for curator analyze (after --)")
    args = ap.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="curator-quality-"))
    workdir.mkdir(parents=True, exist_ok=True)
    peers_mod = None
    if not args.no_peers:
        import peers as peers_mod  # noqa: F811

        if peers_mod.peers_python() is None:
            print("note: peers venv not found (python benchmarks/peers.py --setup): cleanvision/Datalab columns skipped")
            peers_mod = None
    pd.set_option("display.width", 200)
    pd.set_option("display.max_columns", 20)
    results = []
    for name in args.sources.split(","):
        try:
            r = bench_source(name, args, workdir, peers_mod)
        except sources_mod.SourceUnavailable as exc:
            print(f"\n== {name}: skipped ({exc})")
            continue
        results.append(r)
        pct = 100 * r["clean_flagged"] / max(r["clean"], 1)
        print(f"\n== {name}: {r['description']}")
        print(f"{r['items']} files, analyze {r['analyze_wall_s']} s wall / {r['analyze_cpu_s']} CPU-s; "
              f"clean images flagged: {r['clean_flagged']} / {r['clean']} ({pct:.2f}%) {r['clean_flagged_by_issue']}")
        for tool in ("cleanvision", "datalab"):
            if f"{tool}_clean_flagged" in r:
                note = r.get("peer_notes", {}).get(tool, {})
                print(f"   {tool}: clean images flagged {r[f'{tool}_clean_flagged']} ({100 * r[f'{tool}_clean_flagged'] / max(r['clean'], 1):.2f}%), "
                      f"{note.get('wall_s', '?')} s wall / {note.get('cpu_s', '?')} CPU-s"
                      + (" (on curator's embeddings)" if tool == "datalab" else ""))
        t = r["table"]
        print(t[t["planted"] + t["curator flagged"] > 0].round(3).to_string(na_rep="-"))
        print(f"stage timings: {r['timings']}")
        print(f"near-duplicate groups of untouched originals only: {r['natural_groups']} ({r['natural_members']} images; "
              f"look at {r['natural_montage']}); near_duplicate precision without them: {r['near_precision_without_natural']}; "
              f"clean images flagged without them: {r['clean_flagged_without_natural']} "
              f"({100 * r['clean_flagged_without_natural'] / max(r['clean'], 1):.2f}%)")
        print(f"targets: {'MET' if targets_met(r) else 'NOT MET'}; false alarms and misses: {r['montage']}")
    if args.json:
        args.json.write_text(json.dumps([{**r, "table": r["table"].reset_index().to_dict("records")} for r in results],
                                        indent=1, default=str))
    print(f"\n(work files in {workdir})")


if __name__ == "__main__":
    main()
