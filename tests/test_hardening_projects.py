"""Issue #10 (hardening), project files: a damaged database or manifest (15), a read-only
project (16), a full disk (17), damaged array files (18), two analyze runs at once and an
unfinished re-analysis (19). Each ends in one line, never a traceback, and nothing is lost."""

from __future__ import annotations

import errno
import json
import os
import shutil
import sqlite3
import subprocess
import time
from collections import namedtuple

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from curator import Project
from curator.analyze import AnalyzeOptions, analyze
from curator.arrays import checksum, open_array, problem
from curator.errors import CuratorError, DamagedProject, InterruptedRun, NotEnoughSpace, ReadOnlyProject
from curator.importers import import_project
from curator.store import connect, write_failure

from conftest import _curator_command, digit_images, write_class_folders

PCA = ("-q", "--projection", "pca", "--workers", "0", "--batch-size", "16")


def _opts(**kw):
    base = dict(batch_size=16, workers=0, projection="pca", progress=False)
    base.update(kw)
    return AnalyzeOptions(**base)


@pytest.fixture(scope="module")
def tiny_analyzed(tmp_path_factory):
    """A 42-image project, analyzed once (PCA); tests copy it with ``tiny``."""
    base = tmp_path_factory.mktemp("hardening_projects")
    images, labels = digit_images(per_class=4, size=32)
    write_class_folders(base / "src", images, labels)
    Image.fromarray((images[1] * 0.15).astype(np.uint8)).save(base / "src" / "0" / "dark.png")
    Image.fromarray(images[5]).save(base / "src" / "0" / "copy.png")
    project = import_project(base / "src", base / "tiny", copy=True)
    analyze(project, _opts())
    project.close()
    return base / "tiny"


@pytest.fixture
def tiny(tiny_analyzed, tmp_path):
    dest = tmp_path / "tiny"
    shutil.copytree(tiny_analyzed, dest)
    return dest


def _one_line_error(res, *needles):
    """rc != 0 and exactly one ``error:`` line on stderr (no traceback) holding the needles."""
    assert res.returncode != 0, (res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert "Traceback" not in res.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


Result = namedtuple("Result", "returncode stdout stderr")


def _cli_in_process(*args) -> Result:
    """The real CLI in this process, so monkeypatches (disk space, fallocate) reach it."""
    from curator.cli import main

    res = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return Result(res.exit_code, res.stdout, res.stderr)


# ------------------------------------------------------------------ 15: damaged database
def _truncate(db):
    data = db.read_bytes()
    db.write_bytes(data[: len(data) // 2])


def _garbage(db):
    db.write_bytes(os.urandom(4000))


def _empty(db):
    db.write_bytes(b"")


def _scribble(db):
    """Header intact, pages after the schema overwritten: only a query notices."""
    data = bytearray(db.read_bytes())
    page = 4096
    data[3 * page :] = np.random.default_rng(1).integers(0, 256, len(data) - 3 * page, dtype=np.uint8).tobytes()
    db.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", [_truncate, _garbage, _empty, _scribble], ids=lambda f: f.__name__.strip("_"))
def test_damaged_database_is_one_line_in_every_command(tiny, curator_cli, damage):
    db = tiny / "curator.db"
    for extra in ("-wal", "-shm"):
        assert not (tiny / f"curator.db{extra}").exists()
    damage(db)
    for args in (("summary", tiny), ("export", tiny), ("analyze", tiny, *PCA)):
        _one_line_error(curator_cli(*args), "project database", "damaged", "curator import")
    # the API the explorer uses raises the same one-line error
    with pytest.raises(DamagedProject, match="damaged"):
        with Project(tiny, readonly=True) as p:
            p.summary()
            p.issues()


# ------------------------------------------------------------------ 16: read-only project
def _make_read_only(root):
    for path in [root, *root.rglob("*")]:
        mode = path.stat().st_mode
        path.chmod((mode | 0o444 | (0o111 if path.is_dir() else 0)) & ~0o222)


def _make_writable(root):
    for path in [root, *root.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o200)


def _as_unprivileged(args):
    """Run the CLI where write permission is really enforced: as is for a normal user; for
    root, inside a new user namespace (``unshare -U``), where root's files are not its own."""
    cmd = _curator_command() + [str(a) for a in args]
    if os.geteuid() == 0:
        cmd = ["unshare", "-U", *cmd]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, stdin=subprocess.DEVNULL)


def test_read_only_project_can_be_read_and_analyze_says_why_not(tiny):
    if os.geteuid() == 0:
        probe = subprocess.run(["unshare", "-U", "true"], capture_output=True) if shutil.which("unshare") else None
        if probe is None or probe.returncode != 0:
            pytest.skip("running as root without user namespaces: write permission cannot be taken away")
    before = {p.name: p.read_bytes() for p in tiny.iterdir() if p.is_file()}
    _make_read_only(tiny)
    try:
        if os.geteuid() != 0:
            assert not os.access(tiny, os.W_OK)
        summary = _as_unprivileged(["summary", tiny])
        assert summary.returncode == 0, summary.stderr
        assert "42 images" in summary.stdout and "Traceback" not in summary.stderr
        export = _as_unprivileged(["export", tiny, "--issue", "dark"])
        assert export.returncode == 0, export.stderr
        assert "dark.png" in export.stdout
        res = _as_unprivileged(["analyze", tiny, *PCA])
        _one_line_error(res, "read-only", "copy the project")
    finally:
        _make_writable(tiny)
    after = {p.name: p.read_bytes() for p in tiny.iterdir() if p.is_file()}
    assert after == before  # nothing was written into the project


def test_readonly_connection_cannot_write(tiny):
    """What summary/export use: SQLite's read-only mode, with no journal-mode change."""
    conn = connect(tiny / "curator.db", readonly=True)
    try:
        assert conn.execute("SELECT COUNT(*) FROM items").fetchone()[0] == 42
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            conn.execute("INSERT INTO tags(item_id, tag) VALUES (0, 'x')")
    finally:
        conn.close()
    assert Project(tiny, readonly=True).summary()["items"] == 42


def test_readonly_open_falls_back_to_immutable_where_sqlite_cannot_make_its_index(tiny, monkeypatch):
    """Root cannot be denied writing here, so play the refusal SQLite gives in a read-only
    folder (no -shm can be made) and check the open is retried as an immutable file."""
    real_connect = sqlite3.connect
    opened = []

    class NoIndexHere(sqlite3.Connection):
        def execute(self, *args):
            exc = sqlite3.OperationalError("attempt to write a readonly database")
            exc.sqlite_errorcode = 1544  # SQLITE_READONLY_DIRECTORY
            raise exc

    def connect_spy(database, *args, **kwargs):
        opened.append(database)
        if "immutable=1" not in database:
            kwargs["factory"] = NoIndexHere
        return real_connect(database, *args, **kwargs)

    monkeypatch.setattr("curator.store.sqlite3.connect", connect_spy)
    conn = connect(tiny / "curator.db", readonly=True)
    try:
        assert conn.execute("SELECT COUNT(*) FROM items").fetchone()[0] == 42
    finally:
        conn.close()
    assert [u.split("?", 1)[1] for u in opened] == ["mode=ro", "mode=ro&immutable=1"]
    assert all(u.startswith("file:") for u in opened)


# ------------------------------------------------------------------ 17: full disk
def test_not_enough_free_space_is_refused_up_front(tiny, monkeypatch):
    (tiny / "arrays" / "thumbnails.npy").unlink()
    manifest = (tiny / "curator.json").read_bytes()
    Usage = namedtuple("Usage", "total used free")
    monkeypatch.setattr("curator.arrays.shutil.disk_usage", lambda p: Usage(10 << 30, 10 << 30, 1 << 20))
    res = _cli_in_process("analyze", tiny, *PCA)
    line = _one_line_error(res, "not enough free disk space", "thumbnails.npy", "1.0 MiB are free")
    assert "needs about" in line
    assert (tiny / "curator.json").read_bytes() == manifest  # refused before changing anything
    assert sorted(p.name for p in (tiny / "arrays").iterdir() if "tmp" in p.name) == []


def test_disk_full_when_creating_an_array_is_one_line_not_sigbus(tiny, monkeypatch):
    (tiny / "arrays" / "thumbnails.npy").unlink()

    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    res = _cli_in_process("analyze", tiny, *PCA)
    _one_line_error(res, "not enough free disk space", "thumbnails.npy")
    assert [p.name for p in (tiny / "arrays").iterdir() if "tmp" in p.name] == []
    assert Project(tiny, readonly=True).summary()["flagged_items"] > 0  # the database is intact


def test_array_files_are_preallocated_not_sparse(tmp_path):
    path = tmp_path / "big.npy"
    arr, created = open_array(path, (2048, 1024), np.float32)
    del arr
    assert created
    st = path.stat()
    assert st.st_blocks * 512 >= st.st_size - 4096, "sparse file: a full disk would kill analyze with SIGBUS"


def test_disk_full_while_writing_results_is_one_line_and_resumable(tiny, monkeypatch, curator_cli):
    (tiny / "arrays" / "projection.npy").unlink()
    before = Project(tiny, readonly=True).summary()

    def full(path, array):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr("curator.analyze.atomic_save_npy", full)
    res = _cli_in_process("analyze", tiny, *PCA)
    _one_line_error(res, "is full", "free some space")
    assert Project(tiny, readonly=True).summary() == before
    monkeypatch.undo()
    again = curator_cli("analyze", tiny, *PCA)
    assert again.returncode == 0, again.stderr
    assert (tiny / "arrays" / "projection.npy").exists()


def test_sqlite_disk_full_and_read_only_errors_are_explained(tmp_path):
    full = sqlite3.OperationalError("database or disk is full")
    full.sqlite_errorcode = sqlite3.SQLITE_FULL
    assert isinstance(write_failure(full, tmp_path), NotEnoughSpace)
    ro = sqlite3.OperationalError("attempt to write a readonly database")
    ro.sqlite_errorcode = 1544  # SQLITE_READONLY_DIRECTORY
    assert isinstance(write_failure(ro, tmp_path), ReadOnlyProject)
    assert isinstance(write_failure(OSError(errno.EROFS, "Read-only file system"), tmp_path), ReadOnlyProject)
    assert write_failure(OSError(errno.ENOENT, "No such file"), tmp_path) is None
    # denied a file outside the project (a model cache, say): not "the project is read-only"
    assert write_failure(PermissionError(errno.EACCES, "Permission denied", "/elsewhere/x"), tmp_path) is None
    inside = PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "arrays" / "x.npy"))
    assert isinstance(write_failure(inside, tmp_path), ReadOnlyProject)


# ------------------------------------------------------------------ 18: damaged array files
def test_array_problems_are_named(tmp_path):
    path = tmp_path / "a.npy"
    assert problem(path, (4, 3), np.float32) == "missing"
    np.save(path, np.ones((4, 3), np.float32))
    good = checksum(path)
    assert problem(path, (4, 3), np.float32, good) is None
    assert problem(path, (4, None), np.float32) is None
    assert "shape" in problem(path, (5, 3), np.float32)
    assert "float64" in problem(path, (4, 3), np.float64)
    data = path.read_bytes()
    path.write_bytes(data[:-7])
    assert "truncated" in problem(path, (4, 3), np.float32)
    path.write_bytes(data + b"junk")
    assert "overwritten" in problem(path, (4, 3), np.float32)
    path.write_bytes(data[:-4] + b"\xff\xff\xff\xff")  # same size, valid header
    assert problem(path, (4, 3), np.float32) is None  # the structure alone cannot tell...
    assert "checksum" in problem(path, (4, 3), np.float32, good)  # ...the recorded CRC can
    path.write_bytes(b"garbage" * 100)
    assert "not a valid .npy" in problem(path, (4, 3), np.float32)


def test_damaged_embeddings_and_thumbnails_are_rebuilt_and_reported(tiny, curator_cli):
    emb = next((tiny / "arrays").glob("embeddings-*.npy"))
    thumbs = tiny / "arrays" / "thumbnails.npy"
    good_emb = np.load(emb)
    with open(emb, "r+b") as fh:  # truncated
        fh.truncate(emb.stat().st_size // 2)
    data = bytearray(thumbs.read_bytes())  # garbage of the right size, header intact
    data[-3000:] = b"\x07" * 3000
    thumbs.write_bytes(bytes(data))
    with pytest.raises(DamagedProject, match="truncated"):
        Project(tiny).embeddings()  # what the explorer reads: one line, not "mmap length ..."
    res = curator_cli("analyze", tiny, *PCA)
    assert res.returncode == 0, res.stderr
    assert "nothing changed" not in res.stdout
    assert "42 processed" in res.stdout
    rebuilt = [line for line in res.stdout.splitlines() if line.startswith("rebuilt")]
    assert any(emb.name in line and "truncated" in line for line in rebuilt), res.stdout
    assert any("thumbnails.npy" in line and "checksum" in line for line in rebuilt), res.stdout
    np.testing.assert_allclose(Project(tiny).embeddings(), good_emb, rtol=1e-4, atol=1e-5)
    assert "up to date" in curator_cli("analyze", tiny, *PCA).stdout


def test_deleted_projection_is_rebuilt_and_reported(tiny, curator_cli):
    (tiny / "arrays" / "projection.npy").unlink()
    res = curator_cli("analyze", tiny, *PCA)
    assert res.returncode == 0, res.stderr
    assert "nothing changed" not in res.stdout
    assert "rebuilt damaged or missing arrays/projection.npy (missing)" in res.stdout
    assert Project(tiny).projection().shape == (42, 2)


# ------------------------------------------------------------------ 19: concurrent and unfinished runs
def test_second_analyze_on_a_project_fails_at_once(tiny, curator_cli):
    with Project(tiny).analyze_lock():  # this process is "the first analyze"
        t0 = time.monotonic()
        res = curator_cli("analyze", tiny, *PCA)
        elapsed = time.monotonic() - t0
    _one_line_error(res, "another `curator analyze` is running", f"(pid {os.getpid()})")
    assert elapsed < 60
    assert "analysis_incomplete" not in json.loads((tiny / "curator.json").read_text())
    assert curator_cli("analyze", tiny, *PCA).returncode == 0  # the lock is gone with its holder


def test_simultaneous_array_creation_uses_unique_temporary_files(tmp_path, monkeypatch):
    """Two creators of the same array interleaved (what two processes did): with one fixed
    temporary name the second replaced the first's file and the first's rename failed."""
    import numpy.lib.format as npy_format

    real = npy_format.open_memmap
    path = tmp_path / "thumbnails.npy"
    made = []

    def interleaved(filename, mode="r+", *args, **kwargs):
        result = real(filename, mode, *args, **kwargs)
        if mode == "w+":
            made.append(os.path.basename(filename))
            if len(made) == 1:  # the "other process" makes the same array before our rename
                inner, _ = open_array(path, (8, 4), np.uint8, recreate=True)
                del inner
        return result

    monkeypatch.setattr(npy_format, "open_memmap", interleaved)
    arr, created = open_array(path, (8, 4), np.uint8, recreate=True)
    assert created and arr.shape == (8, 4)
    del arr
    assert len(made) == 2 and made[0] != made[1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["thumbnails.npy"]


def test_unfinished_reanalysis_makes_summary_and_export_warn(tiny, curator_cli):
    image = next((tiny / "images").rglob("*.png"))
    st = image.stat()
    os.utime(image, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))  # one image to redo
    with pytest.raises(InterruptedRun):
        analyze(Project(tiny), _opts(stop_after_batches=1))  # killed mid-run
    for args in (("summary", tiny), ("export", tiny)):
        res = curator_cli(*args)
        assert res.returncode == 0, res.stderr
        warning = [line for line in res.stderr.splitlines() if line.startswith("warning:")]
        assert len(warning) == 1 and "has not finished" in warning[0] and "may be stale" in warning[0], res.stderr
    assert curator_cli("analyze", tiny, *PCA).returncode == 0
    assert "warning" not in curator_cli("summary", tiny).stderr


@pytest.mark.parametrize("content", ["[1, 2]", "null", "42", '"a string"'])
def test_manifest_that_is_not_an_object_is_one_line(tiny, curator_cli, content):
    (tiny / "curator.json").write_text(content)
    for args in (("summary", tiny), ("export", tiny), ("analyze", tiny, *PCA)):
        _one_line_error(curator_cli(*args), "curator.json", "not an object")
    with pytest.raises(CuratorError):
        Project(tiny)
