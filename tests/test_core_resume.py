"""Resumable analysis: simulated interruption, SIGKILL mid-run, and incremental re-runs."""

from __future__ import annotations

import os
import re
import shutil
import signal
import sqlite3
import subprocess
import time

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from curator import Project
from curator.analyze import AnalyzeOptions, analyze
from curator.errors import CuratorError, InterruptedRun
from curator.importers import import_project

from conftest import _curator_command, digit_images, run_curator, write_class_folders

N_PER_CLASS = 4  # 40 clean images + 2 planted


def _make_folder(root, per_class=N_PER_CLASS, size=32):
    images, labels = digit_images(per_class=per_class, size=size)
    paths = write_class_folders(root, images, labels)
    # planted: a dark image and an exact copy, so the issue list is not trivial
    Image.fromarray((images[1] * 0.15).astype(np.uint8)).save(root / "0" / "dark.png")
    Image.fromarray(images[5]).save(root / "0" / "copy.png")
    return paths


def _opts(**kw):
    base = dict(batch_size=8, workers=0, projection="pca", progress=False)
    base.update(kw)
    return AnalyzeOptions(**base)


def _issue_table(project: Project) -> pd.DataFrame:
    df = project.issues()
    return df.sort_values(["issue", "item_id"]).reset_index(drop=True)


@pytest.fixture(scope="module")
def resume_runs(tmp_path_factory):
    """Interrupted run, resumed run, up-to-date run on one project; an uninterrupted reference
    run on a second import of the same folder."""
    base = tmp_path_factory.mktemp("resume")
    src = base / "src"
    _make_folder(src)
    proj = import_project(src, base / "interrupted", copy=True)  # self-contained: copyable
    ref = import_project(src, base / "reference")
    n = len(proj)

    with pytest.raises(InterruptedRun) as exc:
        analyze(proj, _opts(stop_after_batches=1))
    after_interrupt = {
        "metrics": proj.db.execute("SELECT COUNT(*) FROM metrics").fetchone()[0],
        "issues": proj.db.execute("SELECT COUNT(*) FROM issues").fetchone()[0],
        "analyzed": Project(proj.root).is_analyzed,
        "message": str(exc.value),
        "exit_code": exc.value.exit_code,
    }
    resumed = analyze(proj, _opts())
    third = analyze(proj, _opts())
    reference = analyze(ref, _opts())
    return {"n": n, "src": src, "proj": proj, "ref": ref, "after_interrupt": after_interrupt,
            "resumed": resumed, "third": third, "reference": reference, "base": base}


def test_interruption_raises_and_keeps_finished_batch(resume_runs):
    info = resume_runs["after_interrupt"]
    n = resume_runs["n"]
    assert info["metrics"] == 8  # exactly the first batch is saved
    assert info["issues"] == 0  # no partial issue list
    assert info["analyzed"] is False  # the project does not claim an analysis
    assert info["exit_code"] == 130
    assert isinstance(InterruptedRun("x"), CuratorError)
    assert f"8 of {n}" in info["message"]


def test_resume_processes_only_the_rest(resume_runs):
    n = resume_runs["n"]
    r = resume_runs["resumed"]
    assert (r.items, r.processed, r.reused) == (n, n - 8, 8)
    assert not r.up_to_date
    assert resume_runs["proj"].is_analyzed


def test_third_run_is_up_to_date(resume_runs):
    t = resume_runs["third"]
    assert t.up_to_date is True
    assert (t.processed, t.reused) == (0, resume_runs["n"])
    assert t.issues == resume_runs["resumed"].issues


def test_resumed_run_gives_same_issues_as_uninterrupted(resume_runs):
    a = _issue_table(resume_runs["proj"])
    b = _issue_table(resume_runs["ref"])
    ref = resume_runs["reference"]
    assert (ref.processed, ref.reused) == (resume_runs["n"], 0)
    assert len(a) > 0
    assert set(a["issue"]) >= {"dark", "exact_duplicate"}
    cols = ["item_id", "issue", "severity", "suggested_label", "group_id", "keep"]
    pd.testing.assert_frame_equal(a[cols], b[cols])
    np.testing.assert_allclose(a["score"], b["score"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(resume_runs["proj"].embeddings(), resume_runs["ref"].embeddings(), rtol=1e-4, atol=1e-5)
    assert resume_runs["resumed"].issues == ref.issues


def test_lanes_interrupt_resume_and_match_the_inline_run(resume_runs, tmp_path):
    """Two lanes (each embedding half of the batch): an interruption keeps the finished
    batches, the resumed run completes, and the issues equal those of the inline reference."""
    proj = import_project(resume_runs["src"], tmp_path / "lanes")
    with pytest.raises(InterruptedRun):
        analyze(proj, _opts(workers=2, stop_after_batches=1))
    saved = proj.db.execute("SELECT COUNT(*) FROM metrics").fetchone()[0]
    assert 0 < saved <= 8
    report = analyze(proj, _opts(workers=2))
    assert (report.processed, report.reused) == (resume_runs["n"] - saved, saved)
    cols = ["item_id", "issue", "severity", "suggested_label", "group_id", "keep"]
    pd.testing.assert_frame_equal(_issue_table(proj)[cols], _issue_table(resume_runs["ref"])[cols])
    np.testing.assert_allclose(proj.embeddings(), resume_runs["ref"].embeddings(), rtol=1e-3, atol=1e-4)


def test_changed_or_touched_image_is_the_only_one_reprocessed(resume_runs, tmp_path):
    # a private copy of the analyzed, self-contained project (copy2 keeps the mtimes)
    shutil.copytree(resume_runs["proj"].root, tmp_path / "p")
    proj = Project(tmp_path / "p")
    assert analyze(proj, _opts()).up_to_date
    n = resume_runs["n"]
    items = proj.items()
    # 1) modify one image: its content changes (now dark) -> only it is processed
    target_id = 12
    target = proj.resolve(items.loc[target_id, "location"])
    arr = np.asarray(Image.open(target))
    Image.fromarray((arr * 0.1).astype(np.uint8)).save(target)
    st = os.stat(target)
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))
    r = analyze(proj, _opts())
    assert (r.processed, r.reused, r.up_to_date) == (1, n - 1, False)
    dark = proj.issues(["dark"])
    assert target_id in set(dark["item_id"])
    # 2) touch another image (same bytes, new mtime) -> only it is processed
    other = proj.resolve(items.loc[20, "location"])
    st = os.stat(other)
    os.utime(other, ns=(st.st_atime_ns, st.st_mtime_ns + 3_000_000_000))
    r = analyze(proj, _opts())
    assert (r.processed, r.reused) == (1, n - 1)
    # 3) and then nothing
    assert analyze(proj, _opts()).up_to_date


def test_label_change_recomputes_issues_without_re_embedding(resume_runs, tmp_path):
    """The issue fingerprint includes labels: relabelling redoes stage 2 only."""
    shutil.copytree(resume_runs["ref"].root, tmp_path / "p")
    proj = Project(tmp_path / "p")
    n = resume_runs["n"]
    assert analyze(proj, _opts()).up_to_date
    before = np.load(proj.array_path("label_proba.npy"))
    proj.db.execute("UPDATE items SET label = '7' WHERE item_id = 0")  # a '0' filed as 7
    r = analyze(proj, _opts())
    assert not r.up_to_date
    assert (r.processed, r.reused) == (0, n)
    after = np.load(proj.array_path("label_proba.npy"))
    # the label model was refitted with the new label; the image still looks like a '0'
    assert not np.allclose(before[0], after[0])
    assert after[0, 0] > after[0, 7]
    assert analyze(proj, _opts()).up_to_date


def test_alignment_files_left_by_a_killed_run_are_removed(resume_runs, tmp_path):
    """A run killed while large near-duplicate alignment files were in the arrays folder
    leaves them; the next analysis that recomputes the issues removes them."""
    shutil.copytree(resume_runs["ref"].root, tmp_path / "p")
    proj = Project(tmp_path / "p")
    stale = proj.array_path(".curator-align-abc123")
    stale.mkdir()
    (stale / "colour-32.npy").write_bytes(b"x" * 1000)
    proj.db.execute("UPDATE items SET label = '7' WHERE item_id = 0")  # the issues are recomputed
    assert not analyze(proj, _opts()).up_to_date
    assert not stale.exists()
    assert any(proj.array_path("").glob("embeddings-*.npy"))  # nothing else went


def test_missing_embeddings_file_is_rebuilt_by_rerunning(resume_runs, tmp_path):
    """The error says "run analyze again", so running it again must repair the project."""
    shutil.copytree(resume_runs["ref"].root, tmp_path / "p")
    proj = Project(tmp_path / "p")
    n = resume_runs["n"]
    emb_file = proj.array_path(proj.analysis["embeddings_file"])
    emb_file.unlink()
    first = None
    try:
        first = analyze(proj, _opts())
    except CuratorError:
        pass  # acceptable once, as long as the next run recovers
    report = first or analyze(proj, _opts())
    assert report.processed == n
    assert emb_file.exists()
    assert proj.embeddings().shape[0] == n


# ----------------------------------------------------------------------------- SIGKILL
def test_sigkill_mid_run_then_resume(tmp_path):
    src = tmp_path / "src"
    _make_folder(src, per_class=6)
    root = tmp_path / "proj"
    import_project(src, root).close()
    n = len(Project(root))
    db = root / "curator.db"

    cmd = _curator_command() + ["analyze", str(root), "-q", "--projection", "pca", "--workers", "0", "--batch-size", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    done_at_kill = None
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
                    count = conn.execute("SELECT COUNT(*) FROM metrics").fetchone()[0]
            except sqlite3.OperationalError:
                count = 0
            if count >= 6:
                os.kill(proc.pid, signal.SIGKILL)
                done_at_kill = count
                break
            time.sleep(0.01)
    finally:
        if proc.poll() is None and done_at_kill is None:
            proc.kill()
        proc.communicate(timeout=60)
    assert done_at_kill is not None, "analyze finished (or hung) before it could be killed"
    assert proc.returncode == -signal.SIGKILL
    assert done_at_kill < n

    # the project is still readable and consistent after the kill
    p = Project(root)
    assert len(p) == n
    assert not p.is_analyzed
    saved = p.db.execute("SELECT COUNT(*) FROM metrics").fetchone()[0]
    assert done_at_kill <= saved < n
    p.close()
    summary = run_curator("summary", root)
    assert summary.returncode == 0, summary.stderr
    assert "not analyzed" in summary.stdout
    export = run_curator("export", root)
    assert export.returncode != 0 and export.stderr.startswith("error:")

    res = run_curator("analyze", root, "-q", "--projection", "pca", "--workers", "0", "--batch-size", "8")
    assert res.returncode == 0, res.stderr
    m = re.search(r"analyzed (\d+) images \((\d+) processed, (\d+) reused\)", res.stdout)
    assert m, res.stdout
    total, processed, reused = map(int, m.groups())
    assert total == n and processed + reused == n
    assert reused >= saved and processed > 0
    p = Project(root)
    assert p.is_analyzed
    assert set(p.issues()["issue"]) >= {"dark", "exact_duplicate"}
