"""SQLite storage of a project: items, per-image metrics, issues, tags and stage bookkeeping.

WAL mode lets the explorer read while ``analyze`` writes; every write happens inside a
transaction, so a killed process leaves either the old or the new state, never a mix.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from pathlib import Path

SCHEMA_VERSION = 1

# Per-image measurements written by the scan stage; one column each so SQL can sort/filter.
METRIC_COLUMNS = {
    "readable": "INTEGER",
    "error": "TEXT",
    "width": "INTEGER",
    "height": "INTEGER",
    "channels": "INTEGER",
    "file_size": "INTEGER",
    "brightness": "REAL",
    "brightness_high": "REAL",
    "brightness_low": "REAL",
    "contrast": "REAL",
    "sharpness": "REAL",
    "fine_detail": "REAL",
    "entropy": "REAL",
    "aspect_ratio": "REAL",
    "area": "REAL",
    "opacity": "REAL",
    "pixel_hash": "TEXT",
    "scan_key": "TEXT",
    "embed_key": "TEXT",
}

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS items (
    item_id INTEGER PRIMARY KEY,
    path TEXT NOT NULL,
    location TEXT NOT NULL,
    label TEXT
);
CREATE TABLE IF NOT EXISTS metrics (
    item_id INTEGER PRIMARY KEY REFERENCES items(item_id),
    {", ".join(f"{name} {kind}" for name, kind in METRIC_COLUMNS.items())}
);
CREATE TABLE IF NOT EXISTS issues (
    item_id INTEGER NOT NULL REFERENCES items(item_id),
    issue TEXT NOT NULL,
    score REAL NOT NULL,
    severity TEXT NOT NULL,
    suggested_label TEXT,
    group_id INTEGER,
    keep INTEGER,
    PRIMARY KEY (item_id, issue)
);
CREATE INDEX IF NOT EXISTS issues_by_type ON issues(issue, score);
CREATE TABLE IF NOT EXISTS tags (
    item_id INTEGER NOT NULL REFERENCES items(item_id),
    tag TEXT NOT NULL,
    PRIMARY KEY (item_id, tag)
);
CREATE INDEX IF NOT EXISTS tags_by_tag ON tags(tag);
CREATE TABLE IF NOT EXISTS stages (
    name TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    finished_at TEXT NOT NULL DEFAULT (datetime('now'))
);
"""


def connect(db_path: Path, *, create: bool = False) -> sqlite3.Connection:
    """Open the project database in WAL mode (readers never block the writer)."""
    if not create and not Path(db_path).exists():
        raise FileNotFoundError(db_path)
    conn = sqlite3.connect(str(db_path), timeout=30.0, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=30000")
    if create:
        conn.executescript(SCHEMA)
        conn.execute(
            "INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?)",
            (str(SCHEMA_VERSION),),
        )
    _add_missing_metric_columns(conn)
    return conn


def _add_missing_metric_columns(conn: sqlite3.Connection) -> None:
    """Projects made by an older curator lack newer metric columns: add them (empty), so the
    next analyze fills them instead of failing on its INSERT."""
    have = {row[1] for row in conn.execute("PRAGMA table_info(metrics)")}
    if not have:
        return
    for name, kind in METRIC_COLUMNS.items():
        if name not in have:
            conn.execute(f"ALTER TABLE metrics ADD COLUMN {name} {kind}")


class transaction:
    """``with transaction(conn): ...`` runs the block in BEGIN IMMEDIATE ... COMMIT/ROLLBACK."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def __enter__(self):
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.conn.execute("COMMIT")
        else:
            self.conn.execute("ROLLBACK")
        return False


def _current_umask() -> int:
    """The process umask (read from /proc where possible: setting it to probe is not thread-safe)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def new_file_mode(path: Path) -> int:
    """The mode a plain ``open(path, "w")`` would give: the existing file's mode when replacing
    one, else 0o666 minus the umask (mkstemp's private 0600 is wrong for files users share)."""
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        return 0o666 & ~_current_umask()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write a file so that readers see the old or the new content, never a partial one."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fchmod(fh.fileno(), new_file_mode(path))
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_save_npy(path: Path, array) -> None:
    """np.save through a temporary file and rename."""
    import io

    import numpy as np

    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    atomic_write_bytes(path, buf.getvalue())
