"""``analyze --engine ray``: the per-image stage on a local Ray (2 CPUs) gives the default
engine's issues and embeddings, resumes after an interruption sending only the rest, and
fails in one line when Ray is missing or the cluster does not answer."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from curator import Project
from curator.analyze import AnalyzeOptions, analyze
from curator.cli import main
from curator.errors import InterruptedRun
from curator.importers import import_project

from conftest import free_port, run_curator
from test_core_resume import _make_folder

BATCH = 8


def _opts(**kw):
    base = dict(batch_size=BATCH, workers=0, projection="pca", progress=False)
    base.update(kw)
    return AnalyzeOptions(**base)


def _issues(project: Project) -> list:
    return sorted(map(tuple, project.issues()[["item_id", "issue"]].to_numpy().tolist()))


def _embeddings(project: Project) -> np.ndarray:
    return np.load(project.array_path(project.analysis["embeddings_file"]))


@pytest.fixture(scope="module")
def projects(tmp_path_factory):
    """One folder (40 digits, a dark image, an exact copy) imported three times and analyzed:
    by the default engine, by ``--engine ray`` on the command line, and by the Ray engine
    interrupted after one batch and then resumed (recording which items Ray was sent)."""
    pytest.importorskip("ray.data")
    from curator import ray_engine

    base = tmp_path_factory.mktemp("ray_engine")
    before = _ray_traces()
    _make_folder(base / "src")
    local, cli, resumed = (import_project(base / "src", base / name) for name in ("local", "cli", "resumed"))
    analyze(local, _opts())

    run = run_curator("analyze", cli.root, "-q", "--projection", "pca", "--workers", "0", "--batch-size", BATCH,
                      "--engine", "ray", "--ray-cpus", 2)
    sent = []
    original = ray_engine.RayEngine.results

    def recording(self, ids, paths):
        sent.append(list(ids))
        return original(self, ids, paths)

    ray_engine.RayEngine.results = recording
    try:
        with pytest.raises(InterruptedRun) as stopped:
            analyze(resumed, _opts(engine="ray", ray_cpus=2, stop_after_batches=1))
        saved_after_stop = resumed.db.execute("SELECT COUNT(*) FROM metrics").fetchone()[0]
        report = analyze(resumed, _opts(engine="ray", ray_cpus=2))
    finally:
        ray_engine.RayEngine.results = original
    return {"local": Project(local.root), "cli": cli, "cli_run": run, "resumed": Project(resumed.root),
            "sent": sent, "saved_after_stop": saved_after_stop, "report": report, "stopped": str(stopped.value),
            "n": len(local), "traces_before": before, "traces_after": _ray_traces()}


def _ray_traces() -> set:
    """What a Ray run could leave: temporary folders, a token file, the token variable."""
    import tempfile

    found = {p for p in os.listdir(tempfile.gettempdir()) if p.startswith("curator-ray-")}
    if os.path.exists(os.path.expanduser("~/.ray/auth_token")):
        found.add("~/.ray/auth_token")
    found |= {k for k in ("RAY_AUTH_TOKEN", "RAY_AUTH_MODE") if k in os.environ}
    return found


@pytest.mark.slow  # three private Ray start-ups: 30-60 s on a busy 2-core machine
def test_ray_engine_finds_the_default_engines_issues(projects):
    run = projects["cli_run"]
    assert run.returncode == 0, run.stderr
    assert f"analyzed {projects['n']} images ({projects['n']} processed, 0 reused)" in run.stdout
    assert "Ray start-up" in run.stdout
    assert "Traceback" not in run.stderr and "WARNING" not in run.stderr
    local, ray_cli = projects["local"], Project(projects["cli"].root)
    expected = _issues(local)
    assert {"dark", "exact_duplicate"} <= {issue for _, issue in expected}
    assert _issues(ray_cli) == expected
    np.testing.assert_allclose(_embeddings(ray_cli), _embeddings(local), atol=1e-4)
    np.testing.assert_array_equal(np.asarray(ray_cli.thumbnails()), np.asarray(local.thumbnails()))


@pytest.mark.slow
def test_interrupted_ray_run_resumes_with_only_the_rest(projects):
    n = projects["n"]
    assert projects["saved_after_stop"] == BATCH  # the batch written before the stop is kept
    assert f"{BATCH} of {n} images are done" in projects["stopped"]
    first, second = projects["sent"]
    assert sorted(first) == list(range(n))
    done_first = n - len(second)
    assert done_first == BATCH and len(set(second)) == len(second)  # only the pending rest was sent
    report = projects["report"]
    assert (report.processed, report.reused) == (n - BATCH, BATCH)
    resumed, local = projects["resumed"], projects["local"]
    assert _issues(resumed) == _issues(local)
    np.testing.assert_allclose(_embeddings(resumed), _embeddings(local), atol=1e-4)


@pytest.mark.slow
def test_ray_engine_leaves_no_ray_behind(projects):
    """The private Ray is shut down, its temporary folder removed, no token file or variable left."""
    import ray

    assert not ray.is_initialized()
    assert projects["traces_after"] <= projects["traces_before"]


def _small_project(tmp_path) -> Project:
    _make_folder(tmp_path / "src", per_class=1)
    return import_project(tmp_path / "src", tmp_path / "proj")


INTERRUPT_TWICE = """
import sys
sys.path.insert(0, sys.argv[2])
from pathlib import Path
from curator.analyze import AnalyzeOptions, analyze
from curator.errors import InterruptedRun
from curator.importers import import_project
from test_core_resume import _make_folder
base = Path(sys.argv[1])
_make_folder(base / "src")
for i in range(2):
    try:
        analyze(import_project(base / "src", base / f"p{i}"), AnalyzeOptions(
            batch_size=8, workers=0, projection="pca", progress=False, engine="ray", ray_cpus=2, stop_after_batches=1))
    except InterruptedRun:
        print("interrupted", i, flush=True)
"""


@pytest.mark.slow
def test_an_interrupted_ray_run_ends_in_python_not_in_ray(tmp_path):
    """Stopping the iteration early must leave no Ray Data thread fetching blocks when Ray is
    shut down: one that touches the stopped core worker makes Ray end the whole process
    (exit 1, output lost; it took the test suite down twice). In a subprocess, so a crash is a
    failure here, twice, since the race does not lose every time."""
    pytest.importorskip("ray.data")
    import subprocess

    out = subprocess.run([sys.executable, "-c", INTERRUPT_TWICE, str(tmp_path), os.path.dirname(__file__)],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["interrupted", "0", "interrupted", "1"]
    assert "already been shutdown" not in out.stderr


def test_missing_ray_is_one_line_saying_how_to_install(tmp_path, monkeypatch):
    project = _small_project(tmp_path)
    project.close()
    for name in [m for m in sys.modules if m == "ray" or m.startswith("ray.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    result = CliRunner().invoke(main, ["analyze", str(tmp_path / "proj"), "--engine", "ray", "-q"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "pip install 'curator[ray]'" in lines[0], result.output
    assert not Project(tmp_path / "proj").analysis_incomplete  # refused before touching the project


def test_unreachable_cluster_is_one_line(tmp_path):
    pytest.importorskip("ray.data")
    project = _small_project(tmp_path)
    project.close()
    port = free_port()  # nothing listens there
    result = CliRunner().invoke(main, ["analyze", str(tmp_path / "proj"), "--engine", "ray", "-q",
                                       "--address", f"127.0.0.1:{port}"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and f"no Ray cluster answers at 127.0.0.1:{port}" in lines[0], result.output
    result = CliRunner().invoke(main, ["analyze", str(tmp_path / "proj"), "--address", "x:1"])
    assert result.exit_code == 1 and "go with --engine ray" in result.output


def test_a_port_that_is_not_ray_is_one_line_at_once(tmp_path):
    """A web server (say, the dashboard's port) instead of the GCS: Ray itself would retry for minutes."""
    import threading
    from http.server import HTTPServer, SimpleHTTPRequestHandler

    pytest.importorskip("ray.data")
    project = _small_project(tmp_path)
    project.close()
    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):  # the server's own log would land in the captured output
            pass

    server = HTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        address = f"127.0.0.1:{server.server_address[1]}"
        result = CliRunner().invoke(main, ["analyze", str(tmp_path / "proj"), "--engine", "ray", "--address", address])
    finally:
        server.shutdown()
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and f"something answers at {address}, but not a Ray cluster" in lines[0], result.output


def test_a_killed_runs_leftovers_are_swept_and_a_live_runs_kept(tmp_path):
    """SIGKILL leaves a private Ray's folder (and agents holding files in it): the next run
    removes them, but never the folder of a curator that is still running."""
    import subprocess

    from curator.ray_local import OWNER_FILE, TEMP_PREFIX, _start_time, sweep_stale

    dead = subprocess.Popen(["true"])
    dead.wait()
    stale, live = tmp_path / f"{TEMP_PREFIX}stale", tmp_path / f"{TEMP_PREFIX}live"
    stale.mkdir()
    live.mkdir()
    (stale / OWNER_FILE).write_text(f"{dead.pid} {_start_time(os.getpid())}")
    (live / OWNER_FILE).write_text(f"{os.getpid()} {_start_time(os.getpid())}")
    with open(stale / "agent.log", "w") as log:  # a leftover "agent" holding a file in the stale folder
        agent = subprocess.Popen(["sleep", "60"], stdout=log)
    try:
        assert sweep_stale(str(tmp_path)) == [str(stale)]
        assert agent.wait(timeout=10) != 0  # ended by the sweep
    finally:
        if agent.poll() is None:
            agent.kill()
    assert not stale.exists() and live.exists()
