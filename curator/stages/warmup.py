"""The dataset-level stages' imports, done on a side thread while the per-image stage runs.

Why: in a fresh process the first dataset-level stages pay about 2.5 CPU-seconds of imports
(scikit-learn, which pulls in scipy.stats; UMAP with its numba functions; the alignment
kernels) on one thread while the second core waits: 2,000 photos at 224 px took 7.7 s in
these stages cold against 4.2 s warm. During the per-image stage the lanes leave a core
idle now and then (decode waits, batch hand-over), and the imports fill those gaps.

Imports are safe to race: Python's per-module import locks make the stage that needs a
module wait for the side thread to finish it. ``wait()`` is called before the dataset
stages start all the same, so nothing half-imported is ever seen and a failure on the side
thread (which is only logged) is simply met again, with its real error, on the main one.
"""

from __future__ import annotations

import logging
import threading

log = logging.getLogger(__name__)

_thread: threading.Thread | None = None
_lock = threading.Lock()


def _import_all(with_umap: bool) -> None:
    try:
        import scipy.sparse.csgraph  # noqa: F401  (outliers: copy groups)
        import sklearn.decomposition  # noqa: F401  (pixel space, PCA maps)
        import sklearn.linear_model  # noqa: F401  (the label check)

        from ..checks import align_kernels  # noqa: F401  (near-duplicate alignment)

        if with_umap:
            from ..projection import cache_umap_compilation

            cache_umap_compilation()
    except Exception as exc:  # only a head start: the stage that needs it reports it
        log.debug("warm-up import failed: %s", exc)


def start(methods=("umap",)) -> None:
    """Begin importing what the dataset-level stages need (once per process)."""
    global _thread
    with _lock:
        if _thread is not None:
            return
        _thread = threading.Thread(target=_import_all, args=("umap" in methods,), name="curator-warmup", daemon=True)
        _thread.start()


def wait() -> None:
    """Block until the side thread (if one was started) is done."""
    thread = _thread
    if thread is not None:
        thread.join()
