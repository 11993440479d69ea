"""Start and stop the Streamlit server behind ``curator visualize``.

The server runs as a child process bound to 127.0.0.1 (headless, no usage statistics) that
answers only to loopback Host headers (:mod:`.host_guard`, against DNS rebinding). Ctrl-C,
SIGTERM or SIGHUP stop it cleanly; on Linux the child also gets SIGTERM if this process dies
without cleaning up (PR_SET_PDEATHSIG), so no server is left behind.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Callable

from ..errors import CuratorError
from . import APP_PATH, pages_dir

HOST = "127.0.0.1"
DEFAULT_PORT = 8501


def port_is_free(port: int, host: str = HOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server does: TIME_WAIT is fine
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def choose_port(port: int | None) -> int:
    if port is not None:
        if not port_is_free(port):
            raise CuratorError(f"port {port} on {HOST} is already in use; choose another with --port")
        return port
    for candidate in range(DEFAULT_PORT, DEFAULT_PORT + 100):
        if port_is_free(candidate):
            return candidate
    raise CuratorError(f"no free port in {DEFAULT_PORT}-{DEFAULT_PORT + 99}; choose one with --port")


def streamlit_command(root: Path, port: int) -> list[str]:
    """The child process: this module's ``_child_main`` (preload, then ``streamlit run``)."""
    return [
        sys.executable, "-m", "curator.explorer.server", str(root),
        "--server.address", HOST,
        "--server.port", str(port),
        "--server.headless", "true",
        "--browser.gatherUsageStats", "false",
        "--server.fileWatcherType", "none",
        "--server.runOnSave", "false",
        "--client.toolbarMode", "minimal",
        "--global.developmentMode", "false",
        "--logger.level", "warning",
    ]


def _die_with_parent() -> None:  # runs in the child before exec (Linux only)
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def wait_ready(proc: subprocess.Popen, url: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise CuratorError(f"the Streamlit server stopped while starting (exit code {proc.returncode})")
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise CuratorError(f"the Streamlit server did not answer within {timeout:.0f} s")


def stop(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    if proc.poll() is None:
        try:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        except ProcessLookupError:
            pass


def serve(root: Path, port: int | None = None, *, echo: Callable[[str], None] = print, name: str | None = None,
          compare: Path | None = None) -> int:
    """Run the explorer until Ctrl-C (or SIGTERM/SIGHUP); returns the server's exit code.
    ``compare``: a second project, shown against ``root`` on the Compare page."""
    pages_dir()  # fail early and clearly on a broken installation
    port = choose_port(port)
    url = f"http://{HOST}:{port}"
    env = dict(os.environ)
    env["CURATOR_PROJECT"] = str(root)
    if compare is not None:
        env["CURATOR_COMPARE"] = str(compare)
    else:
        env.pop("CURATOR_COMPARE", None)
    env.setdefault("STREAMLIT_BROWSER_GATHER_USAGE_STATS", "false")
    proc = subprocess.Popen(
        streamlit_command(root, port), env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
    )

    def _terminate(signum, frame):
        raise KeyboardInterrupt

    # SIGINT too: a shell may have started us with SIGINT ignored (background job)
    previous = {s: signal.signal(s, _terminate) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        echo(f"curator explorer for {name or root.name}: {url}  (starting…)")
        wait_ready(proc, url)
        echo(f"ready: {url}  — press Ctrl-C to stop")
        return proc.wait()
    except KeyboardInterrupt:
        echo("stopping the explorer…")
        return 0
    finally:
        stop(proc)
        for s, h in previous.items():
            signal.signal(s, h)


def _preload_quietly(root: str) -> None:
    try:
        from . import data

        data.preload(root)
    except Exception:  # the page shows the problem when it loads the project itself
        pass


def _child_main(argv: list[str]) -> None:
    """Start loading the project (data, 2D maps, first thumbnails) in a background thread,
    then run Streamlit in this same process, so the first page view finds everything warm."""
    import threading

    from .host_guard import install as guard_host

    root, flags = argv[0], argv[1:]
    try:
        guard_host()
    except CuratorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
    os.environ["CURATOR_PROJECT"] = root
    threading.Thread(target=_preload_quietly, args=(root,), name="curator-preload", daemon=True).start()
    from streamlit.web import cli as stcli

    sys.argv = ["streamlit", "run", str(APP_PATH), *flags, "--", root]
    stcli.main(prog_name="streamlit")


if __name__ == "__main__":
    _child_main(sys.argv[1:])
