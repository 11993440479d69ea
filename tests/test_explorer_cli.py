"""`curator visualize`: one-line errors for bad projects and busy ports; a real server that
prints its URL and stops cleanly (no orphaned Streamlit process) on Ctrl-C or SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from curator.cli import main
from curator.explorer.server import streamlit_command

from conftest import free_port


def invoke(*args):
    result = CliRunner().invoke(main, ["visualize", *map(str, args)])
    return result.exit_code, result.output.strip()


def test_missing_project_is_one_line(tmp_path):
    code, out = invoke(tmp_path / "nope")
    assert code == 1 and out.startswith("error: project not found") and "\n" not in out


def test_folder_that_is_not_a_project(tmp_path):
    code, out = invoke(tmp_path)
    assert code == 1 and out.startswith("error: not a curator project") and "\n" not in out


def test_unanalyzed_project_is_one_line(tmp_path, digits_folder):
    from curator.importers import import_project

    import_project(digits_folder["root"], tmp_path / "raw").close()
    code, out = invoke(tmp_path / "raw")
    assert code == 1 and "not analyzed yet" in out and "curator analyze" in out and "\n" not in out


def test_busy_port_is_one_line(analyzed_project):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        code, out = invoke(analyzed_project, "--port", port)
    assert code == 1 and f"port {port}" in out and "already in use" in out and "\n" not in out


def test_streamlit_flags():
    cmd = streamlit_command(Path("/p"), 8765)
    flags = dict(zip(cmd[::1], cmd[1::1]))
    assert flags["--server.address"] == "127.0.0.1"
    assert flags["--server.headless"] == "true"
    assert flags["--browser.gatherUsageStats"] == "false"
    assert flags["--server.port"] == "8765"


def _children(pid: int) -> list[int]:
    try:
        return [int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is not a server
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _start(root: Path, port: int) -> tuple[subprocess.Popen, list[str]]:
    proc = subprocess.Popen([sys.executable, "-m", "curator.cli", "visualize", str(root), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines: list[str] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip())
        if line.startswith("ready:"):
            return proc, lines
    proc.kill()
    raise AssertionError("server did not become ready:\n" + "\n".join(lines))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="checks child processes through /proc")
@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_serves_and_stops_cleanly(analyzed_project, how):
    port = free_port()
    proc, lines = _start(analyzed_project, port)
    url = f"http://127.0.0.1:{port}"
    try:
        assert any(url in line for line in lines), lines
        with urllib.request.urlopen(url + "/_stcore/health", timeout=10) as r:
            assert r.status == 200
        kids = _children(proc.pid)
        assert kids, "the Streamlit server should run as a child process"
    finally:
        if how == "ctrl-c":  # a terminal sends SIGINT to the whole foreground process group
            os.killpg(proc.pid, signal.SIGINT)
        else:
            proc.send_signal(signal.SIGTERM)
        rest = proc.communicate(timeout=30)[0]
    assert proc.returncode == 0, rest
    assert "stopping" in rest
    deadline = time.monotonic() + 10
    while any(_alive(k) for k in kids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(k) for k in kids), "orphaned Streamlit server"
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0, "port still served"
