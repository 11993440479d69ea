"""Download machinery shared by the sandbox recipes, built on ``torchvision.datasets.utils``.

- ``fetch``: one checksummed file through torchvision's ``download_url`` (progress bar, redirects,
  md5 check), trying the upstream mirrors in order, into a cache folder. The transfer goes to
  ``<file>.part`` and is renamed only once its md5 matches, so an interrupted or corrupted
  transfer is never mistaken for a finished one; running the command again restarts it, and
  files already in the cache (e.g. the first MNIST files) are not fetched again.
- ``safe_extract`` (``_extract``): archives hold only files and folders, and nothing is written
  outside the target folder.
- ``create_projects``: the train/test projects of one dataset, all or nothing.

Every failure is a one-line ``CuratorError``.

Environment: ``CURATOR_CACHE`` (cache folder, default ``DIR/.curator-cache``), ``CURATOR_MIRROR``
(fetch ``<mirror>/<dataset>/<file>`` instead of the upstream hosts; checksums are still the
upstream ones), ``CURATOR_TIMEOUT`` (network timeout in seconds, default 30).
"""

from __future__ import annotations

import contextlib
import os
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


@contextlib.contextmanager
def _network_timeout() -> Iterator[None]:
    """torchvision's urlopen calls take no timeout: bound them so a dead network fails fast."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(_timeout_seconds())
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


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


def fetch(dataset: str, resource: Resource, cache: Path, force: bool = False) -> Path:
    """The verified file ``cache/<filename>``, downloaded unless already cached (or ``force``)."""
    final = cache / resource.filename
    urls = resource_urls(dataset, resource)
    if force or not final.is_file():
        problems = _unreachable(urls)
        if problems:
            raise CuratorError(f"{dataset}: cannot download {resource.filename}: {'; '.join(problems)}; {OFFLINE_HINT}")

    from torchvision.datasets.utils import calculate_md5, check_integrity, download_url

    if not force and check_integrity(str(final), resource.md5):
        click.echo(f"{dataset}: {resource.filename} already downloaded ({final})", err=True)
        return final
    cache.mkdir(parents=True, exist_ok=True)
    part = cache / f"{resource.filename}.part"
    problems: list[str] = []
    network_problem = False
    for url in urls:
        host = urlparse(url).netloc or url
        part.unlink(missing_ok=True)  # a leftover from an interrupted run: restart it
        click.echo(f"{dataset}: downloading {url}", err=True)
        try:
            with _network_timeout():
                download_url(url, str(cache), filename=part.name, md5=resource.md5)
            os.replace(part, final)
            return final
        except urllib.error.HTTPError as exc:
            problems.append(f"{host} answered HTTP {exc.code} for {resource.filename}")
        except urllib.error.URLError as exc:
            network_problem = True
            problems.append(f"could not reach {host} ({_one_line(exc.reason)})")
        except OSError as exc:  # connection reset / timeout in the middle of the transfer
            network_problem = True
            problems.append(f"transfer of {resource.filename} from {host} failed ({_one_line(exc)})")
        except RuntimeError as exc:
            if part.is_file():  # torchvision's "File not found or corrupted.": wrong md5
                got = calculate_md5(str(part))
                problems.append(
                    f"checksum mismatch for {resource.filename} from {host} "
                    f"(md5 {got}, expected {resource.md5}): incomplete or corrupted download"
                )
            else:
                problems.append(f"{host}: {_one_line(exc)}")
        except KeyboardInterrupt:
            part.unlink(missing_ok=True)
            raise
        except Exception as exc:  # e.g. too many redirects, malformed HTTP
            problems.append(f"{host}: {type(exc).__name__}: {_one_line(exc)}")
        part.unlink(missing_ok=True)
    _cleanup_empty(cache)
    advice = OFFLINE_HINT if network_problem else "run the command again to retry"
    raise CuratorError(f"{dataset}: cannot download {resource.filename}: {'; '.join(problems)}; {advice}")


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
