"""SQLite storage of a project: items, per-image metrics, issues, tags and stage bookkeeping.

WAL mode lets the explorer read while ``analyze`` writes; every write happens inside a
transaction, so a killed process leaves either the old or the new state, never a mix.
Commands that only read open the database read-only, so a project on a read-only mount or in
a shared folder can still be summarised and exported. SQLite errors that mean the file itself
is damaged become one ``DamagedProject`` line instead of a traceback.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import tempfile
from contextlib import contextmanager
from pathlib import Path

from .errors import DamagedProject, NotEnoughSpace, ReadOnlyProject

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
    "max_channel_high": "REAL",
    "min_channel_low": "REAL",
    "contrast": "REAL",
    "sharpness": "REAL",
    "fine_detail": "REAL",
    "native_detail": "REAL",
    "entropy": "REAL",
    "outline_contrast": "REAL",
    "outline_entropy": "REAL",
    "colour_contrast": "REAL",
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


# tables every project database has from its creation on; one missing means a damaged file
REQUIRED_TABLES = ("meta", "items", "metrics", "issues", "tags", "stages")


def connect(db_path: Path, *, create: bool = False, readonly: bool = False) -> sqlite3.Connection:
    """Open the project database in WAL mode (readers never block the writer).

    ``readonly`` opens it with SQLite's ``mode=ro`` (nothing is written, not even the journal
    mode), falling back to ``immutable=1`` where the folder is read-only and SQLite cannot
    create the WAL index beside the file. Raises ``DamagedProject`` for a file that is not a
    (complete) curator database and ``ReadOnlyProject`` when a writable open is refused.
    """
    db_path = Path(db_path)
    if not create and not db_path.exists():
        raise FileNotFoundError(db_path)
    conn = None
    try:
        with reporting_damage(db_path):
            if readonly:
                conn = _connect_readonly(db_path)
            else:
                conn = sqlite3.connect(str(db_path), timeout=30.0, isolation_level=None)
                try:
                    conn.execute("PRAGMA journal_mode=WAL")
                except sqlite3.OperationalError as exc:
                    raise write_failure(exc, db_path) or exc from None
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA busy_timeout=30000")
            if create:
                conn.executescript(SCHEMA)
                conn.execute(
                    "INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )
            else:
                _check_tables(conn, db_path)
            if not readonly:
                _add_missing_metric_columns(conn)
    except BaseException:
        if conn is not None:
            conn.close()
        raise
    return conn


def _connect_readonly(db_path: Path) -> sqlite3.Connection:
    uri = db_path.absolute().as_uri()
    conn = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=30.0, isolation_level=None)
    try:
        conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        return conn
    except sqlite3.OperationalError as exc:
        conn.close()
        # a WAL database whose folder we cannot write: no -shm index can be made, so read the
        # file as it is (what a finished analyze left; nobody can be writing it from here)
        if _code(exc) not in (sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_READONLY):
            raise
    return sqlite3.connect(f"{uri}?mode=ro&immutable=1", uri=True, timeout=30.0, isolation_level=None)


def _check_tables(conn: sqlite3.Connection, db_path: Path) -> None:
    have = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    missing = [t for t in REQUIRED_TABLES if t not in have]
    if missing:
        reason = "it is empty" if not have else f"table {missing[0]!r} is missing"
        raise damaged_database(db_path, reason)


def _code(exc: BaseException) -> int | None:
    """The primary SQLite result code of an sqlite3 error (None for other exceptions)."""
    code = getattr(exc, "sqlite_errorcode", None)
    return None if code is None else code & 0xFF


def _causes(exc: BaseException):
    """The exception and what it wraps (pandas re-raises sqlite3 errors as its own)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def damaged_database(db_path: Path, reason) -> DamagedProject:
    return DamagedProject(
        f"the project database {db_path} is damaged ({reason}): restore {Path(db_path).name} from a backup, "
        f"or import the images again with `curator import` and run `curator analyze`"
    )


def is_damage(exc: BaseException) -> bool:
    """True when an error (or the sqlite3 error it wraps) says the database file is corrupt
    or not a database at all, as opposed to locked, busy or missing."""
    for e in _causes(exc):
        if isinstance(e, sqlite3.DatabaseError):
            code = _code(e)
            if code is not None:
                return code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)
            text = str(e)
            return "malformed" in text or "not a database" in text
    return False


@contextmanager
def reporting_damage(db_path: Path):
    """Turn errors that mean a damaged database file into one ``DamagedProject`` line."""
    try:
        yield
    except DamagedProject:
        raise
    except Exception as exc:
        if not is_damage(exc):
            raise
        reason = next(e for e in _causes(exc) if isinstance(e, sqlite3.DatabaseError))
        raise damaged_database(db_path, reason) from None


_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
_NO_WRITE = (errno.EACCES, errno.EPERM, errno.EROFS)


def write_failure(exc: BaseException, where: Path) -> NotEnoughSpace | ReadOnlyProject | None:
    """The one-line error for a write that failed because the disk is full or the project
    (``where``, a folder or file) is read-only, or None when ``exc`` is something else (a
    permission error on a file outside the project is not the project being read-only)."""
    full = ro = False
    detail = str(exc)
    if isinstance(exc, sqlite3.Error):
        full = _code(exc) == sqlite3.SQLITE_FULL
        ro = _code(exc) == sqlite3.SQLITE_READONLY
    elif isinstance(exc, OSError):
        full = exc.errno in _NO_SPACE
        ro = exc.errno in _NO_WRITE
        if exc.filename:
            detail = f"{exc.strerror or exc}: {exc.filename}"
            inside = Path(where).absolute()
            target = Path(os.fsdecode(exc.filename)).absolute()
            if ro and target != inside and inside not in target.parents:
                return None
            if full and target != inside and inside not in target.parents:
                where = target.parent
        else:
            detail = exc.strerror or str(exc)
    if full:
        return NotEnoughSpace(
            f"the disk holding {where} is full ({detail}); free some space and run the command again "
            "(work already finished is kept)"
        )
    if ro:
        return ReadOnlyProject(
            f"cannot write to {where}: it is read-only ({detail}); copy the project folder somewhere "
            "writable and use the copy"
        )
    return None


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
