"""The ONNX Runtime path of the default backbone: features equal to torch's (cosine within
1e-3), exported once into the user cache under a name keyed by the weights, no torch import
once exported, and a torch fallback."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import digit_images, write_class_folders

pytest.importorskip("onnxruntime")

REPO = Path(__file__).resolve().parents[1]


def run(args, cache: Path, code: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, XDG_CACHE_HOME=str(cache), PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, "-c", code] if code else [sys.executable, "-m", "curator.cli", *map(str, args)]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    return result


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("onnx")
    images, labels = digit_images(per_class=4)
    write_class_folders(base / "images", images, labels)
    cache = base / "cache"
    projects = {}
    for runtime in ("torch", "onnx"):
        projects[runtime] = base / runtime
        run(["import", base / "images", "--out", projects[runtime]], cache)
    outputs = {rt: run(["analyze", projects[rt], "--projection", "pca", "--runtime", rt], cache) for rt in ("torch", "onnx")}
    return {"base": base, "cache": cache, "projects": projects, "outputs": outputs}


def embeddings(project: Path) -> np.ndarray:
    analysis = json.loads((project / "curator.json").read_text())["analysis"]
    return np.load(project / "arrays" / analysis["embeddings_file"])


def test_onnx_features_match_torch(setup):
    a, b = embeddings(setup["projects"]["torch"]), embeddings(setup["projects"]["onnx"])
    assert a.shape == b.shape and a.shape[0] == 40
    cosine = np.sum(a * b, 1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    assert cosine.min() >= 1 - 1e-3, cosine.min()


def test_export_once_into_user_cache_keyed_by_weights(setup):
    from curator.onnx_backbone import weights_digest, weights_file

    files = list((setup["cache"] / "curator" / "onnx").glob("*.onnx"))
    assert [f.name for f in files] == [f"efficientnet-lite0-96px-{weights_digest(weights_file())}-f1.onnx"]
    assert "preparing the ONNX model" in setup["outputs"]["onnx"].stderr
    assert "time: ONNX export" in setup["outputs"]["onnx"].stdout
    assert not list(files[0].parent.glob("*.tmp"))  # atomic: no leftovers


def test_cached_model_runs_without_torch(setup, tmp_path):
    copy = tmp_path / "again"
    shutil.copytree(setup["projects"]["onnx"], copy)
    for f in (copy / "arrays").glob("embeddings-*.npy"):
        f.unlink()  # the embeddings must be computed again
    out = run(None, setup["cache"], code=(
        "import sys, json\nimport curator.cli\n"
        f"curator.cli.main(['analyze', {str(copy)!r}, '-q', '--projection', 'pca'], standalone_mode=False)\n"
        "print(json.dumps('torch' in sys.modules))\n"))
    assert "preparing the ONNX model" not in out.stderr  # exported once, by the fixture
    assert json.loads(out.stdout.strip().splitlines()[-1]) is False
    assert np.allclose(embeddings(copy), embeddings(setup["projects"]["onnx"]), atol=1e-5)


def test_falls_back_to_torch_with_a_note(monkeypatch, tmp_path):
    from curator import backbones, onnx_backbone

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(onnx_backbone, "onnxruntime_available", lambda: False)
    notes = []
    model, device = backbones.load_embedder(backbones.DEFAULT_BACKBONE, 64, "cpu", "auto", notes)
    assert isinstance(model, backbones.Backbone) and device == "cpu"
    assert notes and "onnxruntime not used" in notes[0]
    with pytest.raises(Exception, match="--runtime torch"):
        backbones.load_embedder(backbones.DEFAULT_BACKBONE, 64, "cpu", "onnx", [])
    with pytest.raises(Exception, match="only the default backbone"):
        backbones.load_embedder("resnet18", 64, "cpu", "onnx", [])
