"""Commands we print for the user to paste back: every word shell-quoted, so a project path with
spaces or quotes survives the copy."""

from __future__ import annotations

import shlex


def command(*words) -> str:
    """``command("curator", "analyze", Path("my data"))`` -> ``curator analyze 'my data'``."""
    return " ".join(shlex.quote(str(word)) for word in words)
