"""Write export frames as CSV, JSON (records) or Parquet; files are written atomically."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pandas as pd

from .errors import CuratorError
from .store import atomic_write_bytes

FORMATS = ("csv", "json", "parquet")


def to_bytes(frame: pd.DataFrame, fmt: str) -> bytes:
    if fmt == "csv":
        return frame.to_csv(index=False).encode()
    if fmt == "json":
        return frame.to_json(orient="records", indent=1).encode()
    if fmt == "parquet":
        buf = io.BytesIO()
        frame.to_parquet(buf, index=False)
        return buf.getvalue()
    raise CuratorError(f"unknown export format {fmt!r}; choose from {', '.join(FORMATS)}")


def format_for(output: Path | None, fmt: str | None) -> str:
    """The export format: ``fmt`` when given, else the output file's extension (csv when there is
    none). An extension we cannot write is refused: ``x.xlsx`` must not receive CSV text."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise CuratorError(f"unknown export format {fmt!r}; choose from {', '.join(FORMATS)}")
        return fmt
    if output is None or not Path(output).suffix:
        return "csv"
    suffix = Path(output).suffix.lower().lstrip(".")
    if suffix not in FORMATS:
        raise CuratorError(
            f"cannot write {Path(output).name!r}: export writes "
            f"{', '.join('.' + f for f in FORMATS)} files; rename the output or pass --format")
    return suffix


def write_export(frame: pd.DataFrame, output: Path | None, fmt: str | None) -> Path | None:
    fmt = format_for(output, fmt)
    data = to_bytes(frame, fmt)
    if output is None:
        if fmt == "parquet":
            raise CuratorError("parquet needs an output file: add -o FILE.parquet")
        sys.stdout.write(data.decode())
        return None
    output = Path(output)
    if not output.parent.exists():
        raise CuratorError(f"output folder does not exist: {output.parent}")
    atomic_write_bytes(output, data)
    return output
