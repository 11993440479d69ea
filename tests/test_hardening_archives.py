"""Issue #10 hardening of ``curator download``: extraction that cannot write outside its folder
(symlink chains, link members replacing extracted files, zip links), resumable ``.part``
downloads over HTTP Range, and staging folders of a killed run removed by the next run.

Everything runs against a loopback HTTP server (no network); unlike ``test_download``'s, the
server here can honour ``Range`` requests and records what it was asked and how much it sent."""

from __future__ import annotations

import http.server
import io
import os
import re
import signal
import stat
import subprocess
import sys
import tarfile
import threading
import time
import zipfile
from collections import defaultdict
from pathlib import Path

import pytest
from test_download import (
    CURATOR,
    caltech_zip,
    env,  # noqa: F401  (fixture, resolved against this module's ``server``)
    fake_idx_dataset,
    leftovers,
    publish,
    run,
)

from curator.project import Project
from sandbox_datasets import _common, caltech101, mnist


# ------------------------------------------------------------------------------- HTTP server
class _RangeServer(http.server.ThreadingHTTPServer):
    """Serves ``files``; with ``honour_ranges`` it answers ``Range: bytes=N-`` with 206 (or 416)
    and advertises ``Accept-Ranges: bytes``, otherwise it ignores Range like http.server does."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _RangeHandler)
        self.files: dict[str, bytes] = {}
        self.requests: list[str] = []
        self.ranges: dict[str, list[str | None]] = defaultdict(list)  # path -> Range header per request
        self.sent: dict[str, int] = defaultdict(int)  # path -> body bytes sent
        self.honour_ranges = True
        self.cut: set[str] = set()  # paths whose transfers stop half way (connection closed)
        self.stall: set[str] = set()  # paths whose transfers stop half way and hang until released
        self.release = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def count(self, fragment: str = "") -> int:
        return sum(fragment in r for r in self.requests)


class _RangeHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        srv = self.server
        srv.requests.append(self.path)
        asked = self.headers.get("Range")
        srv.ranges[self.path].append(asked)
        body = srv.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", asked or "")
        if srv.honour_ranges and match:
            start = int(match.group(1))
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        if srv.honour_ranges:
            self.send_header("Accept-Ranges", "bytes")
        payload = body[start:]
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.path in srv.cut | srv.stall:
            payload = payload[: len(payload) // 2]
            self.close_connection = True
        try:
            self.wfile.write(payload)
            self.wfile.flush()
            srv.sent[self.path] += len(payload)
            if self.path in srv.stall:
                srv.release.wait(60)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    srv = _RangeServer()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.release.set()
    srv.shutdown()
    srv.server_close()


# ------------------------------------------------------------------------------- helpers
def symlink(name: str, target: str) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, target
    return info, None


def hardlink(name: str, target: str) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.LNKTYPE, target
    return info, None


def regular(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


# The inner archive is extracted into DIR/.curator-cache/caltech101/.work-*/categories; from
# 101_ObjectCategories/ant/ a chain of 7 ``..`` links (each lexically inside its own folder)
# resolves to DIR's parent, i.e. beside --dir.
BASE = "101_ObjectCategories/ant"
CHAIN = [symlink(f"{BASE}/" + "/".join(f"l{i}" for i in range(1, k + 1)), "..") for k in range(1, 8)]
THROUGH_CHAIN = "/".join(f"l{i}" for i in range(1, 8))  # BASE/THROUGH_CHAIN == DIR/..


def download_caltech(server, env, monkeypatch, extra_tar=(), extra_zip=()):
    """``curator download caltech101`` of a tampered archive whose pinned md5 matches it."""
    publish(server, monkeypatch, caltech101, "caltech101",
            {"caltech-101.zip": caltech_zip({"ant": 3}, extra_tar=extra_tar, extra_zip=extra_zip)})
    return run("download", "caltech101", "--dir", str(env))


def assert_refused(result, member: str, env: Path):
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit) and "Traceback" not in result.output  # no uncaught error
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert result.stderr.rstrip().splitlines()[-1] == errors[0]
    assert errors[0].startswith("error: refusing to extract") and repr(member) in errors[0], errors[0]
    assert leftovers(env) == []
    assert not (env / "caltech101-train").exists() and not (env / "caltech101-test").exists()


def files_outside(env: Path, before: set[Path]) -> list[Path]:
    """Files and links under DIR's parent that were not there before, outside DIR itself."""
    return [p for p in env.parent.rglob("*") if p not in before and not p.is_relative_to(env)]


# ------------------------------------------------------------------------------- 1. extraction
def test_symlink_chain_cannot_carry_a_file_outside(server, env, monkeypatch):
    before = set(env.parent.rglob("*"))
    escapee = f"{BASE}/{THROUGH_CHAIN}/evil.jpg"
    result = download_caltech(server, env, monkeypatch, extra_tar=CHAIN + [regular(escapee, b"pwned")])
    assert files_outside(env, before) == []
    assert not (env.parent / "evil.jpg").exists()
    # links are refused outright: the first link member is named
    assert_refused(result, f"{BASE}/l1", env)
    assert "link" in result.stderr


@pytest.mark.parametrize("kind", ["symlink", "hardlink"])
def test_later_link_member_cannot_overwrite_outside(server, env, monkeypatch, kind):
    victim = env.parent / "victim.txt"
    victim.write_text("original")
    before = set(env.parent.rglob("*"))
    if kind == "symlink":  # replaces a file the archive already extracted, then is written through
        name = f"{BASE}/image_0001.jpg"
        link = symlink(name, f"{THROUGH_CHAIN}/victim.txt")
    else:  # shares the victim's inode, then a regular member of the same name truncates it
        name = f"{BASE}/image_0099.jpg"
        link = hardlink(name, f"{BASE}/{THROUGH_CHAIN}/victim.txt")
    result = download_caltech(server, env, monkeypatch, extra_tar=CHAIN + [link, regular(name, b"pwned")])
    assert victim.read_text() == "original"
    assert files_outside(env, before) == []
    assert_refused(result, f"{BASE}/l1", env)


def test_link_member_alone_is_refused_by_name(server, env, monkeypatch):
    """Even a link that stays inside (``ant/alias.jpg -> image_0001.jpg``) is refused: sandbox
    archives hold only files and folders."""
    result = download_caltech(server, env, monkeypatch, extra_tar=[symlink(f"{BASE}/alias.jpg", "image_0001.jpg")])
    assert_refused(result, f"{BASE}/alias.jpg", env)


def zip_symlink(name: str, target: str) -> tuple[zipfile.ZipInfo, bytes]:
    info = zipfile.ZipInfo(name)
    info.create_system = 3  # unix: the high 16 bits of external_attr are st_mode
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info, target.encode()


@pytest.mark.parametrize("case", ["escaping-name", "absolute-name", "symlink-entry"])
def test_zip_member_escaping_or_link_refused(server, env, monkeypatch, case):
    before = set(env.parent.rglob("*"))
    if case == "escaping-name":
        member, extra = "caltech-101/../../../../../evil.jpg", [("caltech-101/../../../../../evil.jpg", b"pwned")]
    elif case == "absolute-name":
        member = str(env.parent / "evil.jpg")
        extra = [(member, b"pwned")]
    else:
        member = "caltech-101/escape"
        extra = [zip_symlink(member, "../../../../../.."), ("caltech-101/escape/evil.jpg", b"pwned")]
    result = download_caltech(server, env, monkeypatch, extra_zip=extra)
    assert files_outside(env, before) == []
    assert_refused(result, member, env)


def test_safe_extract_tar_directly(tmp_path):
    """The real extraction function on a chain tar: refused before anything leaves ``dest``, and
    the partly extracted folder is removed."""
    archive = tmp_path / "chain.tar"
    dest = tmp_path / "a" / "b" / "c" / "d"
    members = [symlink("x/l1", ".."), symlink("x/l1/l2", ".."), symlink("x/l1/l2/l3", ".."),
               symlink("x/l1/l2/l3/l4", ".."), regular("x/l1/l2/l3/l4/evil.txt", b"pwned")]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    archive.write_bytes(buf.getvalue())
    with pytest.raises(_common.CuratorError, match=r"refusing to extract chain.tar: member 'x/l1'"):
        _common.safe_extract(archive, dest)
    assert not list(tmp_path.rglob("evil.txt"))
    assert not dest.exists()


def test_well_formed_archives_still_extract(tmp_path):
    """Plain files and folders (tar.gz, zip, single .gz) come out as before."""
    import gzip

    tgz = tmp_path / "ok.tar.gz"
    with tarfile.open(tgz, "w:gz") as tf:
        for name, data in (("top/a.txt", b"A"), ("top/sub/b.txt", b"BB")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    out = _common.safe_extract(tgz, tmp_path / "t")
    assert (out / "top/a.txt").read_bytes() == b"A" and (out / "top/sub/b.txt").read_bytes() == b"BB"
    z = tmp_path / "ok.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("dir/", b"")
        zf.writestr("dir/c.txt", b"C")
    assert (_common.safe_extract(z, tmp_path / "z") / "dir/c.txt").read_bytes() == b"C"
    gz = tmp_path / "raw.bin.gz"
    gz.write_bytes(gzip.compress(b"raw bytes"))
    assert (_common.safe_extract(gz, tmp_path / "g") / "raw.bin").read_bytes() == b"raw bytes"


# ------------------------------------------------------------------------------- 14. resume
T10K = "t10k-images-idx3-ubyte.gz"


def mnist_with_part(server, env, monkeypatch, part: bytes | None = None, half=True):
    """Publish a fake MNIST; write ``part`` (default: the first half of t10k-images) as its .part."""
    files, data = fake_idx_dataset()
    publish(server, monkeypatch, mnist, "mnist", files)
    body = files[T10K]
    cache = env / ".curator-cache" / "mnist"
    cache.mkdir(parents=True)
    if part is None:
        part = body[: len(body) // 2] if half else body
    (cache / f"{T10K}.part").write_bytes(part)
    return body, data, cache


def assert_mnist_built(env, data, cache, body):
    assert (cache / T10K).read_bytes() == body
    with Project(env / "mnist-test") as p:
        assert len(p) == len(data["t10k"][0])
    assert leftovers(env, allow=("mnist-train", "mnist-test")) == []


def test_part_file_resumed_with_range(server, env, monkeypatch):
    body, data, cache = mnist_with_part(server, env, monkeypatch)
    half = len(body) // 2
    result = run("download", "mnist", "--dir", str(env))
    assert result.exit_code == 0, result.output
    path = f"/mnist/{T10K}"
    assert server.ranges[path] == [f"bytes={half}-"]
    assert server.sent[path] == len(body) - half  # only the remainder was transferred
    assert server.ranges["/mnist/train-images-idx3-ubyte.gz"] == [None]  # no part: a plain request
    assert f"resuming {T10K}" in result.stderr
    assert_mnist_built(env, data, cache, body)


def test_server_ignoring_range_still_yields_correct_file(server, env, monkeypatch):
    server.honour_ranges = False
    body, data, cache = mnist_with_part(server, env, monkeypatch)
    result = run("download", "mnist", "--dir", str(env))
    assert result.exit_code == 0, result.output
    path = f"/mnist/{T10K}"
    assert server.ranges[path] == [f"bytes={len(body) // 2}-"] and server.sent[path] == len(body)
    assert_mnist_built(env, data, cache, body)


def test_part_already_complete_gets_416_and_is_verified(server, env, monkeypatch):
    body, data, cache = mnist_with_part(server, env, monkeypatch, half=False)
    result = run("download", "mnist", "--dir", str(env))
    assert result.exit_code == 0, result.output
    assert server.ranges[f"/mnist/{T10K}"] == [f"bytes={len(body)}-"] and server.sent[f"/mnist/{T10K}"] == 0
    assert_mnist_built(env, data, cache, body)


def test_resumed_download_with_wrong_checksum_restarts_from_zero(server, env, monkeypatch):
    files, _ = fake_idx_dataset()
    garbage = b"\x00garbage" * (len(files[T10K]) // 16)
    body, data, cache = mnist_with_part(server, env, monkeypatch, part=garbage)
    result = run("download", "mnist", "--dir", str(env))
    assert result.exit_code == 0, result.output
    assert server.ranges[f"/mnist/{T10K}"] == [f"bytes={len(garbage)}-", None]  # resumed, then from zero
    message = [line for line in result.stderr.splitlines() if "checksum mismatch" in line]
    assert len(message) == 1 and T10K in message[0] and "deleted" in message[0] and "start" in message[0]
    assert_mnist_built(env, data, cache, body)


def test_cut_transfer_keeps_part_and_next_run_resumes(server, env, monkeypatch):
    files, data = fake_idx_dataset()
    publish(server, monkeypatch, mnist, "mnist", files)
    path, body = f"/mnist/{T10K}", files[T10K]
    server.cut.add(path)
    result = run("download", "mnist", "--dir", str(env))
    assert result.exit_code == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: mnist:") and T10K in last and "resume" in last, last
    cache = env / ".curator-cache" / "mnist"
    assert (cache / f"{T10K}.part").read_bytes() == body[: len(body) // 2]

    server.cut.clear()
    result = run("download", "mnist", "--dir", str(env))
    assert result.exit_code == 0, result.output
    assert server.ranges[path][-1] == f"bytes={len(body) // 2}-"
    assert_mnist_built(env, data, cache, body)


@pytest.mark.skipif(sys.platform == "win32", reason="needs SIGINT")
def test_ctrl_c_keeps_the_part_for_the_next_run(server, tmp_path):
    """A real ``curator download`` interrupted mid-transfer keeps what it received."""
    name = "train-images-idx3-ubyte.gz"
    path = f"/mnist/{name}"
    body = os.urandom(1 << 20)
    server.files[path] = body
    server.stall.add(path)
    env = {**os.environ, "CURATOR_MIRROR": server.url, "CURATOR_TIMEOUT": "30"}
    env.pop("CURATOR_CACHE", None)
    part = tmp_path / ".curator-cache" / "mnist" / f"{name}.part"
    # SIGINT at its default in the child: a shell that starts the suite in the background
    # (`bash .ci/run &`) ignores SIGINT for it, Python then installs no KeyboardInterrupt
    # handler, and the child would sit out the stall until its 30 s timeout instead
    proc = subprocess.Popen(CURATOR + ["download", "mnist", "--dir", str(tmp_path)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 60
    while time.time() < deadline and server.sent[path] < len(body) // 2:
        time.sleep(0.05)
    while time.time() < deadline and not (part.is_file() and part.stat().st_size == len(body) // 2):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == "error: interrupted" and "Traceback" not in err
    assert part.read_bytes() == body[: len(body) // 2]


# ------------------------------------------------------------------------------- 14. staging leftovers
def test_orphaned_staging_folders_removed_by_next_run(server, env, monkeypatch):
    files, _ = fake_idx_dataset(n_train=10, n_test=10)
    publish(server, monkeypatch, mnist, "mnist", files)
    assert run("download", "mnist", "--dir", str(env)).exit_code == 0

    # what a killed run leaves: a project staging folder (Project.create) and a scratch folder
    orphans = [env / ".mnist-test.partial-k3x_9q2a", env / ".mnist-train.partial-abcdefgh",
               env / ".curator-cache" / "mnist" / ".work-0a1b2c3d"]
    keep = [env / "mnist-test.partial-k3x_9q2a", env / ".cifar10-test.partial-abcdefgh",
            env / ".mnist-test.partial-mine", env / ".mnist-test.partial-abcdefgh.bak", env / "notes"]
    for folder in orphans + keep:
        folder.mkdir()
        (folder / "file.bin").write_bytes(b"x")
    stray = env / ".mnist-test.partial-12345678"  # a file, not a folder: not ours
    stray.write_bytes(b"x")

    result = run("download", "mnist", "--dir", str(env))  # projects there: skipped, still cleaned
    assert result.exit_code == 0 and "already there" in result.output
    assert [p for p in orphans if p.exists()] == []
    assert all(f"removed {p}" in result.stderr for p in orphans)
    assert all((p / "file.bin").is_file() for p in keep) and stray.is_file()
