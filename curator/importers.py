"""Turn a user's images into item records: a class-per-folder tree, or a folder plus a labels file."""

from __future__ import annotations

import csv
import os
import shutil
import stat
from pathlib import Path
from typing import Callable

import click
import pandas as pd

from .errors import CuratorError
from .project import ItemRecord, Project

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"}


def printable_path(path) -> str:
    """A path as valid text for messages: bytes that are not UTF-8 shown as ``\\xNN``."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _is_text(path) -> bool:
    """Whether ``path`` is valid UTF-8 (os.walk hands other bytes over as lone surrogates,
    which neither SQLite nor the export files can store)."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def scan_folder(source: Path) -> list[tuple[Path, str | None]]:
    """(absolute image path, label) for every image file below ``source``.

    The label is the name of the image's parent folder; images directly in ``source`` are
    unlabelled. Files are chosen by extension, so a corrupt ``.png`` is still imported (and
    later flagged ``unreadable``) while a stray README is not; so are named pipes, devices and
    sockets with an image name (never opened here: ``analyze`` reports them ``unreadable``).
    Symlinked folders are not followed (no loops). Files whose path is not valid UTF-8 cannot
    be stored: they are skipped with a one-line warning on stderr.
    """
    if not _is_text(source):
        raise CuratorError(f"the folder name {printable_path(source)} is not valid UTF-8; rename it and import again")
    found, odd = [], []
    for dirpath, dirnames, filenames in os.walk(source):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith(".") or Path(name).suffix.lower() not in IMAGE_EXTENSIONS:
                continue
            path = Path(dirpath) / name
            if not _is_text(path):
                odd.append(path)
                continue
            label = None if Path(dirpath) == source else Path(dirpath).name
            found.append((path.absolute(), label))
    if odd:
        click.echo(
            f"warning: skipped {len(odd)} image file(s) whose name is not valid UTF-8 (rename them to import them), "
            f"e.g. {printable_path(odd[0])}",
            err=True,
        )
    return found


def _label_text(value) -> str | None:
    """A label as text; blank/missing -> None; 3.0 (Parquet int column with gaps) -> "3"."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value).strip()
    return None if text in {"", "nan", "None", "NaN"} else text


SEPARATORS = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
REQUIRED_COLUMNS = ("path", "label")


def _header_line(labels_file: Path) -> str:
    """The first line of a text file (undecodable bytes replaced; pandas reports real decoding errors)."""
    with open(labels_file, encoding="utf-8-sig", errors="replace", newline="") as fh:
        return fh.readline(1 << 20)


def sniff_separator(header: str) -> str:
    """The separator that makes ``header`` hold the ``path`` and ``label`` columns (CSVs from
    spreadsheets often use ``;``, tab or ``|``); else the one splitting it into the most fields."""
    best, most = ",", 1
    for sep in SEPARATORS:
        fields = [f.strip() for f in next(csv.reader([header.rstrip("\r\n")], delimiter=sep), [])]
        if set(REQUIRED_COLUMNS) <= set(fields):
            return sep
        if len(fields) > most:
            best, most = sep, len(fields)
    return best


def read_labels_file(labels_file: Path) -> pd.DataFrame:
    """Read a CSV (separator sniffed) or Parquet file with ``path`` and ``label`` columns (clear errors otherwise)."""
    if not labels_file.is_file():
        raise CuratorError(f"labels file not found: {labels_file}")
    sep = None
    try:
        if labels_file.suffix.lower() in {".parquet", ".pq"}:
            df = pd.read_parquet(labels_file)
        else:
            sep = sniff_separator(_header_line(labels_file))
            df = pd.read_csv(labels_file, sep=sep, dtype=str, keep_default_na=False)
            df.columns = [str(c).strip() for c in df.columns]
    except Exception as exc:  # pandas/pyarrow raise many kinds; the user needs one line
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CuratorError(f"cannot read labels file {labels_file}: {reason}") from None
    missing = set(REQUIRED_COLUMNS) - set(df.columns)
    if missing:
        found = ", ".join(repr(str(c)) for c in df.columns) or "none"
        how = "" if sep is None else (
            f"; read as {SEPARATORS[sep]}-separated, tried {', '.join(SEPARATORS.values())}")
        raise CuratorError(
            f"labels file {labels_file} needs columns 'path' and 'label' (missing: {', '.join(sorted(missing))}; "
            f"found: {found}{how})"
        )
    df = df[["path", "label"]].copy()
    df["path"] = df["path"].astype(str)
    df["label"] = pd.Series([_label_text(v) for v in df["label"]], index=df.index, dtype=object)
    return df


def normalised_location(base: str, path: str) -> str:
    """Where ``path`` (relative to the folder ``base``, which ends in a separator, or absolute)
    is, spelt one way per file for the duplicate check: no ``.`` or ``..`` segments, no doubled
    or trailing separators (``./0/a.png``, ``0//a.png`` and ``1/../0/a.png`` are ``base/0/a.png``)."""
    full = os.path.normpath(path if path.startswith(os.sep) else base + path)
    return os.sep + full.lstrip(os.sep) if full.startswith(os.sep * 2) else full  # POSIX keeps a leading //


class SourceGuard:
    """Where a path really points (symlinks resolved) and whether that is inside SOURCE.

    One ``lstat`` per file and one ``realpath`` per folder, so a labels file of a million rows
    costs a million system calls, not a million decodes."""

    def __init__(self, source: Path):
        self.root = os.path.realpath(source)
        self._prefix = self.root.rstrip(os.sep) + os.sep
        self._folders: dict[str, str] = {}

    def resolve(self, path: str) -> tuple[str, os.stat_result | None]:
        """(real path, its stat or None when nothing is there) of a normalised absolute path."""
        folder, name = os.path.split(path)
        real = path
        try:  # ValueError: a NUL byte in the path
            real_folder = self._folders.get(folder)
            if real_folder is None:
                real_folder = self._folders[folder] = os.path.realpath(folder)
            real = real_folder.rstrip(os.sep) + os.sep + name
            st = os.lstat(real)
            if stat.S_ISLNK(st.st_mode):
                real = os.path.realpath(real)
                st = os.stat(real)
        except (OSError, ValueError):
            return real, None
        return real, st

    def inside(self, real: str) -> bool:
        return real == self.root or real.startswith(self._prefix)


def _first(paths: list[str], n: int = 3) -> str:
    return ", ".join(repr(p) for p in paths[:n]) + (", ..." if len(paths) > n else "")


OUTSIDE_HINT = "pass --allow-outside-source to import files from elsewhere"


def _refuse_outside(outside: list[tuple[str, str]], what: str):
    """One line naming the first (path, where it really leads) of the files outside SOURCE."""
    path, real = outside[0]
    raise CuratorError(
        f"{what} {len(outside)} file{'s' if len(outside) != 1 else ''} outside SOURCE (first: {path!r} -> "
        f"{real!r}); {OUTSIDE_HINT}"
    )


def _labelled_records(source: Path, labels_file: Path, guard: SourceGuard, allow_outside: bool,
                      note) -> tuple[list[ItemRecord], set[str]]:
    """Records for the rows of a labels file, and the locations it names. Each keeps the path as
    written in the file, read from its normalised spelling; one record per file (rows naming one
    file twice with one label are merged, with different labels refused); files outside SOURCE
    refused unless allowed; missing files counted and named; folders and FIFOs skipped."""
    table = read_labels_file(labels_file)
    records, first_row, outside, missing, special = [], {}, [], [], []
    merged = 0
    base = str(source).rstrip(os.sep) + os.sep
    for given, label in zip(table["path"].tolist(), table["label"].tolist()):
        if "\0" in given:  # no file can have it, and the OS refuses such names with ValueError
            raise CuratorError(f"labels file {labels_file} lists a path with a NUL byte ({given!r}); fix that row")
        full = normalised_location(base, given)
        if full in first_row:
            prev = first_row[full]
            if prev.label != label:
                raise CuratorError(
                    f"labels file {labels_file} gives {prev.path!r} two labels ({prev.label!r} and {label!r}, "
                    f"the second as {given!r}); keep one row per file"
                )
            merged += 1
            continue
        real, st = guard.resolve(full)
        if not allow_outside and not guard.inside(real):
            outside.append((given, real))
            continue
        if st is None:
            missing.append(given)
        elif not stat.S_ISREG(st.st_mode):  # a folder or a FIFO: nothing to decode, and reading a FIFO blocks
            special.append(given)
            first_row[full] = ItemRecord(given, full, label)
            continue
        first_row[full] = record = ItemRecord(given, full, label)  # the path as the user wrote it
        records.append(record)
    if outside:
        _refuse_outside(outside, f"labels file {labels_file} lists")
    if len(table) and len(missing) == len(records):  # not one listed file is there: a wrong SOURCE?
        if not missing:
            raise CuratorError(f"labels file {labels_file} lists no regular files (first: {special[0]!r})")
        raise CuratorError(
            f"none of the {len(missing)} files listed in {labels_file} exist (first: {missing[0]!r}, looked for "
            f"{records[0].location!r}); relative paths are read from SOURCE {source}"
        )
    if missing:
        note(f"{len(missing)} of {len(records)} files listed in {labels_file.name} do not exist (first: "
             f"{_first(missing)}); they are imported and will be reported unreadable")
    if special:
        note(f"skipped {len(special)} listed path{'s' if len(special) != 1 else ''} that are not regular files "
             f"(first: {_first(special)})")
    if merged:
        note(f"dropped {merged} duplicate row{'s' if merged != 1 else ''} of {labels_file.name} naming a file "
             "already listed (same label)")
    return records, set(first_row)


def _source_folder(source) -> Path:
    """SOURCE absolute and normalised (no ``..``), so every path found below it is too."""
    return Path(os.path.abspath(os.path.expanduser(source)))


def collect_records(source: Path, labels_file: Path | None = None, *, allow_outside_source: bool = False,
                    note: Callable[[str], None] | None = None) -> list[ItemRecord]:
    """Item records for ``curator import``; paths are referenced in place.

    Nothing outside SOURCE is imported unless ``allow_outside_source``: neither labels-file
    paths that lead out of it nor symlinks inside it that point out. ``note`` receives
    one-line remarks for the user (missing files, merged rows)."""
    remarks: list[str] = []  # told only once the import is sure to go ahead: an error stays one line
    source = _source_folder(source)
    if not source.exists():
        raise CuratorError(f"source not found: {source}")
    if not source.is_dir():
        raise CuratorError(f"source must be a folder of images: {source}")
    guard = SourceGuard(source)
    records: list[ItemRecord] = []
    listed: set[str] = set()
    if labels_file is not None:
        records, listed = _labelled_records(source, Path(labels_file).expanduser(), guard, allow_outside_source,
                                            remarks.append)
    outside = []
    for p, label in scan_folder(source):  # with a labels file: images present but not listed are unlabelled
        location = os.path.normpath(p)
        if location in listed:
            continue
        if not allow_outside_source and os.path.islink(location):
            real = os.path.realpath(location)
            if not guard.inside(real):
                outside.append((location, real))
                continue
        records.append(ItemRecord(location, location, None if labels_file is not None else label))
    if outside:
        _refuse_outside(outside, f"{source} holds symlinks to")
    if not records:
        raise CuratorError(f"no images found in {source} (looked for {', '.join(sorted(IMAGE_EXTENSIONS))})")
    for message in remarks if note else ():
        note(message)
    return records


def _copy_inside(location: str, dest: Path, guard: SourceGuard, allow_outside: bool) -> None:
    """Copy the file at ``location`` (its resolved target, checked again now) to ``dest``; a
    missing or non-regular file is not copied (it is reported unreadable by analyze)."""
    real, st = guard.resolve(location)
    if not allow_outside and not guard.inside(real):
        _refuse_outside([(location, real)], "refusing to copy")
    if st is not None and stat.S_ISREG(st.st_mode):
        shutil.copy2(real, dest)


def import_project(source, out, labels_file=None, *, copy: bool = False, overwrite: bool = False,
                   allow_outside_source: bool = False, note: Callable[[str], None] | None = None) -> Project:
    """Create the project ``out`` from ``source``; with ``copy`` the images are copied into it.
    ``note`` gets the remarks on the import (missing files, merged rows) once the project exists."""
    remarks: list[str] = []
    records = collect_records(Path(source), Path(labels_file) if labels_file else None,
                              allow_outside_source=allow_outside_source, note=remarks.append)
    guard = SourceGuard(_source_folder(source))

    def build(staging: Path):
        if not copy:
            return records
        copied = []
        for i, r in enumerate(records):
            if not os.path.isfile(r.location):  # missing, or a pipe/device: analyze reports it where it is
                copied.append(r)
                continue
            rel = Path("images") / (r.label or "_unlabelled") / f"{i:07d}{Path(r.location).suffix.lower()}"
            (staging / rel).parent.mkdir(parents=True, exist_ok=True)
            _copy_inside(r.location, staging / rel, guard, allow_outside_source)
            copied.append(ItemRecord(r.path, rel.as_posix(), r.label))
        return copied

    project = Project.create(out, build, source=str(_source_folder(source)), overwrite=overwrite)
    for message in remarks if note else ():
        note(message)
    return project
