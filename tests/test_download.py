"""``curator download`` without a network: a loopback HTTP server started here serves small
archives in the exact upstream formats (MNIST IDX .gz files, CIFAR-10's python tarball,
Caltech-101's zip-of-a-tarball), with ``CURATOR_MIRROR`` pointing at it and the recipes'
md5 table patched to the test archives' checksums."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import os
import pickle
import shutil
import socket
import struct
import subprocess
import sys
import tarfile
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from curator.cli import main
from curator.project import Project
from sandbox_datasets import _common, caltech101, cifar10, fashion_mnist, mnist
from sandbox_datasets._common import Resource

CURATOR = [str(Path(sys.executable).with_name("curator"))]
PROJECT_DIRS = ("mnist-train", "mnist-test", "caltech101-train", "caltech101-test", "cifar10-train",
                "cifar10-test", "fashion-mnist-train", "fashion-mnist-test")


# ------------------------------------------------------------------------------- HTTP server
class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files: dict[str, bytes] = {}
        self.requests: list[str] = []
        self.truncate: set[str] = set()  # paths whose transfers stop half way

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def count(self, fragment: str = "") -> int:
        return sum(fragment in r for r in self.requests)


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        srv = self.server
        srv.requests.append(self.path)
        body = srv.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            if self.path in srv.truncate:
                self.wfile.write(body[: len(body) // 2])
                self.close_connection = True
            else:
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    srv = _Server()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def env(server, monkeypatch, tmp_path):
    """CURATOR_MIRROR -> the loopback server; the cache inside DIR; returns DIR."""
    monkeypatch.setenv("CURATOR_MIRROR", server.url)
    monkeypatch.delenv("CURATOR_CACHE", raising=False)
    monkeypatch.setenv("CURATOR_TIMEOUT", "10")
    out = tmp_path / "out"
    out.mkdir()
    return out


def publish(server, monkeypatch, module, dataset: str, files: dict[str, bytes], md5s: dict[str, str] | None = None):
    """Serve ``files`` (upstream filename -> bytes) under /<dataset>/ and patch the recipe's md5s."""
    patched = {}
    for key, res in module.RESOURCES.items():
        data = files[res.filename]
        server.files[f"/{dataset}/{res.filename}"] = data
        md5 = (md5s or {}).get(res.filename, hashlib.md5(data).hexdigest())
        patched[key] = Resource(res.filename, md5, res.urls)
    monkeypatch.setattr(module, "RESOURCES", patched)


def run(*args):
    result = CliRunner().invoke(main, list(args))
    return result


def leftovers(root: Path, allow=()) -> list[str]:
    """Project folders (other than ``allow``), staging folders or partial downloads under ``root``."""
    bad = []
    for p in root.rglob("*"):
        if (p.name in PROJECT_DIRS and p.name not in allow) or ".partial-" in p.name or p.name.endswith(".part") \
                or p.name.startswith(".work-"):
            bad.append(str(p.relative_to(root)))
    return bad


# ------------------------------------------------------------------------------- archives
def idx_images(images: np.ndarray) -> bytes:
    n, h, w = images.shape
    return gzip.compress(struct.pack(">IIII", 0x00000803, n, h, w) + images.astype(np.uint8).tobytes())


def idx_labels(labels: np.ndarray) -> bytes:
    return gzip.compress(struct.pack(">II", 0x00000801, len(labels)) + labels.astype(np.uint8).tobytes())


def fake_idx_dataset(n_train=30, n_test=20, seed=0):
    rng = np.random.default_rng(seed)
    data = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = np.arange(n) % 10
        data[prefix] = (images, labels)
    files = {
        "train-images-idx3-ubyte.gz": idx_images(data["train"][0]),
        "train-labels-idx1-ubyte.gz": idx_labels(data["train"][1]),
        "t10k-images-idx3-ubyte.gz": idx_images(data["t10k"][0]),
        "t10k-labels-idx1-ubyte.gz": idx_labels(data["t10k"][1]),
    }
    return files, data


def jpeg(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


def tar_bytes(members: list[tuple[tarfile.TarInfo, bytes | None]], mode="w:gz") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:
        for info, data in members:
            if data is not None:
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
            else:
                tf.addfile(info)
    return buf.getvalue()


def caltech_zip(class_sizes: dict[str, int], extra_tar=(), extra_zip=()) -> bytes:
    """caltech-101.zip as published: caltech-101/{101_ObjectCategories.tar.gz, Annotations.tar, ...}."""
    members, seed = [], 0
    for label, n in class_sizes.items():
        d = tarfile.TarInfo(f"101_ObjectCategories/{label}")
        d.type = tarfile.DIRTYPE
        members.append((d, None))
        for i in range(1, n + 1):
            seed += 1
            members.append((tarfile.TarInfo(f"101_ObjectCategories/{label}/image_{i:04d}.jpg"), jpeg(seed)))
    members += list(extra_tar)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("caltech-101/101_ObjectCategories.tar.gz", tar_bytes(members))
        zf.writestr("caltech-101/Annotations.tar", tar_bytes([], mode="w"))
        zf.writestr("caltech-101/show_annotation.m", "% matlab")
        zf.writestr("__MACOSX/caltech-101/._101_ObjectCategories.tar.gz", b"\0junk")
        for name, data in extra_zip:
            zf.writestr(name, data)
    return buf.getvalue()


CALTECH_CLASSES = {"accordion": 10, "ant": 5, "Faces_easy": 20, "yin_yang": 31, "BACKGROUND_Google": 7}


# ------------------------------------------------------------------------------- tests: MNIST
def test_mnist_download_projects_cache_and_force(server, env, monkeypatch):
    files, data = fake_idx_dataset()
    publish(server, monkeypatch, mnist, "mnist", files)

    result = run("download", "mnist", "--dir", str(env))
    assert result.exit_code == 0, result.output
    assert server.count("/mnist/") >= 4
    for split, prefix in (("train", "train"), ("test", "t10k")):
        project = Project(env / f"mnist-{split}")
        items = project.items()
        images, labels = data[prefix]
        assert len(items) == len(images)
        assert project.classes == [str(i) for i in range(10)]
        assert items["label"].tolist() == [str(y) for y in labels]
        # pixels survive exactly, and the item path is the final (absolute) location
        first = Path(items["path"][0])
        assert first.is_file() and first.is_relative_to(env / f"mnist-{split}")
        np.testing.assert_array_equal(np.asarray(Image.open(first)), images[0])
        project.close()
    assert leftovers(env, allow=("mnist-train", "mnist-test")) == []

    # a second download of the same dataset does not fetch again: projects there -> skipped
    before = len(server.requests)
    result = run("download", "mnist", "--dir", str(env))
    assert result.exit_code == 0 and "already there" in result.output
    # projects removed -> rebuilt from the cache, still without fetching
    for split in ("train", "test"):
        shutil.rmtree(env / f"mnist-{split}")
    result = run("download", "mnist", "--dir", str(env))
    assert result.exit_code == 0, result.output
    assert len(server.requests) == before
    assert (env / "mnist-test" / "curator.json").is_file()
    # --force redoes the download and the projects
    result = run("download", "mnist", "--dir", str(env), "--force")
    assert result.exit_code == 0, result.output
    assert server.count("/mnist/t10k-labels") > 0 and len(server.requests) > before


def test_cache_dir_from_environment(server, env, monkeypatch, tmp_path):
    files, _ = fake_idx_dataset(n_train=10, n_test=10)
    publish(server, monkeypatch, fashion_mnist, "fashion-mnist", files)
    monkeypatch.setenv("CURATOR_CACHE", str(tmp_path / "cache"))
    result = run("download", "fashion_mnist", "--dir", str(env))  # alias spelling accepted
    assert result.exit_code == 0, result.output
    assert (tmp_path / "cache" / "fashion-mnist" / "train-images-idx3-ubyte.gz").is_file()
    assert not (env / ".curator-cache").exists()
    with Project(env / "fashion-mnist-train") as p:
        assert set(p.classes) <= set(fashion_mnist.CLASSES) and len(p) == 10


def test_checksum_mismatch_fails_and_leaves_nothing(server, env, monkeypatch):
    files, _ = fake_idx_dataset()
    publish(server, monkeypatch, mnist, "mnist", files, md5s={"train-labels-idx1-ubyte.gz": "0" * 32})
    result = run("download", "mnist", "--dir", str(env))
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: mnist: ") and "checksum mismatch" in lines[-1]
    assert "train-labels-idx1-ubyte.gz" in lines[-1] and "Traceback" not in result.output
    assert leftovers(env) == []
    assert not (env / ".curator-cache" / "mnist" / "train-labels-idx1-ubyte.gz").exists()


def test_interrupted_transfer_then_retry(server, env, monkeypatch):
    files, data = fake_idx_dataset()
    publish(server, monkeypatch, mnist, "mnist", files)
    server.truncate.add("/mnist/t10k-images-idx3-ubyte.gz")
    result = run("download", "mnist", "--dir", str(env))
    assert result.exit_code == 1
    assert "incomplete or corrupted" in result.stderr and "t10k-images-idx3-ubyte.gz" in result.stderr
    assert leftovers(env) == []
    cache = env / ".curator-cache" / "mnist"
    assert (cache / "train-images-idx3-ubyte.gz").is_file()  # finished files are kept

    # a Ctrl-C'd run would leave a .part behind: it is restarted, not trusted
    (cache / "t10k-images-idx3-ubyte.gz.part").write_bytes(b"partial garbage")
    server.truncate.clear()
    server.requests.clear()
    result = run("download", "mnist", "--dir", str(env))
    assert result.exit_code == 0, result.output
    assert server.count("/mnist/train-") == 0  # resumed: only the missing files were fetched
    assert server.count("/mnist/t10k-images") > 0
    with Project(env / "mnist-test") as p:
        assert len(p) == len(data["t10k"][0])
    assert leftovers(env, allow=("mnist-train", "mnist-test")) == []


def test_offline_fails_fast_with_one_line(env, monkeypatch):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("CURATOR_MIRROR", f"http://127.0.0.1:{port}")
    result = run("download", "mnist", "--dir", str(env))
    assert result.exit_code == 1
    msg = result.stderr.strip()
    assert len(msg.splitlines()) == 1, msg
    assert msg.startswith("error: mnist:") and f"127.0.0.1:{port}" in msg and "could not reach" in msg
    assert "curator download digits" in msg
    assert leftovers(env) == [] and not (env / ".curator-cache").exists()


def test_unresolvable_host_fails_before_loading_torch(tmp_path):
    env = {**os.environ, "CURATOR_MIRROR": "http://sandbox.curator.invalid", "CURATOR_TIMEOUT": "5"}
    env.pop("CURATOR_CACHE", None)
    for k in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        env.pop(k, None)
    proc = subprocess.run(CURATOR + ["download", "caltech101", "--dir", str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "caltech101" in proc.stderr and "sandbox.curator.invalid" in proc.stderr and "digits" in proc.stderr
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------- tests: Caltech-101
def test_caltech101_split_stratified_without_background(server, env, monkeypatch):
    publish(server, monkeypatch, caltech101, "caltech101", {"caltech-101.zip": caltech_zip(CALTECH_CLASSES)})
    result = run("download", "caltech101", "--dir", str(env))
    assert result.exit_code == 0, result.output
    with Project(env / "caltech101-train") as tr, Project(env / "caltech101-test") as te:
        train, test = tr.items(), te.items()
        assert "BACKGROUND_Google" not in set(train["label"]) | set(test["label"])
        assert tr.classes == te.classes == sorted(set(CALTECH_CLASSES) - {"BACKGROUND_Google"})
        for label, n in CALTECH_CLASSES.items():
            if label == "BACKGROUND_Google":
                continue
            n_train = int((train["label"] == label).sum())
            assert n_train == round(0.6 * n) and int((test["label"] == label).sum()) == n - n_train
        # disjoint, complete, and every image is inside its own project
        key = lambda df: set(zip(df["label"], df["location"].map(lambda s: Path(s).name)))  # noqa: E731
        assert not key(train) & key(test)
        assert len(key(train) | key(test)) == sum(CALTECH_CLASSES.values()) - CALTECH_CLASSES["BACKGROUND_Google"]
        assert all(tr.resolve(loc).is_file() for loc in train["location"])
        first_split = (sorted(key(train)), sorted(key(test)))
    assert leftovers(env, allow=("caltech101-train", "caltech101-test")) == []

    # fixed seed: --force (from the cache) gives the same split
    before = len(server.requests)
    result = run("download", "caltech101", "--dir", str(env), "--force")
    assert result.exit_code == 0, result.output
    with Project(env / "caltech101-train") as tr, Project(env / "caltech101-test") as te:
        assert (sorted(key(tr.items())), sorted(key(te.items()))) == first_split
    assert len(server.requests) > before


def test_stratified_split_proportions():
    files = {c: [Path(f"{c}/image_{i:04d}.jpg") for i in range(n)] for c, n in
             {"a": 100, "b": 31, "c": 2, "d": 800, "e": 1}.items()}
    train, test = caltech101.stratified_split(files)
    again = caltech101.stratified_split(files)
    assert (train, test) == again
    for c, paths in files.items():
        n_train = sum(lbl == c for _, lbl in train)
        n_test = sum(lbl == c for _, lbl in test)
        assert n_train + n_test == len(paths)
        if len(paths) >= 2:
            assert n_train >= 1 and n_test >= 1 and abs(n_train - 0.6 * len(paths)) <= 1
    assert abs(len(train) / (len(train) + len(test)) - 0.6) < 0.01
    other_seed = caltech101.stratified_split(files, seed=7)
    assert other_seed != (train, test)


@pytest.mark.parametrize("where", ["inner-tar", "zip", "symlink"])
def test_malicious_archive_member_refused(server, env, monkeypatch, where):
    extra_tar, extra_zip = (), ()
    if where == "inner-tar":
        extra_tar = [(tarfile.TarInfo("101_ObjectCategories/../../../evil.jpg"), b"pwned")]
    elif where == "zip":
        extra_zip = [("caltech-101/../../evil.jpg", b"pwned")]
    else:
        link = tarfile.TarInfo("101_ObjectCategories/ant/image_0099.jpg")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        extra_tar = [(link, None)]
    publish(server, monkeypatch, caltech101, "caltech101",
            {"caltech-101.zip": caltech_zip({"ant": 3}, extra_tar=extra_tar, extra_zip=extra_zip)})
    result = run("download", "caltech101", "--dir", str(env))
    assert result.exit_code == 1
    msg = result.stderr.strip().splitlines()[-1]
    assert msg.startswith("error: refusing to extract") and "Traceback" not in result.output
    assert leftovers(env) == []
    assert not list(env.parent.rglob("evil.jpg"))


def test_member_name_checks():
    for bad in ("../x", "/etc/passwd", "a/../../x", "C:/x", "..\\x"):
        assert _common._escapes(bad), bad
    for good in ("a/b.jpg", "a/../b.jpg", "./a", "101_ObjectCategories/ant/image_0001.jpg"):
        assert not _common._escapes(good), good


# ------------------------------------------------------------------------------- tests: CIFAR-10
def test_cifar10_download(server, env, monkeypatch):
    rng = np.random.default_rng(1)
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    members = []

    def batch(name, n):
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        entry = {"batch_label": name, "labels": [i % 10 for i in range(n)], "data": data,
                 "filenames": [f"{i}.png" for i in range(n)]}
        members.append((tarfile.TarInfo(f"cifar-10-batches-py/{name}"), pickle.dumps(entry)))
        return data

    first = batch("data_batch_1", 4)
    for i in range(2, 6):
        batch(f"data_batch_{i}", 4)
    batch("test_batch", 6)
    members.append((tarfile.TarInfo("cifar-10-batches-py/batches.meta"), pickle.dumps({"label_names": names})))
    publish(server, monkeypatch, cifar10, "cifar10", {"cifar-10-python.tar.gz": tar_bytes(members)})
    result = run("download", "cifar10", "--dir", str(env))
    assert result.exit_code == 0, result.output
    with Project(env / "cifar10-train") as tr, Project(env / "cifar10-test") as te:
        assert len(tr) == 20 and len(te) == 6
        items = tr.items()
        assert items["label"][1] == "automobile"
        img = np.asarray(Image.open(tr.resolve(items["location"][0])))
        np.testing.assert_array_equal(img, first[0].reshape(3, 32, 32).transpose(1, 2, 0))


# ------------------------------------------------------------------------------- tests: CLI
def test_list_shows_size_source_licence():
    proc = subprocess.run(CURATOR + ["download", "--list"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for name in ("digits", "mnist", "fashion-mnist", "cifar10", "caltech101"):
        assert f"\n{name} " in "\n" + out
    assert "70,000 images" in out and "8,677 images" in out and "1,797 images" in out
    assert "CC BY 4.0 (Caltech)" in out and "data.caltech.edu" in out and "[offline]" in out


def test_bare_download_without_terminal_lists_and_hints():
    proc = subprocess.run(CURATOR + ["download"], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2
    assert "mnist" in proc.stdout and "caltech101" in proc.stdout and "12 MB" in proc.stdout
    assert proc.stderr.startswith("hint: curator download NAME")


def test_unknown_dataset_is_one_line_error(tmp_path):
    result = run("download", "imagenet", "--dir", str(tmp_path))
    assert result.exit_code == 1 and result.stderr.strip().startswith("error: unknown dataset 'imagenet'")


def test_picker_keys():
    from sandbox_datasets.picker import PickerState

    names = ["digits", "mnist", "fashion-mnist", "cifar10", "caltech101"]
    s = PickerState(names)
    for key in ("down", "enter"):
        s.press(key)
    assert s.done and s.result == ["mnist"]
    s = PickerState(names)
    for key in ("up", " ", "down", "down", " ", "j", "k", "enter"):
        s.press(key)
    assert s.result == ["mnist", "caltech101"]  # wrapped up to caltech101, marked; down twice to mnist
    s = PickerState(names)
    s.press("q")
    assert s.done and s.result == []


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pty")
def test_picker_on_a_terminal(tmp_path):
    """A bare ``curator download`` on a terminal shows the picker with sizes; q cancels."""
    import pty
    import select
    import time

    pid, fd = pty.fork()
    if pid == 0:  # child
        os.environ["TERM"] = "xterm"
        os.execv(CURATOR[0], CURATOR + ["download", "--dir", str(tmp_path)])
    seen, deadline = b"", time.time() + 30
    while b"caltech101" not in seen and time.time() < deadline:
        if select.select([fd], [], [], 0.5)[0]:
            try:
                seen += os.read(fd, 65536)
            except OSError:
                break
    os.write(fd, b"q")
    while time.time() < deadline:
        if select.select([fd], [], [], 0.5)[0]:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    text = seen.decode(errors="replace")
    assert "Download which sandbox datasets?" in text and "70,000 images" in text
    assert "no dataset selected" in text
    assert os.waitstatus_to_exitcode(status) == 1


# ------------------------------------------------------------------------------- upstream table
def test_upstream_urls_and_checksums_are_torchvisions():
    import inspect

    from torchvision.datasets import CIFAR10, MNIST, Caltech101, FashionMNIST

    assert list(mnist.MIRRORS) == MNIST.mirrors
    assert [tuple(v) for v in mnist.FILES.values()] == [tuple(r) for r in MNIST.resources]
    assert list(fashion_mnist.MIRRORS) == FashionMNIST.mirrors
    assert [tuple(v) for v in fashion_mnist.FILES.values()] == [tuple(r) for r in FashionMNIST.resources]
    assert (cifar10.URL, cifar10.MD5, cifar10.RESOURCES["archive"].filename) == (
        CIFAR10.url, CIFAR10.tgz_md5, CIFAR10.filename)
    source = inspect.getsource(Caltech101.download)
    assert caltech101.URL in source and caltech101.MD5 in source


# ------------------------------------------------------------------------------- analyze
def test_downloaded_project_opens_in_analyze(server, env, monkeypatch):
    from curator.analyze import AnalyzeOptions, analyze

    files, _ = fake_idx_dataset(n_train=10, n_test=40)
    publish(server, monkeypatch, mnist, "mnist", files)
    assert run("download", "mnist", "--dir", str(env)).exit_code == 0
    with Project(env / "mnist-test") as project:
        report = analyze(project, AnalyzeOptions(workers=0, progress=False, projection="pca", batch_size=64))
        assert report.items == 40 and project.is_analyzed
