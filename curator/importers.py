"""Turn a user's images into item records: a class-per-folder tree, or a folder plus a labels file."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

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


def read_labels_file(labels_file: Path) -> pd.DataFrame:
    """Read a CSV or Parquet file with ``path`` and ``label`` columns (clear errors otherwise)."""
    if not labels_file.is_file():
        raise CuratorError(f"labels file not found: {labels_file}")
    try:
        if labels_file.suffix.lower() in {".parquet", ".pq"}:
            df = pd.read_parquet(labels_file)
        else:
            df = pd.read_csv(labels_file, dtype=str, keep_default_na=False)
    except Exception as exc:  # pandas/pyarrow raise many kinds; the user needs one line
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CuratorError(f"cannot read labels file {labels_file}: {reason}") from None
    missing = {"path", "label"} - set(df.columns)
    if missing:
        raise CuratorError(
            f"labels file {labels_file} needs columns 'path' and 'label' (missing: {', '.join(sorted(missing))})"
        )
    df = df[["path", "label"]].copy()
    df["path"] = df["path"].astype(str)
    df["label"] = pd.Series([_label_text(v) for v in df["label"]], index=df.index, dtype=object)
    if df["path"].duplicated().any():
        dup = df.loc[df["path"].duplicated(), "path"].iloc[0]
        raise CuratorError(f"labels file {labels_file} lists {dup!r} more than once")
    return df


def collect_records(source: Path, labels_file: Path | None = None) -> list[ItemRecord]:
    """Item records for ``curator import``; paths are referenced in place."""
    source = Path(source).expanduser().absolute()
    if not source.exists():
        raise CuratorError(f"source not found: {source}")
    if not source.is_dir():
        raise CuratorError(f"source must be a folder of images: {source}")
    if labels_file is None:
        records = [ItemRecord(str(p), str(p), label) for p, label in scan_folder(source)]
    else:
        table = read_labels_file(Path(labels_file).expanduser())
        records = []
        listed = set()
        for path, label in zip(table["path"], table["label"]):
            full = Path(path) if Path(path).is_absolute() else source / path
            listed.add(os.path.normpath(full.absolute()))
            records.append(ItemRecord(path, str(full.absolute()), label))
        for p, _ in scan_folder(source):  # images present but not in the file: unlabelled
            if os.path.normpath(p) not in listed:
                records.append(ItemRecord(str(p), str(p), None))
    if not records:
        raise CuratorError(f"no images found in {source} (looked for {', '.join(sorted(IMAGE_EXTENSIONS))})")
    return records


def import_project(source, out, labels_file=None, *, copy: bool = False, overwrite: bool = False) -> Project:
    """Create the project ``out`` from ``source``; with ``copy`` the images are copied into it."""
    records = collect_records(Path(source), Path(labels_file) if labels_file else None)

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
            shutil.copy2(r.location, staging / rel)
            copied.append(ItemRecord(r.path, rel.as_posix(), r.label))
        return copied

    return Project.create(out, build, source=str(Path(source).absolute()), overwrite=overwrite)
