"""A curator project: a folder holding a manifest, a SQLite database and array files.

``Project`` is the Python API shared by the CLI and the explorer. Item ids are 0..N-1, so
row ``i`` of every array file (embeddings, thumbnails, projection) belongs to item ``i``.

Reading commands open a project with ``readonly=True`` (works on read-only folders and
mounts); ``analyze`` takes the project's lock (:meth:`Project.analyze_lock`) and marks the
analysis incomplete until it finishes, so readers can say their results may be stale.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import sqlite3
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from . import __version__
from .arrays import problem as array_problem
from .errors import CuratorError, DamagedProject, ProjectBusy
from .issue_types import EXPORT_COLUMNS, validate_issue_types
from .shell import command
from .store import atomic_write_bytes, connect, reporting_damage, transaction, write_failure

try:  # advisory locks: POSIX only; elsewhere two simultaneous analyze runs are not prevented
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

MANIFEST = "curator.json"
DATABASE = "curator.db"
LOCK_FILE = "curator.lock"  # held (flock) by a running analyze; holds its pid
INCOMPLETE = "analysis_incomplete"  # manifest key set while an analyze has not finished
FORMAT_VERSION = 1


def _reports_damage(method):
    """Database errors meaning a damaged file surface as one DamagedProject line."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with reporting_damage(self.root / DATABASE):
            return method(self, *args, **kwargs)

    return wrapper


@dataclass(frozen=True)
class ItemRecord:
    """One image as imported: how the user names it, where to read it, its label (or None)."""

    path: str
    location: str
    label: str | None


class Project:
    """Open an existing project folder; use :meth:`create` to make one. ``readonly`` opens
    the database read-only (nothing in the folder is written)."""

    def __init__(self, root: str | os.PathLike, *, readonly: bool = False):
        self.root = Path(root).expanduser().absolute()
        self.readonly = readonly
        if not self.root.is_dir():
            raise CuratorError(f"project not found: {self.root}")
        if not (self.root / MANIFEST).is_file() or not (self.root / DATABASE).is_file():
            raise CuratorError(f"not a curator project (no {MANIFEST}): {self.root}")
        self.manifest = self._read_manifest()
        self._conn: sqlite3.Connection | None = None

    def _read_manifest(self) -> dict:
        manifest_path = self.root / MANIFEST
        try:
            manifest = json.loads(manifest_path.read_text())
        except (OSError, ValueError) as exc:
            raise CuratorError(f"cannot read project manifest {manifest_path}: {exc}") from None
        if not isinstance(manifest, dict):
            raise DamagedProject(
                f"the project manifest {manifest_path} is damaged (it holds a JSON {type(manifest).__name__}, "
                f"not an object): restore it from a backup, or import the images again with `curator import`"
            )
        return manifest

    def reload_manifest(self) -> None:
        """Read the manifest again (another process may have rewritten it)."""
        self.manifest = self._read_manifest()

    # ------------------------------------------------------------------ creation
    @classmethod
    def create(
        cls,
        root: str | os.PathLike,
        build: Callable[[Path], Sequence[ItemRecord]],
        *,
        source: str,
        overwrite: bool = False,
    ) -> "Project":
        """Create a project atomically.

        ``build(staging_dir)`` returns the item records; it may write files (e.g. downloaded
        images) into ``staging_dir``, which becomes the project folder only once everything
        succeeded, so a failure or Ctrl-C never leaves a half-written project behind.
        """
        root = Path(root).expanduser().absolute()
        if root.exists() and not overwrite:
            raise CuratorError(f"{root} already exists (choose another --out or remove it)")
        root.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=root.parent, prefix=f".{root.name}.partial-"))
        try:
            records = list(build(staging))
            if not records:
                raise CuratorError("no images found to import")
            _write_new_project(staging, root, records, source)
            if root.exists():
                shutil.rmtree(root)
            os.replace(staging, root)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return cls(root)

    # ------------------------------------------------------------------ basics
    @property
    def name(self) -> str:
        return self.manifest.get("name", self.root.name)

    @property
    def classes(self) -> list[str]:
        return list(self.manifest.get("classes", []))

    @property
    def db(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = connect(self.root / DATABASE, readonly=self.readonly)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @_reports_damage
    def __len__(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM items").fetchone()[0])

    def __repr__(self) -> str:
        return f"Project({str(self.root)!r})"

    def save_manifest(self) -> None:
        data = json.dumps(self.manifest, indent=2, sort_keys=True).encode()
        atomic_write_bytes(self.root / MANIFEST, data)

    @property
    def analysis(self) -> dict | None:
        """What the last complete ``analyze`` recorded (backbone, counts, timings), or None."""
        analysis = self.manifest.get("analysis")
        return analysis if isinstance(analysis, dict) else None

    @property
    def is_analyzed(self) -> bool:
        return self.analysis is not None

    # ------------------------------------------------------------------ analyze bookkeeping
    @contextmanager
    def analyze_lock(self):
        """Hold the project's analyze lock for the block; a second analyze on the same
        project fails at once with one line naming the running one's pid (it does not wait:
        waiting behind a run of hours looks like a hang). The lock is released by the OS
        when the holder exits, however it exits."""
        path = self.root / LOCK_FILE
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise write_failure(exc, self.root) or exc from None
        try:
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    pid = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
                    raise ProjectBusy(
                        f"another `curator analyze` is running on {self.root} (pid {pid}); "
                        "wait for it to finish (or stop it) and run analyze again"
                    ) from None
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            yield
        finally:
            os.close(fd)

    def mark_analysis_started(self) -> None:
        """Record (before an analyze changes anything) that the stored results may be stale
        until it finishes; the final manifest write of analyze removes the mark."""
        if INCOMPLETE not in self.manifest:
            self.manifest[INCOMPLETE] = {
                "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "pid": os.getpid(),
            }
            self.save_manifest()

    @property
    def analysis_incomplete(self) -> bool:
        return INCOMPLETE in self.manifest

    def stale_warning(self) -> str | None:
        """One line saying the stored results predate an analyze that has not finished, or None."""
        mark = self.manifest.get(INCOMPLETE)
        if not mark or not self.is_analyzed:
            return None
        if not isinstance(mark, dict):
            mark = {}
        return (
            f"an analyze started {mark.get('started', '?')} (pid {mark.get('pid', '?')}) has not finished "
            f"(still running, or interrupted): these results are from the analysis finished "
            f"{self.analysis.get('finished', '?')} and may be stale; run `{command('curator', 'analyze', self.root)}` to update them"
        )

    def require_analyzed(self) -> None:
        if not self.is_analyzed:
            raise CuratorError(f"project {self.name!r} is not analyzed yet: run `{command('curator', 'analyze', self.root)}`")

    # ------------------------------------------------------------------ reading
    def resolve(self, location: str) -> Path:
        """Absolute path of an image from its stored location (relative = inside the project)."""
        p = Path(location)
        return p if p.is_absolute() else self.root / p

    @_reports_damage
    def items(self) -> pd.DataFrame:
        """item_id, path, location, label for every item, ordered by item_id."""
        return pd.read_sql_query("SELECT item_id, path, location, label FROM items ORDER BY item_id", self.db)

    @_reports_damage
    def metrics(self) -> pd.DataFrame:
        """Items joined with their per-image metrics (NaN where not computed yet)."""
        return pd.read_sql_query(
            "SELECT i.item_id, i.path, i.label, m.* FROM items i LEFT JOIN metrics m USING(item_id) ORDER BY i.item_id",
            self.db,
        ).loc[:, lambda df: ~df.columns.duplicated()]

    @_reports_damage
    def issues(self, types: Iterable[str] | None = None) -> pd.DataFrame:
        """All issue rows (optionally of some types) joined with item path and label."""
        sql = (
            "SELECT s.item_id, i.path, i.label, s.issue, s.score, s.severity, s.suggested_label, "
            "s.group_id, s.keep FROM issues s JOIN items i USING(item_id)"
        )
        params: list = []
        if types:
            types = validate_issue_types(list(types))
            sql += f" WHERE s.issue IN ({','.join('?' * len(types))})"
            params = list(types)
        sql += " ORDER BY s.issue, s.score DESC, s.item_id"
        df = pd.read_sql_query(sql, self.db, params=params)
        df["group_id"] = df["group_id"].astype("Int64")
        df["keep"] = df["keep"].astype("boolean")
        return df

    def array_path(self, name: str) -> Path:
        return self.root / "arrays" / name

    def _item_count(self) -> int:
        n = self.manifest.get("items")
        return int(n) if isinstance(n, int) else len(self)

    def load_array(self, name: str, shape, dtype, mmap: bool = False) -> np.ndarray:
        """An array file after checking it is what the project expects (``None`` in ``shape``
        = any size); a missing, truncated or overwritten file is one DamagedProject line."""
        path = self.array_path(name)
        why = array_problem(path, shape, dtype)
        if why is not None:
            raise DamagedProject(
                f"the project array {path} cannot be used ({why}): run `{command('curator', 'analyze', self.root)}` to rebuild it"
            )
        return np.load(path, mmap_mode="r" if mmap else None)

    def embeddings(self, mmap: bool = True) -> np.ndarray:
        """The (N, D) float32 embedding matrix of the last analysis."""
        self.require_analyzed()
        shape = (self._item_count(), self.analysis.get("embedding_dim"))
        return self.load_array(self.analysis["embeddings_file"], shape, np.float32, mmap)

    def projection(self) -> np.ndarray:
        """The (N, 2) float32 2D projection of the last analysis."""
        self.require_analyzed()
        return self.load_array("projection.npy", (self._item_count(), 2), np.float32)

    def thumbnails(self) -> np.ndarray:
        """(N, S, S, 3) uint8 colour thumbnails (transparency on grey) used for near-duplicate
        verification and the pixel features of the label check."""
        return self.load_array("thumbnails.npy", (self._item_count(), None, None, 3), np.uint8, mmap=True)

    # ------------------------------------------------------------------ tags
    @_reports_damage
    def add_tag(self, item_ids: Iterable[int], tag: str) -> int:
        """Tag items (idempotent); returns how many ids were given."""
        tag = _check_tag(tag)
        ids = [int(i) for i in item_ids]
        n = len(self)
        bad = [i for i in ids if not 0 <= i < n]
        if bad:
            raise CuratorError(f"no item with id {bad[0]} in project {self.name!r} ({n} items)")
        with transaction(self.db) as c:
            c.executemany("INSERT OR IGNORE INTO tags(item_id, tag) VALUES (?, ?)", [(i, tag) for i in ids])
        return len(ids)

    @_reports_damage
    def remove_tag(self, item_ids: Iterable[int], tag: str) -> None:
        ids = [int(i) for i in item_ids]
        with transaction(self.db) as c:
            c.executemany("DELETE FROM tags WHERE item_id = ? AND tag = ?", [(i, tag) for i in ids])

    @_reports_damage
    def tags(self) -> pd.DataFrame:
        """item_id, tag rows."""
        return pd.read_sql_query("SELECT item_id, tag FROM tags ORDER BY tag, item_id", self.db)

    # ------------------------------------------------------------------ export & summary
    @_reports_damage
    def export_frame(self, issues: Sequence[str] = (), tags: Sequence[str] = ()) -> pd.DataFrame:
        """The flagged-item list in the export schema: one row per (item, issue).

        ``issues`` keeps only those issue types; ``tags`` keeps only items carrying any of the
        tags (a tagged item without issues gets one row with an empty issue, so tags made in
        the explorer always reach the export).
        """
        issues = validate_issue_types(issues)
        rows = self.issues(issues or None)
        if tags:
            tags = [_check_tag(t) for t in tags]
            q = f"SELECT DISTINCT item_id FROM tags WHERE tag IN ({','.join('?' * len(tags))})"
            tagged = {r[0] for r in self.db.execute(q, tags)}
            rows = rows[rows["item_id"].isin(tagged)]
            if not issues:
                items = self.items().set_index("item_id")
                missing = sorted(tagged - set(rows["item_id"]))
                extra = pd.DataFrame(
                    {
                        "item_id": missing,
                        "path": items.loc[missing, "path"].tolist(),
                        "label": items.loc[missing, "label"].tolist(),
                        "issue": None,
                        "score": np.nan,
                        "severity": None,
                    }
                )
                rows = pd.concat([rows, extra], ignore_index=True) if len(extra) else rows
        rows = rows.reindex(columns=list(EXPORT_COLUMNS))
        rows["group_id"] = rows["group_id"].astype("Int64")
        rows["keep"] = rows["keep"].astype("boolean")
        return rows.reset_index(drop=True)

    @_reports_damage
    def summary(self) -> dict:
        """Counts per issue type and per class (plus flagged counts per class)."""
        from .issue_types import ISSUE_TYPES

        items = self.items()
        counts = dict(self.db.execute("SELECT issue, COUNT(*) FROM issues GROUP BY issue").fetchall())
        flagged = pd.read_sql_query(
            "SELECT i.label, COUNT(DISTINCT s.item_id) AS n FROM issues s JOIN items i USING(item_id) GROUP BY i.label",
            self.db,
        )
        flagged_by = {(None if pd.isna(k) else k): int(v) for k, v in zip(flagged["label"], flagged["n"])}
        per_class = items["label"].fillna("(unlabelled)").value_counts().sort_index()
        n_flagged = self.db.execute("SELECT COUNT(DISTINCT item_id) FROM issues").fetchone()[0]
        return {
            "project": self.name,
            "path": str(self.root),
            "items": len(items),
            "analyzed": self.is_analyzed,
            "flagged_items": int(n_flagged),
            "issues": {t: int(counts.get(t, 0)) for t in ISSUE_TYPES},
            "classes": {
                str(label): {
                    "items": int(n),
                    "flagged": flagged_by.get(None if label == "(unlabelled)" else label, 0),
                }
                for label, n in per_class.items()
            },
        }


def _check_tag(tag: str) -> str:
    tag = str(tag).strip()
    if not tag:
        raise CuratorError("a tag must not be empty")
    return tag


def _write_new_project(staging: Path, final_root: Path, records: Sequence[ItemRecord], source: str) -> None:
    labels = sorted({r.label for r in records if r.label is not None})
    conn = connect(staging / DATABASE, create=True)
    try:
        with transaction(conn):
            conn.executemany(
                "INSERT INTO items(item_id, path, location, label) VALUES (?, ?, ?, ?)",
                [(i, r.path, r.location, r.label) for i, r in enumerate(records)],
            )
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    manifest = {
        "format": FORMAT_VERSION,
        "name": final_root.name,
        "source": source,
        "classes": labels,
        "items": len(records),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "curator_version": __version__,
    }
    (staging / "arrays").mkdir(exist_ok=True)
    atomic_write_bytes(staging / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True).encode())
