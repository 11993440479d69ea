"""Download machinery shared by the sandbox recipes.

- ``fetch``: one md5-checked file into a cache folder, trying the upstream mirrors in order.
  The transfer goes to ``<file>.part`` (``_http.download``: progress bar, redirects, HTTP Range)
  and is renamed only once its md5 matches, so an interrupted or corrupted transfer is never
  mistaken for a finished one. A ``.part`` left by a killed or cut-off run is resumed by the
  next run; if the resumed file's md5 is wrong, the part is deleted and the file fetched once
  more from the start. Files already in the cache (e.g. the first MNIST files) are not fetched again.
- ``safe_extract`` (``_extract``): archives hold only files and folders, and nothing is written
  outside the target folder.
- ``remove_leftovers``: staging and scratch folders a killed run left behind.
- ``create_projects``: the train/test projects of one dataset, all or nothing.

Every failure is a one-line ``CuratorError``.

Environment: ``CURATOR_CACHE`` (cache folder, default ``DIR/.curator-cache``), ``CURATOR_MIRROR``
(fetch ``<mirror>/<dataset>/<file>`` instead of the upstream hosts; checksums are still the
upstream ones), ``CURATOR_TIMEOUT`` (network timeout in seconds, default 30).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import socket
import tempfile
import urllib.error
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence
from urllib.parse import urlparse

import click

from curator.errors import CuratorError
from curator.project import MANIFEST, ItemRecord, Project

from . import _http
from ._extract import _escapes, safe_extract  # noqa: F401  (re-exported for the recipes)

OFFLINE_HINT = "no network? `curator download digits` works offline"
CACHE_DIRNAME = ".curator-cache"


@dataclass(frozen=True)
class Resource:
    """One upstream file: its name, md5 and the URLs to try in order (mirrors)."""

    filename: str
    md5: str
    urls: tuple[str, ...]


def cache_dir(target_dir: Path, dataset: str) -> Path:
    """Where ``dataset``'s downloads are kept: ``$CURATOR_CACHE/<dataset>`` or ``DIR/.curator-cache/<dataset>``."""
    base = os.environ.get("CURATOR_CACHE")
    root = Path(base).expanduser() if base else Path(target_dir) / CACHE_DIRNAME
    return root.absolute() / dataset


def resource_urls(dataset: str, resource: Resource) -> list[str]:
    mirror = os.environ.get("CURATOR_MIRROR", "").strip()
    if mirror:
        return [f"{mirror.rstrip('/')}/{dataset}/{resource.filename}"]
    return list(resource.urls)


def _timeout_seconds() -> float:
    try:
        return max(0.1, float(os.environ.get("CURATOR_TIMEOUT", "30")))
    except ValueError:
        return 30.0


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _unreachable(urls: Sequence[str]) -> list[str]:
    """Why none of the hosts of ``urls`` accepts a connection (no network), found with a plain
    TCP connect before torch is even imported; [] as soon as one does, or when a proxy is set
    (then only the proxy knows)."""
    import urllib.request

    if urllib.request.getproxies():
        return []
    problems = []
    for url in urls:
        parts = urlparse(url)
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
            with socket.create_connection((parts.hostname or "", port), timeout=_timeout_seconds()):
                return []
        except (OSError, UnicodeError, ValueError) as exc:
            reason = "timed out" if isinstance(exc, TimeoutError) else _one_line(exc)
            problems.append(f"could not reach {parts.netloc or url} ({reason})")
    return problems


def _cleanup_empty(cache: Path) -> None:
    for folder in (cache, cache.parent) if cache.parent.name == CACHE_DIRNAME else (cache,):
        with contextlib.suppress(OSError):
            folder.rmdir()  # only if empty: leave nothing behind


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


class _ChecksumMismatch(Exception):
    pass


def _download_verified(dataset: str, url: str, resource: Resource, part: Path) -> None:
    """``part`` holds ``url``'s body with the expected md5 afterwards, or this raises.

    A resumed transfer whose result has the wrong md5 (the earlier part was not the start of
    this file) is deleted and fetched once more from the start."""
    host = urlparse(url).netloc or url

    def say(message: str) -> None:
        click.echo(f"{dataset}: {message}", err=True)

    click.echo(f"{dataset}: downloading {url}", err=True)
    transfer = _http.download(url, part, timeout=_timeout_seconds(), desc=resource.filename, say=say)
    got = _md5(part)
    if got != resource.md5 and transfer.resumed_from:
        part.unlink(missing_ok=True)
        say(f"checksum mismatch for {resource.filename} after resuming at {transfer.resumed_from:,} bytes "
            f"(md5 {got}): deleted the partial download, downloading it again from the start")
        _http.download(url, part, timeout=_timeout_seconds(), desc=resource.filename, say=say)
        got = _md5(part)
    if got != resource.md5:
        part.unlink(missing_ok=True)
        raise _ChecksumMismatch(f"checksum mismatch for {resource.filename} from {host} "
                                f"(md5 {got}, expected {resource.md5}): incomplete or corrupted download")


def fetch(dataset: str, resource: Resource, cache: Path, force: bool = False) -> Path:
    """The verified file ``cache/<filename>``, downloaded unless already cached (or ``force``)."""
    final = cache / resource.filename
    if not force and final.is_file() and _md5(final) == resource.md5:
        click.echo(f"{dataset}: {resource.filename} already downloaded ({final})", err=True)
        return final
    urls = resource_urls(dataset, resource)
    problems = _unreachable(urls)
    if problems:
        raise CuratorError(f"{dataset}: cannot download {resource.filename}: {'; '.join(problems)}; {OFFLINE_HINT}")
    cache.mkdir(parents=True, exist_ok=True)
    part = cache / f"{resource.filename}.part"
    network_problem = False
    for url in urls:
        host = urlparse(url).netloc or url
        try:
            _download_verified(dataset, url, resource, part)
            os.replace(part, final)
            return final
        except urllib.error.HTTPError as exc:
            problems.append(f"{host} answered HTTP {exc.code} for {resource.filename}")
        except urllib.error.URLError as exc:
            network_problem = True
            problems.append(f"could not reach {host} ({_one_line(exc.reason)})")
        except _http.CutOff as exc:
            problems.append(f"transfer of {resource.filename} from {host} {exc}: incomplete or corrupted download")
        except OSError as exc:  # connection reset / timeout in the middle of the transfer
            network_problem = True
            problems.append(f"transfer of {resource.filename} from {host} failed ({_one_line(exc)})")
        except _ChecksumMismatch as exc:
            problems.append(str(exc))
        except Exception as exc:  # e.g. too many redirects, malformed HTTP
            part.unlink(missing_ok=True)
            problems.append(f"{host}: {type(exc).__name__}: {_one_line(exc)}")
    if part.is_file():
        advice = f"the partial download is kept ({part}): run the command again to resume it"
    else:
        _cleanup_empty(cache)
        advice = OFFLINE_HINT if network_problem else "run the command again to retry"
    raise CuratorError(f"{dataset}: cannot download {resource.filename}: {'; '.join(problems)}; {advice}")


# ---------------------------------------------------------------------------------- leftovers
# tempfile.mkdtemp names: prefix + 8 characters of this alphabet (Project.create's staging
# folders ".<project>.partial-XXXXXXXX", work_dir's ".work-XXXXXXXX")
_TEMP_SUFFIX = "[a-z0-9_]{8}"


def remove_leftovers(target_dir: Path, dataset: str, projects: Sequence[str]) -> list[Path]:
    """Remove what a killed run of ``dataset`` left behind: the staging folders of its projects
    under ``target_dir`` and its scratch folders in the cache. Returns the folders removed.

    Only folders named exactly as those runs name them; anything else is left alone."""
    places = [(Path(target_dir), "|".join(rf"\.{re.escape(p)}\.partial-" for p in projects)),
              (cache_dir(Path(target_dir), dataset), r"\.work-")]
    removed = []
    for folder, prefixes in places:
        if not prefixes or not folder.is_dir():
            continue
        pattern = re.compile(rf"(?:{prefixes}){_TEMP_SUFFIX}")
        for path in folder.iterdir():
            if pattern.fullmatch(path.name) and path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
                click.echo(f"{dataset}: removed {path} (left by an interrupted run)", err=True)
                removed.append(path)
    return removed


@contextlib.contextmanager
def work_dir(cache: Path) -> Iterator[Path]:
    """A scratch folder next to the cache (same file system as the cache), removed afterwards."""
    cache.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(dir=cache, prefix=".work-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# ---------------------------------------------------------------------------------- projects
Writer = Callable[[Path, Path], Sequence[ItemRecord]]  # (staging dir, final project root) -> records


def create_projects(target_dir: Path, force: bool, specs: Sequence[tuple[str, str, Writer]]) -> list[Path]:
    """Create the projects ``(name, source, writer)`` under ``target_dir``, all or nothing.

    Existing projects are kept unless ``force``. If one fails (or Ctrl-C), the projects this call
    created are removed again, so a dataset is never left half there.
    """
    created: list[Path] = []
    try:
        for name, source, writer in specs:
            root = (Path(target_dir) / name).absolute()
            if not force and (root / MANIFEST).is_file():
                continue
            Project.create(root, lambda staging, w=writer, r=root: w(staging, r), source=source, overwrite=force)
            created.append(root)
    except BaseException:
        for root in created:
            shutil.rmtree(root, ignore_errors=True)
        raise
    return created


def image_record(final_root: Path, rel: Path, label: str) -> ItemRecord:
    return ItemRecord(str(final_root / rel), rel.as_posix(), label)
