"""One HTTP(S) transfer into a ``.part`` file that an interruption does not throw away.

If the ``.part`` file already holds bytes (a killed or cut-off earlier run), the request asks
for the rest with ``Range: bytes=N-``: a 206 answer is appended, a 200 answer (the server
ignores ranges) starts the file over, a 416 answer (nothing left to send) leaves the part as
it is, for the caller's checksum to judge. When a transfer stops half way (connection cut,
Ctrl-C), the part is kept only if the server accepts ranges, since only then can the next run
continue it. Checksums are the caller's business.
"""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

USER_AGENT = "pytorch/vision"  # what torchvision's download_url sends: the upstream hosts accept it
CHUNK = 1 << 16


class CutOff(OSError):
    """The server closed the connection before sending everything it announced."""

    def __init__(self, received: int, expected: int, kept: bool):
        super().__init__(f"stopped after {received:,} of {expected:,} bytes")
        self.received, self.expected, self.kept = received, expected, kept


@dataclass(frozen=True)
class Transfer:
    resumed_from: int  # bytes of the earlier part the server continued from (0: from the start)
    received: int  # bytes received by this transfer


def _content_range_start(value: str | None) -> int | None:
    match = re.fullmatch(r"\s*bytes\s+(\d+)-\d+/(\d+|\*)\s*", value or "")
    return int(match.group(1)) if match else None


def download(url: str, part: Path, *, timeout: float, desc: str,
             say: Callable[[str], None] = lambda message: None) -> Transfer:
    """Bring ``part`` up to the end of ``url``'s body, continuing what it already holds."""
    from tqdm import tqdm

    offset = part.stat().st_size if part.is_file() else 0
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
        say(f"resuming {part.name[: -len('.part')]} at {offset:,} bytes")
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # the part already holds the whole body
            exc.close()
            return Transfer(resumed_from=offset, received=0)
        raise
    with response:
        status = getattr(response, "status", None) or 200
        start = offset if status == 206 and _content_range_start(response.headers.get("Content-Range")) == offset else 0
        if status == 206 and offset and not start:  # not the range we asked for: cannot be appended
            response.close()
            part.unlink(missing_ok=True)
            say("the server answered an unexpected range: starting over")
            return download(url, part, timeout=timeout, desc=desc, say=say)
        if offset and not start:
            say("the server does not resume downloads: starting over")
        length = response.headers.get("Content-Length")
        expected = int(length) if length and length.isdigit() else None
        resumable = status == 206 or response.headers.get("Accept-Ranges", "").strip().lower() == "bytes"
        received = 0
        try:
            with open(part, "ab" if start else "wb") as out, tqdm(
                total=None if expected is None else start + expected, initial=start, desc=desc,
                unit="B", unit_scale=True, unit_divisor=1024,
            ) as bar:
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
            if expected is not None and received < expected:
                raise CutOff(start + received, start + expected, kept=resumable)
        except BaseException:  # cut off, timed out, Ctrl-C: keep the part only if it can be resumed
            if not resumable:
                part.unlink(missing_ok=True)
            raise
    return Transfer(resumed_from=start, received=received)
