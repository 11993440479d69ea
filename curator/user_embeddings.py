"""Bring your own embeddings: read the user's vectors, align them with the project's items and
store them as ``arrays/embeddings-user.npy``. When present, analyze uses them instead of the
CNN embedding for neighbours, duplicate candidates, the label check, outliers and the map.

Accepted files (the two layouts W&B accepts, plus a bare array):
- ``.npy``: an (N, D) numeric array, row i = item i (import order, the ``item_id`` of
  ``curator export``);
- CSV or Parquet with a ``path`` column (the image path as imported: as written in the labels
  file, or the file's path) and either one column holding a list of numbers per row (Parquet
  list, or CSV text such as ``[0.1, 0.2]`` / ``0.1 0.2``) or any number of numeric columns.

Every problem is one line naming the file and what to do: rows that match no item, items
without a row, NaN or infinite values, rows of different lengths, too few dimensions.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import CuratorError
from .projector import USER_EMBEDDINGS

TABLE_SUFFIXES = {".csv", ".tsv", ".txt", ".parquet", ".pq"}
IGNORED_COLUMNS = {"path", "label", "item_id", "id", "class", "split"}


def read_user_embeddings(file: str | os.PathLike, items: pd.DataFrame, root: str | os.PathLike) -> np.ndarray:
    """(N, D) float32 rows aligned with ``items`` (item_id, path, location columns)."""
    file = Path(file)
    if not file.is_file():
        raise CuratorError(f"embeddings file not found: {file}")
    suffix = file.suffix.lower()
    if suffix == ".npy":
        x = _from_npy(file, len(items))
    elif suffix in TABLE_SUFFIXES:
        x = _from_table(file, items, Path(root))
    else:
        raise CuratorError(f"embeddings file {file}: use a .npy array or a CSV/Parquet table with a path column")
    return _checked(file, x, items)


def _from_npy(file: Path, n: int) -> np.ndarray:
    try:
        x = np.load(file, allow_pickle=False, mmap_mode="r")
    except Exception as exc:
        raise CuratorError(f"cannot read embeddings file {file}: {_reason(exc)}") from None
    if x.ndim != 2:
        raise CuratorError(f"embeddings file {file} holds a {x.ndim}-dimensional array of shape {x.shape}; "
                           "it must be 2-dimensional: one row per item")
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
        raise CuratorError(f"embeddings file {file} holds {x.dtype} values; it must hold numbers")
    if len(x) != n:
        raise CuratorError(f"embeddings file {file} has {len(x):,} rows but the project has {n:,} items: a .npy must "
                           "hold one row per item in import order (item_id); use a CSV/Parquet with a path column otherwise")
    return np.asarray(x, dtype=np.float32)


def _read_table(file: Path) -> pd.DataFrame:
    try:
        if file.suffix.lower() in {".parquet", ".pq"}:
            return pd.read_parquet(file)
        from .importers import _header_line, sniff_separator

        return pd.read_csv(file, sep=sniff_separator(_header_line(file)), keep_default_na=True)
    except CuratorError:
        raise
    except Exception as exc:
        raise CuratorError(f"cannot read embeddings file {file}: {_reason(exc)}") from None


def _as_vector(value) -> np.ndarray | None:
    if isinstance(value, str):
        text = value.strip().strip("[]()")
        try:
            return np.array([float(v) for v in text.replace(",", " ").split()], dtype=np.float64)
        except ValueError:
            return None
    if isinstance(value, (list, tuple, np.ndarray)):
        try:
            return np.asarray(value, dtype=np.float64).ravel()
        except (TypeError, ValueError):
            return None
    return None


def _is_listy(column: pd.Series) -> bool:
    """A column of lists (Parquet) or of list-like text (CSV: ``[0.1, 0.2]``, ``0.1 0.2``)."""
    if not len(column) or not (pd.api.types.is_object_dtype(column) or pd.api.types.is_string_dtype(column)):
        return False
    first = column.iloc[0]
    if isinstance(first, str):
        return len(first.strip().strip("[]()").replace(",", " ").split()) > 1
    return isinstance(first, (list, tuple, np.ndarray))


def _vectors(file: Path, df: pd.DataFrame) -> np.ndarray:
    """The embedding matrix of a table: its one list-valued column, else its numeric columns."""
    candidates = [c for c in df.columns if str(c).strip().lower() not in IGNORED_COLUMNS]
    listy = [c for c in candidates if _is_listy(df[c])]
    if len(listy) > 1:
        raise CuratorError(f"embeddings file {file} has {len(listy)} list-valued columns ({', '.join(map(str, listy))}); "
                           "keep one (the embedding) besides path")
    if listy:
        col = listy[0]
        rows = [_as_vector(v) for v in df[col]]
        bad = [i for i, r in enumerate(rows) if r is None]
        if bad:
            raise CuratorError(f"embeddings file {file}: column {col!r} row {bad[0] + 1} is not a list of numbers")
        lengths = np.array([len(r) for r in rows])
        if len(set(lengths.tolist())) > 1:
            common = int(np.bincount(lengths).argmax())
            odd = int(np.flatnonzero(lengths != common)[0])
            raise CuratorError(f"embeddings file {file}: row {odd + 1} ({df['path'].iloc[odd]}) has {lengths[odd]} dimensions, "
                               f"the others {common}; every vector must have the same length")
        return np.vstack(rows) if rows else np.zeros((0, 0))
    numeric = [c for c in candidates if pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c])]
    other = [c for c in candidates if c not in numeric]
    if not numeric:
        raise CuratorError(f"embeddings file {file} has no embedding: give one list-valued column or numeric columns besides path")
    if other:
        raise CuratorError(f"embeddings file {file}: column {other[0]!r} is not numeric; the embedding is one list-valued "
                           "column or numeric columns only (besides path and label)")
    return df[numeric].to_numpy(dtype=np.float64)


def _from_table(file: Path, items: pd.DataFrame, root: Path) -> np.ndarray:
    df = _read_table(file)
    df.columns = [str(c).strip() for c in df.columns]
    if "path" not in df.columns:
        raise CuratorError(f"embeddings file {file} needs a 'path' column (found: {', '.join(map(repr, df.columns)) or 'none'})")
    df["path"] = df["path"].astype(str)
    vectors = _vectors(file, df)
    row_of = _match_rows(file, df["path"].tolist(), items, root)
    return vectors[row_of]


def _keys(path: str, root: Path) -> list[str]:
    """Spellings under which a path can be matched: as written, normalised, absolute."""
    p = path.strip()
    keys = [p, os.path.normpath(p)]
    if os.path.isabs(p):
        keys.append(os.path.normpath(p))
    else:
        keys.append(os.path.normpath(str(root / p)))
    return keys


def _match_rows(file: Path, paths: list[str], items: pd.DataFrame, root: Path) -> np.ndarray:
    """For every item, the table row holding its vector (by path)."""
    index: dict[str, int] = {}
    for item_id, path, location in zip(items["item_id"], items["path"].astype(str), items["location"].astype(str)):
        absolute = location if os.path.isabs(location) else str(root / location)
        for key in (path, os.path.normpath(path), os.path.normpath(absolute), os.path.normpath(location)):
            index.setdefault(key, int(item_id))
    row_of = np.full(len(items), -1, dtype=np.int64)
    unmatched = []
    for r, p in enumerate(paths):
        item = next((index[k] for k in _keys(p, root) if k in index), None)
        if item is None:
            unmatched.append(p)
            continue
        if row_of[item] >= 0:
            raise CuratorError(f"embeddings file {file}: item {items['path'].iloc[item]!r} has two rows "
                               f"({row_of[item] + 1} and {r + 1}); keep one")
        row_of[item] = r
    if unmatched:
        raise CuratorError(f"embeddings file {file}: {len(unmatched):,} rows match no item of the project (misaligned; first: "
                           f"{unmatched[0]!r}); paths must be the imported ones (see `curator export`)")
    missing = np.flatnonzero(row_of < 0)
    if len(missing):
        raise CuratorError(f"embeddings file {file}: {len(missing):,} of {len(items):,} items have no row (first: "
                           f"{items['path'].iloc[int(missing[0])]!r}); give a vector for every image")
    return row_of


def _checked(file: Path, x: np.ndarray, items: pd.DataFrame) -> np.ndarray:
    if x.ndim != 2 or x.shape[1] < 2:
        raise CuratorError(f"embeddings file {file} has {x.shape[1] if x.ndim == 2 else 0} dimension(s) per item; "
                           "at least 2 are needed")
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise CuratorError(f"embeddings file {file}: {int(bad.sum()):,} items have NaN or infinite values (first: "
                           f"{items['path'].iloc[first]!r}); fix or drop them")
    zero = ~(np.abs(x) > 0).any(axis=1)
    if zero.any():
        first = int(np.flatnonzero(zero)[0])
        raise CuratorError(f"embeddings file {file}: {int(zero.sum()):,} items have an all-zero vector (first: "
                           f"{items['path'].iloc[first]!r}); it has no direction to compare")
    return np.ascontiguousarray(x, dtype=np.float32)


def store_user_embeddings(project, file: str | os.PathLike) -> int:
    """Read, check and store the user's embeddings in the project; returns their dimension.
    Recorded in the manifest, so the next analyze uses them (and redoes the checks)."""
    from .arrays import checksum
    from .store import atomic_save_npy

    x = read_user_embeddings(file, project.items(), project.root)
    path = project.array_path(USER_EMBEDDINGS)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_save_npy(path, x)
    project.manifest["user_embeddings"] = {"file": USER_EMBEDDINGS, "dim": int(x.shape[1]), "source": str(file),
                                           "checksum": checksum(path)}
    project.save_manifest()
    return int(x.shape[1])


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
