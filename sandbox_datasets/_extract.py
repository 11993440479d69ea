"""Extract a downloaded archive so that nothing can be written (or read) outside its folder.

Checking member names lexically is not enough: a chain of links, each pointing at ``..`` of its
own folder, carries a later member out, and a later member written over an extracted link
writes through it. Sandbox archives hold only folders and regular files, so every other
member (symbolic or hard link, device, fifo) is refused outright, for tar and zip alike; on
top of that tar members pass through tarfile's ``data`` filter and zip members have their real
path resolved before they are written. A refused member ends the extraction with a one-line
``CuratorError`` naming it, and the partly written folder is removed.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import shutil
import stat
import tarfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from curator.errors import CuratorError

TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
COMPRESSED = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}  # one compressed file
READ_ERRORS = (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, lzma.LZMAError, OSError)


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _escapes(name: str) -> bool:
    """True for an archive member name that is absolute or climbs out of the target folder."""
    name = name.replace("\\", "/")
    if not name or name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return True
    depth = 0
    for part in PurePosixPath(name).parts:
        if part == "..":
            depth -= 1
            if depth < 0:
                return True
        elif part not in (".", ""):
            depth += 1
    return False


def _inside(root: str, path: str) -> bool:
    """Whether ``path``, with every link on the way resolved, is ``root`` or below it."""
    real = os.path.realpath(path)
    return real == root or real.startswith(root.rstrip(os.sep) + os.sep)


def _refuse(archive: Path, member: str, why: str) -> CuratorError:
    return CuratorError(f"refusing to extract {archive.name}: member {member!r} {why}")


def _extract_tar(archive: Path, dest: Path) -> None:
    root = os.path.realpath(dest)

    def only_files_and_folders(member: tarfile.TarInfo, path: str) -> tarfile.TarInfo:
        if _escapes(member.name):
            raise _refuse(archive, member.name, "would be written outside the target folder")
        if member.issym() or member.islnk():
            raise _refuse(archive, member.name, f"is a link (to {member.linkname!r}); "
                                                "sandbox archives hold only files and folders")
        if not (member.isfile() or member.isdir()):
            raise _refuse(archive, member.name, "is not a regular file or folder")
        if not _inside(root, os.path.join(root, member.name)):
            raise _refuse(archive, member.name, "would be written outside the target folder")
        if hasattr(tarfile, "data_filter"):  # Python >= 3.10.12 / 3.11.4
            try:
                member = tarfile.data_filter(member, path)
            except tarfile.FilterError as exc:
                raise _refuse(archive, member.name, f"is unsafe ({_one_line(exc)})") from None
        return member

    with tarfile.open(archive) as tf:
        tf.extractall(dest, filter=only_files_and_folders)


def _extract_zip(archive: Path, dest: Path) -> None:
    root = os.path.realpath(dest)
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            name = info.filename
            kind = stat.S_IFMT(info.external_attr >> 16)
            if _escapes(name):
                raise _refuse(archive, name, "would be written outside the target folder")
            if kind == stat.S_IFLNK:
                raise _refuse(archive, name, "is a link; sandbox archives hold only files and folders")
            if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
                raise _refuse(archive, name, "is not a regular file or folder")
            if not _inside(root, os.path.join(root, name)):
                raise _refuse(archive, name, "would be written outside the target folder")
            zf.extract(info, dest)


def _decompress(archive: Path, dest: Path, opener) -> None:
    """``x.gz`` -> ``dest/x`` (as torchvision's ``extract_archive`` does for a single file)."""
    with opener(archive, "rb") as src, open(dest / archive.name[: -len(Path(archive.name).suffix)], "wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)


def safe_extract(archive: Path, dest: Path) -> Path:
    """Extract ``archive`` (zip, tar[.gz|.bz2|.xz] or a single .gz/.bz2/.xz file) into ``dest``."""
    archive, dest = Path(archive), Path(dest)
    name = archive.name.lower()
    created = not dest.exists()
    dest.mkdir(parents=True, exist_ok=True)
    try:
        if name.endswith(".zip"):
            _extract_zip(archive, dest)
        elif name.endswith(TAR_SUFFIXES):
            _extract_tar(archive, dest)
        elif Path(name).suffix in COMPRESSED:
            _decompress(archive, dest, COMPRESSED[Path(name).suffix])
        else:
            raise CuratorError(f"cannot extract {archive.name}: not a zip, tar or compressed file")
    except BaseException as exc:
        if created:
            shutil.rmtree(dest, ignore_errors=True)
        if isinstance(exc, READ_ERRORS):  # truncated or corrupt archive, disk full, ...
            raise CuratorError(f"cannot extract {archive.name}: {_one_line(exc)}") from None
        raise
    return dest
