"""One status line per dataset-level stage of analyze, so the minutes after the per-image bar
(neighbours, label model, UMAP on a large set) never look like a hang.

On a terminal the line ticks its elapsed time and ends as ``labels … done in 3.1 s``; in a
log (not a terminal) the stage prints ``labels …`` when it starts and the ``done`` line when
it ends. Times land in the ``timings`` dict that analyze records and the CLI summarises.
"""

from __future__ import annotations

import sys
import threading
import time
from contextlib import contextmanager

#: the dataset-level stages in the order analyze runs them: (timings key, what the user reads)
STAGES = (
    ("neighbours", "neighbours"),
    ("duplicates", "image checks + duplicates"),
    ("labels", "labels"),
    ("outliers", "outliers"),
    ("projection", "projection"),
)
STAGE_LABELS = dict(STAGES, onnx_export="preparing the ONNX model (once per machine)",
                    ray_start="starting Ray (or joining the cluster)")


def format_seconds(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes} min {rest:02d} s"


class StageStatus:
    """``status.begin("labels") ... status.end()`` (or ``with status.stage("labels"):``) times
    the stage into ``timings["labels"]`` and shows it on ``stream`` (stderr) unless disabled
    (``--quiet``). On a terminal a daemon thread ticks the elapsed time once a second."""

    def __init__(self, timings: dict, enabled: bool = True, stream=None, tick: float = 1.0):
        self._key = None
        self.timings = timings
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        self.tick = tick

    def _interactive(self) -> bool:
        isatty = getattr(self.stream, "isatty", None)
        return bool(isatty and isatty())

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # a closed or broken stream must not stop the analysis
            pass

    def begin(self, key: str) -> None:
        """Start timing (and showing) stage ``key``; ends the previous one if still open."""
        if getattr(self, "_key", None) is not None:
            self.end()
        self._key, self._label = key, STAGE_LABELS.get(key, key)
        self._start = time.perf_counter()
        self._stop = threading.Event()
        self._ticker = None
        if not self.enabled:
            return
        if self._interactive():
            self._write(f"{self._label} …")
            label, start, stop = self._label, self._start, self._stop

            def tick():
                while not stop.wait(self.tick):
                    self._write(f"\r{label} … {format_seconds(time.perf_counter() - start)}")

            self._ticker = threading.Thread(target=tick, name="curator-stage-status", daemon=True)
            self._ticker.start()
        else:
            self._write(f"{self._label} …\n")

    def end(self) -> float:
        """Stop the open stage: record its time, print its ``done`` line. Returns the seconds."""
        elapsed = time.perf_counter() - self._start
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
        self.timings[self._key] = round(elapsed, 3)
        if self.enabled:
            prefix = "\r\033[K" if self._interactive() else ""
            self._write(f"{prefix}{self._label} … done in {format_seconds(elapsed)}\n")
        self._key = None
        return elapsed

    @contextmanager
    def stage(self, key: str):
        """``with status.stage(key):`` = begin(key) ... end(), also when the block raises
        (the ticking line must not outlive the stage)."""
        self.begin(key)
        try:
            yield
        finally:
            self.end()


def summary_lines(timings: dict) -> list[str]:
    """``time:`` lines for the CLI summary: the per-image stage, then each dataset-level stage
    that ran, then the total."""
    lines = []
    if "onnx_export" in timings:
        lines.append(("ONNX export", timings["onnx_export"]))
    if "ray_start" in timings:
        lines.append(("Ray start-up", timings["ray_start"]))
    if "model_load" in timings:
        lines.append(("model load", timings["model_load"]))
    if "embed_total" in timings:
        lines.append(("embedding + metrics", timings["embed_total"]))
    lines += [(label, timings[key]) for key, label in STAGES if key in timings]
    if "total" in timings:
        lines.append(("total", timings["total"]))
    width = max((len(name) for name, _ in lines), default=0)
    return [f"time: {name:<{width}}  {format_seconds(float(value)):>10}" for name, value in lines]
