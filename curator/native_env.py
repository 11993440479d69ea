"""Native-library settings that must be in place before numpy, torch, faiss or numba load.

Why: on a busy machine OpenMP threads that spin while waiting burn the very cores the
other threads (and other processes) need: the CNN forward pass fell from 54 to 6.5 img/s
beside two CPU-bound processes, and a 5,000-image analyze paid 194-216 CPU-seconds instead
of 78. So waiting threads sleep almost at once (libgomp: torch, faiss; Intel OpenMP: the
same knob under another name), numba's compiled functions are cached across processes in
a user cache folder, and small-matrix BLAS work runs on one thread.

Every variable is only set when the user has not set it (nor, for the OpenMP knobs,
``OMP_WAIT_POLICY``): ``OMP_WAIT_POLICY=ACTIVE curator analyze ...`` brings spinning back.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

# spin this many iterations before sleeping (libgomp's default is 300,000, "ACTIVE" 30
# billion); 10,000 is a few microseconds: no waste under contention, no loss when quiet
GOMP_SPINCOUNT = "10000"
KMP_BLOCKTIME = "0"  # Intel OpenMP (MKL builds): milliseconds to spin before sleeping

#: what :func:`configure` set in this process (name -> value), for reporting and tests
applied: dict[str, str] = {}


def cache_root() -> Path:
    """The user cache folder of curator ($XDG_CACHE_HOME/curator, else ~/.cache/curator)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "curator"


def _set_default(name: str, value: str) -> None:
    if name not in os.environ:
        os.environ[name] = value
        applied[name] = value


def configure() -> dict[str, str]:
    """Set the defaults (idempotent). Returns what this process set."""
    if "OMP_WAIT_POLICY" not in os.environ:
        _set_default("GOMP_SPINCOUNT", GOMP_SPINCOUNT)
        _set_default("KMP_BLOCKTIME", KMP_BLOCKTIME)
    # OpenBLAS's own thread pool polls too: 2^4 cycles (its minimum) before sleeping
    _set_default("OPENBLAS_THREAD_TIMEOUT", "4")
    _set_default("NUMBA_CACHE_DIR", str(cache_root() / "numba"))
    return dict(applied)


@contextmanager
def single_threaded_blas():
    """Run small-matrix BLAS work (a logistic regression on a few thousand rows, a PCA) on
    one thread: several threads synchronising on small products cost 10-40x the time on a
    busy machine (label check 0.6-1.3 s with one thread, 39-47 s with the default)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # scikit-learn depends on it, so only a broken install lands here
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


configure()
