"""A private Ray on this machine for ``analyze --engine ray``, started quietly and stopped
without a trace.

- no usage statistics (``RAY_USAGE_STATS_ENABLED=0``, set before Ray is imported), no
  dashboard, worker logs not forwarded to the terminal;
- the authentication token Ray asks for lives in the environment (inherited by Ray's
  processes) instead of a ``~/.ray/auth_token`` file;
- a temporary folder of its own (``$TMPDIR/curator-ray-*``, short enough for Ray's unix
  sockets), removed after ``ray.shutdown()``; a run killed with SIGKILL cannot clean up, so
  the next one removes such folders (and the Ray agents still holding files in them);
- a Ctrl-C on the terminal reaches the driver only, which stops Ray itself.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager, suppress
from pathlib import Path

from .errors import CuratorError

# Ray puts unix sockets under its temporary folder (session_<date>_<pid>/sockets/plasma_store):
# a path over ~107 bytes cannot be bound, so a long $TMPDIR falls back to /tmp
SOCKET_PATH_ROOM = 50
TEMP_PREFIX = "curator-ray-"
OWNER_FILE = "curator-owner"  # "<pid> <start time>" of the curator process that started this Ray


def start_private_ray(ray, num_cpus: int | None, init_args: dict):
    """Start Ray on this machine with ``num_cpus`` CPUs (None: all it may use), privately; returns the function
    that stops it and removes every trace (also called here when the start fails)."""
    with suppress(OSError):
        sweep_stale()
    temp_dir = _private_temp_dir()
    # the token Ray asks for, kept in the environment (inherited by Ray's processes) instead
    # of a ~/.ray/auth_token file; Ray turns token mode on for the new cluster itself
    saved = {k: os.environ.get(k) for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")}
    if saved["RAY_AUTH_MODE"] is None and saved["RAY_AUTH_TOKEN"] is None and not _has_token_file():
        os.environ["RAY_AUTH_TOKEN"] = _PROCESS_TOKEN

    def cleanup():
        try:
            with suppress(Exception), _sigint_deferred():  # a second Ctrl-C must not leave Ray half-stopped
                ray.shutdown()
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            shutil.rmtree(temp_dir, ignore_errors=True)

    try:
        with _sigint_deferred():  # inherited by Ray's processes: Ctrl-C reaches the driver only
            ray.init(num_cpus=num_cpus, _temp_dir=temp_dir, **init_args)
    except BaseException as exc:  # a Ctrl-C during the start too: nothing is left behind
        cleanup()
        if not isinstance(exc, Exception):
            raise
        raise CuratorError(f"cannot start Ray on this machine: {first_line(exc)}; try --engine local") from None
    return cleanup


def _temp_base() -> str:
    base = tempfile.gettempdir()
    return "/tmp" if len(base) > SOCKET_PATH_ROOM else base


def _private_temp_dir() -> str:
    """A new folder for a private Ray, holding the id of the process that owns it."""
    folder = tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=_temp_base())
    Path(folder, OWNER_FILE).write_text(f"{os.getpid()} {_start_time(os.getpid())}")
    return folder


def _start_time(pid: int) -> str:
    """When process ``pid`` started (clock ticks since boot; "" where /proc is absent): with
    the pid it names one process, even after the pid is reused."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def sweep_stale(base: str | None = None) -> list[str]:
    """Remove what a private Ray of a killed curator left (Linux): a SIGKILLed driver takes
    Ray's raylet and GCS with it, but two agent processes and the temporary folder stay.
    Stale = the owning process is gone; its leftover processes are those holding files open
    in its folder. Returns the folders removed."""
    import signal
    import time

    removed = []
    if not os.path.isdir("/proc"):
        return removed  # no way to tell a live owner from a dead one
    base = base or _temp_base()
    for name in os.listdir(base):
        folder = os.path.join(base, name)
        owner = os.path.join(folder, OWNER_FILE)
        if not name.startswith(TEMP_PREFIX) or not os.path.isfile(owner):
            continue
        try:
            pid, started = (Path(owner).read_text().split() + [""])[:2]
        except OSError:
            continue
        if pid.isdigit() and started and _start_time(int(pid)) == started:
            continue  # its curator is still running
        leftovers = _processes_using(folder)
        for pid_ in leftovers:
            with suppress(OSError):
                os.kill(pid_, signal.SIGTERM)
        deadline = time.monotonic() + 3
        while leftovers and time.monotonic() < deadline:
            time.sleep(0.1)
            leftovers = [p for p in leftovers if _running(p)]
        for pid_ in leftovers:
            with suppress(OSError):
                os.kill(pid_, signal.SIGKILL)
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


def _running(pid: int) -> bool:
    """Whether ``pid`` exists and has not ended (a zombie has ended: only its parent's
    bookkeeping is left)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _processes_using(folder: str) -> list[int]:
    """Ids of this user's processes with a file open under ``folder`` (from /proc)."""
    found = []
    prefix = folder.rstrip("/") + "/"
    with suppress(OSError):
        for name in os.listdir("/proc"):
            if not name.isdigit() or int(name) == os.getpid():
                continue
            try:
                fds = os.listdir(f"/proc/{name}/fd")
            except OSError:
                continue  # gone, or another user's
            for fd in fds:
                try:
                    if os.readlink(f"/proc/{name}/fd/{fd}").startswith(prefix):
                        found.append(int(name))
                        break
                except OSError:
                    continue
    return found


# one per process: Ray caches the token it read, so a second local Ray must get the same one
_PROCESS_TOKEN = os.urandom(32).hex()


def _has_token_file() -> bool:
    path = os.environ.get("RAY_AUTH_TOKEN_PATH") or os.path.join(os.path.expanduser("~"), ".ray", "auth_token")
    return os.path.isfile(path)


@contextmanager
def _sigint_deferred():
    """SIGINT blocked while Ray starts (or stops): its processes inherit the blocked signal,
    so a Ctrl-C on the terminal (sent to the whole process group) reaches the driver only,
    which keeps the finished batches, reports the interruption and shuts Ray down itself,
    instead of seeing its workers die first. A Ctrl-C meanwhile is delivered on the way out."""
    import signal

    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def first_line(exc: BaseException) -> str:
    """A Ray error in one line: the innermost cause's last line (Ray's carry remote tracebacks)."""
    cause = getattr(exc, "cause", None) or exc
    text = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {text[-1] if text else ''}".strip(": ")
