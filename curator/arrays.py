"""The project's ``.npy`` array files (embeddings, thumbnails, projection, ...).

They are checked before being trusted: a file that is missing, truncated, overwritten, or
whose header disagrees with the shape and type the project expects is reported and rebuilt,
never read as if it were fine; a CRC-32 recorded by the last complete analysis also catches
garbage of the right size. Files that ``analyze`` fills row by row are memory-mapped and
created preallocated (posix_fallocate), so a full disk fails with one line when the file is
made instead of with SIGBUS half-way through the run.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
import zlib
from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import NotEnoughSpace

# room kept free beside the array being made: the database, the WAL and the small arrays
# written at the end grow with the item count
MARGIN_BYTES = 32 << 20
MARGIN_PER_ROW = 2048
_CHUNK = 16 << 20


def header(path: Path) -> tuple[tuple, np.dtype, int]:
    """(shape, dtype, data offset) from a .npy header; ValueError when it is not one."""
    from numpy.lib import format as npy

    with open(path, "rb") as fh:
        version = npy.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = npy.read_array_header_1_0(fh)
        elif version == (2, 0):
            shape, fortran, dtype = npy.read_array_header_2_0(fh)
        else:
            raise ValueError(f"unsupported .npy version {version}")
        if fortran:
            raise ValueError("Fortran-ordered array")
        return tuple(shape), np.dtype(dtype), fh.tell()


def problem(path: Path, shape: Sequence[int | None], dtype, expected_checksum: str | None = None) -> str | None:
    """Why ``path`` cannot be trusted as an array of ``shape`` (None = any size on that axis)
    and ``dtype``, in a few words; None when it can. ``expected_checksum`` (from
    :func:`checksum`) is compared too when given."""
    path = Path(path)
    if not path.is_file():
        return "missing"
    try:
        have_shape, have_dtype, offset = header(path)
    except (OSError, ValueError, SyntaxError) as exc:
        return f"not a valid .npy file: {exc}"
    if have_dtype != np.dtype(dtype):
        return f"holds {have_dtype}, expected {np.dtype(dtype)}"
    if len(have_shape) != len(shape) or any(w is not None and w != h for w, h in zip(shape, have_shape)):
        return f"shape {have_shape}, expected {tuple('*' if w is None else w for w in shape)}"
    expected = offset + int(np.prod(have_shape)) * have_dtype.itemsize
    size = path.stat().st_size
    if size != expected:
        return f"{size} bytes where its header says {expected}: truncated or overwritten"
    if expected_checksum is not None and checksum(path) != expected_checksum:
        return "its contents changed since the last analysis: checksum mismatch"
    return None


def checksum(path: Path) -> str:
    """CRC-32 of the whole file ("crc32:xxxxxxxx"): cheap next to the analysis that wrote it."""
    crc = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            crc = zlib.crc32(chunk, crc)
    return f"crc32:{crc:08x}"


def _size(n: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            return f"{n / (1 << shift):,.1f} {unit}"
    return f"{n} bytes"


def ensure_free_space(folder: Path, needed: int, what: str) -> None:
    """Refuse up front, in one line, when the disk holding ``folder`` lacks ``needed`` bytes."""
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise NotEnoughSpace(
            f"not enough free disk space for {what}: it needs about {_size(needed)}, and only {_size(free)} "
            f"are free on the disk holding {folder}; free some space (or move the project) and run analyze again"
        )


def preallocate(path: Path, what: str | None = None) -> None:
    """Give every byte of the file real disk blocks, so writing through a memory map cannot
    hit a full disk (which kills the process with SIGBUS). Filesystems that cannot
    preallocate keep the file as it is."""
    fallocate = getattr(os, "posix_fallocate", None)
    if fallocate is None:
        return
    size = os.path.getsize(path)
    with open(path, "r+b") as fh:
        try:
            fallocate(fh.fileno(), 0, size)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise NotEnoughSpace(
                    f"not enough free disk space for {what or Path(path).name}: the disk holding {Path(path).parent} "
                    f"could not reserve {_size(size)} ({exc.strerror}); free some space and run analyze again"
                ) from None
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                raise


def open_array(path: Path, shape: Sequence[int], dtype, *, recreate: bool = False) -> tuple[np.ndarray, bool]:
    """Memory-map an array file for writing; returns (array, created).

    A file that is missing, damaged or of another shape (or any file, with ``recreate``) is
    replaced by a zero-filled, preallocated one, made under a unique temporary name (two
    processes creating the same array never collide) and renamed into place.
    """
    from numpy.lib.format import open_memmap

    path = Path(path)
    shape = tuple(int(s) for s in shape)
    if not recreate and problem(path, shape, dtype) is None:
        preallocate(path, path.name)  # an older curator made sparse files: back their holes now
        return open_memmap(path, mode="r+"), False
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    ensure_free_space(path.parent, nbytes + MARGIN_BYTES + MARGIN_PER_ROW * shape[0], path.name)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp.npy")
    os.close(fd)
    try:
        arr = open_memmap(tmp, mode="w+", shape=shape, dtype=dtype)
        arr.flush()
        del arr
        preallocate(Path(tmp), path.name)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return open_memmap(path, mode="r+"), True
