"""Speed of `curator analyze`, split by stage, next to the CNN's pure forward throughput, and
(``--peers``) next to cleanvision and fastdup on the same images, interleaved.

    python benchmarks/speed.py [--n 5000] [--photos 0] [--runtime auto] [--workdir DIR]
    python benchmarks/speed.py --n 5000 --peers [--reps 2]        # + cleanvision, fastdup
    python benchmarks/speed.py --setup-peers                       # make their venvs (~1 GB)
    python benchmarks/speed.py --n 3000 --engines local,ray --reps 2  # the Ray engine beside the default

``--engines local,ray`` runs ``analyze --engine ray`` (a private local Ray, ``--ray-cpus``)
beside the default engine, interleaved. The benchmark makes itself a child subreaper, so the
CPU-seconds of Ray's processes (which the driver does not reap) are counted, and samples the
summed RSS of the whole process tree, the memory that Ray's several processes really take.

Images: ``--n`` small images (scikit-learn digits upscaled to 32x32 with random shifts, noise
and contrast, so no two are identical), or ``--photos N`` JPEGs of about 300x200 px (random
crops of scikit-learn's two sample photos, rescaled, recoloured and noised). Every tool runs
in a fresh process, as a user would run it; its CPU-seconds (user + sys of the process and
its children, from wait4) are reported beside the wall time, because CPU time is far steadier
than wall time on a shared machine. The load average is printed next to every figure.

Peers run in their own virtual environments (``.bench-venv-cleanvision``,
``.bench-venv-fastdup`` in the repository, or ``$CURATOR_PEER_VENVS/<tool>``) so their pins
never touch curator's environment; ``--setup-peers`` creates them with pip.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
CURATOR = [sys.executable, "-m", "curator.cli"]
PEERS = {"cleanvision": ["cleanvision"], "fastdup": ["fastdup"]}

# each peer's whole check of a folder, as its README shows it (run in the peer's venv)
PEER_SCRIPTS = {
    "cleanvision": """
import sys
from cleanvision import Imagelab
lab = Imagelab(data_path=sys.argv[1])
lab.find_issues()
print(int(lab.issue_summary["num_images"].sum()))
""",
    "fastdup": """
import sys, fastdup
fd = fastdup.create(work_dir=sys.argv[2], input_dir=sys.argv[1])
fd.run(overwrite=True, verbose=False)
print(len(fd.invalid_instances()))
""",
}


# ---------------------------------------------------------------------------- images

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


def make_photos(root: Path, n: int, seed: int = 0) -> None:
    """``n`` JPEGs of about 300x200 px in two classes (which sample photo they come from)."""
    from sklearn.datasets import load_sample_images

    photos = load_sample_images().images  # two 427x640 colour photos
    rng = np.random.default_rng(seed)
    for i in range(n):
        k = int(rng.integers(len(photos)))
        src = photos[k]
        h, w = int(rng.integers(150, 400)), int(rng.integers(225, 600))
        y, x = int(rng.integers(0, src.shape[0] - h + 1)), int(rng.integers(0, src.shape[1] - w + 1))
        crop = src[y : y + h, x : x + w].astype(np.float32) * rng.uniform(0.7, 1.2, size=3)
        crop = np.clip(crop + rng.normal(0, 5, crop.shape), 0, 255).astype(np.uint8)
        out_w, out_h = int(rng.integers(280, 321)), int(rng.integers(180, 221))
        p = root / f"photo{k}" / f"{i:05d}.jpg"
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(crop).resize((out_w, out_h), Image.BILINEAR).save(p, quality=90)


# ---------------------------------------------------------------------------- measuring

def load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def measured(cmd, env=None, cwd=None) -> dict:
    """Run ``cmd``; its wall time, CPU-seconds (user + sys, children included) and peak RSS."""
    before = load()
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate()
    wall = time.perf_counter() - t
    # communicate() reaped it: the children's rusage delta is this process's (one at a time)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd[:4]))} failed ({proc.returncode}): {err.strip()[-800:]}")
    return {"wall": wall, "stdout": out, "stderr": err, "load": before}


def become_subreaper() -> None:
    """Orphaned descendants (Ray's workers, raylet) re-parent to this process, so their
    CPU time reaches RUSAGE_CHILDREN once reaped (Linux; elsewhere a no-op)."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except OSError:
        pass


def reap_orphans(timeout: float = 15.0) -> None:
    """Wait for (and reap) every remaining descendant: Ray's processes end shortly after shutdown."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            time.sleep(0.1)


def descendants(root: int) -> list[int]:
    """Process ids below ``root``, from /proc (Linux)."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(name))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


class TreeRSS:
    """Peak of the summed RSS of all descendants, sampled every ``interval`` seconds."""

    def __init__(self, interval: float = 0.25):
        import threading

        self.interval, self.peak = interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        page = os.sysconf("SC_PAGE_SIZE")
        while not self._stop.wait(self.interval):
            total = 0
            for pid in descendants(os.getpid()):
                try:
                    with open(f"/proc/{pid}/statm") as fh:
                        total += int(fh.read().split()[1]) * page
                except (OSError, ValueError, IndexError):
                    pass  # ended meanwhile
            self.peak = max(self.peak, total)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


class ChildClock:
    """CPU-seconds and peak RSS of the children reaped between two calls."""

    def __init__(self):
        import resource

        self._resource = resource
        self.mark()

    def mark(self):
        r = self._resource.getrusage(self._resource.RUSAGE_CHILDREN)
        self._cpu = r.ru_utime + r.ru_stime

    def since(self) -> float:
        r = self._resource.getrusage(self._resource.RUSAGE_CHILDREN)
        cpu = r.ru_utime + r.ru_stime - self._cpu
        self.mark()
        return cpu


def forward_throughput(resolution: int, batch: int, runtime: str, workers: int | None = None,
                       seconds: float = 8.0) -> float:
    """Pure CNN forward (img/s) on random input, in a fresh process, run the way analyze runs
    it: the same runtime and, with onnxruntime, the same lanes (``per_image.plan_threads``),
    each looping over its share of the batch; no decoding, no metrics."""
    code = f"""
import threading, time, numpy as np
from curator.backbones import tune_malloc, load_embedder
from curator.per_image import plan_threads
tune_malloc()
bb, device = load_embedder("efficientnet-lite0", {resolution}, "auto", {runtime!r},
                           threads=plan_threads({workers!r}, "onnxruntime", {batch})[2])
lanes = plan_threads({workers!r}, bb.runtime, {batch})[0]
share = -(-{batch} // lanes)
x = bb.prepare(np.random.default_rng(0).integers(0, 255, (share, {resolution}, {resolution}, 3), dtype=np.uint8), device)
bb.forward(x); bb.forward(x)
done = [0] * lanes
def lane(k):
    while time.perf_counter() - t < {seconds}:
        bb.forward(x); done[k] += share
t = time.perf_counter()
threads = [threading.Thread(target=lane, args=(k,)) for k in range(lanes)]
[th.start() for th in threads]; [th.join() for th in threads]
print(sum(done) / (time.perf_counter() - t))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def warm_global_stages(project: Path) -> dict:
    """Dataset-level stage timings with imports and numba JIT already paid (second run in a process)."""
    code = f"""
import json
from curator import Project
from curator.analyze import AnalyzeOptions, find_issues
p = Project({str(project)!r})
for _ in range(2):
    t = {{}}
    find_issues(p, p.analysis["embeddings_file"], AnalyzeOptions(progress=False), t)
print(json.dumps(t))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------- peers

def peer_venv(tool: str) -> Path:
    base = os.environ.get("CURATOR_PEER_VENVS")
    return Path(base) / tool if base else REPO / f".bench-venv-{tool}"


def peer_python(tool: str) -> Path | None:
    py = peer_venv(tool) / "bin" / "python"
    if py.exists() and subprocess.run([str(py), "-c", f"import {tool}"], capture_output=True).returncode == 0:
        return py
    return None


def setup_peers() -> None:
    for tool, packages in PEERS.items():
        if peer_python(tool):
            print(f"{tool}: ready at {peer_venv(tool)}")
            continue
        subprocess.run([sys.executable, "-m", "venv", str(peer_venv(tool))], check=True)
        subprocess.run([str(peer_venv(tool) / "bin" / "python"), "-m", "pip", "install", "-q", *packages], check=True)
        print(f"{tool}: {'ready' if peer_python(tool) else 'FAILED to import'} at {peer_venv(tool)}")


def run_peer(tool: str, images: Path, work: Path, clock: ChildClock) -> dict:
    py = peer_python(tool)
    script = work / f"run_{tool}.py"
    script.write_text(PEER_SCRIPTS[tool])
    out_dir = work / f"{tool}-out"
    shutil.rmtree(out_dir, ignore_errors=True)
    clock.mark()
    r = measured([str(py), str(script), str(images), str(out_dir)])
    r["cpu"] = clock.since()
    return r


# ---------------------------------------------------------------------------- main

def run_curator(images: Path, project: Path, args, clock: ChildClock, engine: str = "local") -> dict:
    shutil.rmtree(project, ignore_errors=True)
    subprocess.run(CURATOR + ["import", str(images), "--out", str(project)], check=True, capture_output=True)
    clock.mark()
    cmd = CURATOR + ["analyze", str(project), "-q", "--batch-size", str(args.batch_size),
                     "--runtime", args.runtime, "--engine", engine]
    if args.workers is not None:  # else analyze's own default, what a user gets
        cmd += ["--workers", str(args.workers)]
    if engine == "ray" and args.ray_cpus:
        cmd += ["--ray-cpus", str(args.ray_cpus)]
    if args.resolution:
        cmd += ["--resolution", str(args.resolution)]
    with TreeRSS() as rss:
        r = measured(cmd)
        reap_orphans()
    r["cpu"] = clock.since()
    r["rss"] = rss.peak
    analysis = json.loads((project / "curator.json").read_text())["analysis"]
    r["timings"] = analysis["timings"]
    r["resolution"] = int(analysis["backbone_key"].rsplit("@", 1)[1])  # what analyze used (its own pick by default)
    return r


def line(name: str, n: int, r: dict) -> str:
    rss = f"   peak RSS {r['rss'] / 2**30:.2f} GB (all processes)" if r.get("rss") else ""
    return (f"  {name:<12} {r['wall']:7.1f} s wall {n / r['wall']:7.1f} img/s   {r['cpu']:7.1f} CPU-s "
            f"{1000 * r['cpu'] / n:6.2f} CPU-ms/img{rss}   (load {r['load']})")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=5000, help="small generated images (ignored with --photos)")
    ap.add_argument("--photos", type=int, default=0, help="use N generated ~300x200 JPEGs instead")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--workers", type=int, default=None, help="analyze's --workers (default: analyze's own default)")
    ap.add_argument("--resolution", type=int, default=None,
                    help="default: what analyze picks (96 px for small images, else the short side on a 32 px grid, 160-224)")
    ap.add_argument("--runtime", choices=["auto", "onnx", "torch"], default="auto")
    ap.add_argument("--engines", default="local", help="comma-separated analyze engines to run interleaved: local, ray")
    ap.add_argument("--ray-cpus", type=int, default=None, help="--ray-cpus of the ray engine's runs")
    ap.add_argument("--peers", action="store_true", help="also run cleanvision and fastdup, interleaved")
    ap.add_argument("--reps", type=int, default=1, help="interleaved repetitions of every tool")
    ap.add_argument("--setup-peers", action="store_true", help="create the peers' venvs and exit")
    args = ap.parse_args(argv)
    if args.setup_peers:
        setup_peers()
        return
    work = args.workdir or Path(tempfile.mkdtemp(prefix="curator-speed-"))
    work.mkdir(parents=True, exist_ok=True)
    images, project = work / "images", work / "speed"
    shutil.rmtree(images, ignore_errors=True)
    n = args.photos or args.n
    (make_photos if args.photos else make_images)(images, n)
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    tools = ["curator" if e == "local" else f"curator-{e}" for e in engines]
    if args.peers:
        for tool in PEERS:
            if peer_python(tool):
                tools.append(tool)
            else:
                print(f"note: {tool} skipped: no venv at {peer_venv(tool)} (run: python benchmarks/speed.py --setup-peers)")
    become_subreaper()
    clock = ChildClock()
    results = {tool: [] for tool in tools}
    for _ in range(args.reps):  # interleaved: every tool once per round
        for tool in tools:
            if tool.startswith("curator"):
                engine = tool.split("-", 1)[1] if "-" in tool else "local"
                results[tool].append(run_curator(images, project, args, clock, engine))
            else:
                results[tool].append(run_peer(tool, images, work, clock))

    kind = "JPEGs of ~300x200" if args.photos else "images of 32x32"
    used = sorted({r["resolution"] for tool in tools if tool.startswith("curator") for r in results[tool]})
    resolution = args.resolution or (used[0] if used else 224)
    pick = "" if args.resolution else " (analyze's own pick)"
    print(f"analyze of {n} {kind} at {resolution}px{pick}, batch {args.batch_size}, {'default' if args.workers is None else args.workers} worker(s), runtime {args.runtime}")
    for tool in tools:
        for r in results[tool]:
            print(line(tool, n, r))
    best = {tool: min(results[tool], key=lambda r: r["cpu"]) for tool in tools}
    for tool in [t for t in tools if t.startswith("curator-")]:
        for key in ("ray_start", "model_load", "embed_total", "total"):
            values = [r["timings"].get(key) for r in results[tool]]
            print(f"    {tool} {key:<14} " + " / ".join(f"{v:.2f} s" for v in values if v is not None))
    if "curator" not in best:
        return
    for tool in [t for t in tools if not t.startswith("curator")]:
        print(f"  curator / {tool}: CPU-s ratio {best['curator']['cpu'] / best[tool]['cpu']:.2f}, "
              f"img/s ratio {best[tool]['wall'] / best['curator']['wall']:.2f} (best of each; < 1 CPU = curator cheaper)")

    cur = best["curator"]
    timings = cur["timings"]
    fwd = forward_throughput(resolution, args.batch_size, args.runtime, args.workers)
    print(f"  pure CNN forward {fwd:7.1f} img/s (load {load()}): end to end is {n / cur['wall'] / fwd:.2f}x of it")
    for key in ("onnx_export", "ray_start", "model_load", "embed_total", "cnn_forward", "neighbours", "duplicates", "labels",
                "outliers", "projection", "total"):
        if key in timings:
            what = " (summed over lanes / workers running side by side)" if key == "cnn_forward" else ""
            print(f"    {key:<24} {timings[key]:7.2f} s{what}")
    warm = warm_global_stages(project)
    cold = sum(timings.get(k, 0.0) for k in warm)
    print(f"  dataset-level stages warm (imports and JIT paid): {sum(warm.values()):.2f} s "
          f"{ {k: round(v, 2) for k, v in warm.items()} }; cold in the run: {cold:.2f} s")
    clock.mark()
    same = ["--resolution", str(args.resolution)] if args.resolution else []  # else analyze re-picks its own
    rerun = measured(CURATOR + ["analyze", str(project), "-q", *same])
    print(f"  re-run with nothing changed: {rerun['wall']:.1f} s wall, {clock.since():.1f} CPU-s (load {rerun['load']})")
    print(f"(work files in {work})")


if __name__ == "__main__":
    main()
