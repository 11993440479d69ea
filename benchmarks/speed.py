"""Speed of `curator analyze` on N small generated images, split by stage, next to the CNN's
pure forward throughput.

    python benchmarks/speed.py [--n 5000] [--workdir DIR] [--batch-size 32] [--workers 1]

Images: scikit-learn digits upscaled to 32x32 with random shifts, noise and contrast, so
that no two are identical. The analyze run is a fresh `curator analyze` process, as a user
would run it; its stage timings come from the project manifest.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image


def make_images(root: Path, n: int, seed: int = 0) -> None:
    from sklearn.datasets import load_digits

    data = load_digits()
    rng = np.random.default_rng(seed)
    for i in range(n):
        j = int(rng.integers(len(data.images)))
        img = Image.fromarray(np.clip(data.images[j] * 16, 0, 255).astype(np.uint8)).resize((32, 32), Image.BILINEAR)
        arr = np.roll(np.asarray(img, dtype=np.float32), tuple(rng.integers(-2, 3, size=2)), axis=(0, 1))
        arr = np.clip(arr * rng.uniform(0.8, 1.2) + rng.normal(0, 4, arr.shape), 0, 255).astype(np.uint8)
        p = root / str(data.target[j]) / f"{i:05d}.png"
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr).save(p)


def forward_throughput(resolution: int, batch: int, seconds: float = 8.0) -> float:
    code = f"""
import time, torch
from curator.backbones import tune_malloc, load_backbone
tune_malloc()
bb = load_backbone(resolution={resolution})
x = torch.randn({batch}, 3, {resolution}, {resolution})
bb.forward(x); bb.forward(x)
t = time.perf_counter(); n = 0
while time.perf_counter() - t < {seconds}:
    bb.forward(x); n += {batch}
print(n / (time.perf_counter() - t))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def warm_global_stages(project: Path) -> dict:
    """Global-stage timings with imports and numba JIT already paid (second run in a process)."""
    code = f"""
import json
from curator import Project
from curator.analyze import AnalyzeOptions, find_issues
p = Project({str(project)!r})
for _ in range(2):
    t = {{}}
    find_issues(p, p.analysis["embeddings_file"], AnalyzeOptions(), t)
print(json.dumps(t))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--resolution", type=int, default=96, help="what analyze picks by default for 32x32 images")
    args = ap.parse_args(argv)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="curator-speed-"))
    images, project = work / "images", work / "speed"
    shutil.rmtree(images, ignore_errors=True)
    shutil.rmtree(project, ignore_errors=True)
    make_images(images, args.n)
    subprocess.run(["curator", "import", str(images), "--out", str(project)], check=True, capture_output=True)

    t = time.perf_counter()
    subprocess.run(["curator", "analyze", str(project), "-q", "--batch-size", str(args.batch_size),
                    "--workers", str(args.workers), "--resolution", str(args.resolution)], check=True, capture_output=True)
    wall = time.perf_counter() - t
    timings = json.loads((project / "curator.json").read_text())["analysis"]["timings"]
    t = time.perf_counter()
    subprocess.run(["curator", "analyze", str(project), "-q"], check=True, capture_output=True)
    rerun = time.perf_counter() - t

    fwd = forward_throughput(args.resolution, args.batch_size)
    warm = warm_global_stages(project)
    load = timings.get("model_load", 0.0)
    work_s = timings["total"] - load
    cnn_only = args.n / fwd
    print(f"analyze of {args.n} images of 32x32 at {args.resolution}px, batch {args.batch_size}, {args.workers} worker(s)")
    print(f"  process wall time          {wall:7.1f} s  (incl. python/torch start-up and model load)")
    print(f"  analyze total              {timings['total']:7.1f} s  -> {args.n / timings['total']:6.1f} img/s")
    print(f"  excluding model load       {work_s:7.1f} s  -> {args.n / work_s:6.1f} img/s")
    for key in ("model_load", "embed_total", "cnn_forward", "neighbours", "duplicates", "labels", "outliers", "projection"):
        if key in timings:
            print(f"    {key:<24} {timings[key]:7.2f} s")
    print(f"  pure CNN forward           {fwd:7.1f} img/s  ({cnn_only:.1f} s for {args.n})")
    print(f"  everything but the forward adds {100 * (work_s - cnn_only) / cnn_only:5.1f}% to it (incl. imports + numba JIT)")
    warm_total = sum(warm.values())
    cold_total = sum(timings[k] for k in warm)
    jit = cold_total - warm_total
    loop_extra = timings["embed_total"] - timings["cnn_forward"]
    print(f"  global stages warm (JIT and imports paid): {warm_total:.2f} s {warm}")
    print(f"  one-time imports + JIT in the cold run: {jit:.1f} s")
    print(f"  excluding model load/JIT: {args.n / (work_s - jit):6.1f} img/s; non-forward work "
          f"(decode+metrics {loop_extra:.1f} s + global {warm_total:.1f} s) adds "
          f"{100 * (loop_extra + warm_total) / timings['cnn_forward']:.0f}% to the in-run forward ({timings['cnn_forward']:.1f} s)")
    print(f"  re-run with nothing changed: {rerun:.1f} s")
    print(f"(work files in {work})")


if __name__ == "__main__":
    main()
