"""Issue #10, output items: the export format follows the extension (20), files get the normal
mode (21), and the printed next-step commands can be pasted back into a shell (22)."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import stat
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image


# ----------------------------------------------------------------------------- 20: format


def test_export_refuses_an_extension_it_cannot_write(analyzed_project, curator_cli, tmp_path):
    target = tmp_path / "issues.xlsx"
    res = curator_cli("export", analyzed_project, "-o", target)
    assert res.returncode != 0
    assert "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert "issues.xlsx" in res.stderr and "--format" in res.stderr
    assert not target.exists()


@pytest.mark.parametrize("suffix", [".json", ".JSON", ".parquet", ".csv", ""])
def test_export_format_follows_the_extension(analyzed_project, curator_cli, tmp_path, suffix):
    target = tmp_path / f"issues{suffix}"
    res = curator_cli("export", analyzed_project, "-o", target)
    assert res.returncode == 0, res.stderr
    kind = suffix.lower() or ".csv"
    if kind == ".json":
        rows = json.loads(target.read_text())
        assert isinstance(rows, list) and rows and "issue" in rows[0]
    elif kind == ".parquet":
        assert "issue" in pd.read_parquet(target).columns
    else:
        assert target.read_text().splitlines()[0].startswith("item_id,")


def test_an_explicit_format_wins_over_the_extension(analyzed_project, curator_cli, tmp_path):
    target = tmp_path / "issues.txt"
    res = curator_cli("export", analyzed_project, "--format", "json", "-o", target)
    assert res.returncode == 0, res.stderr
    assert isinstance(json.loads(target.read_text()), list)


# ----------------------------------------------------------------------------- 21: file mode


@pytest.fixture
def umask_002():
    old = os.umask(0o002)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_export_and_manifest_get_the_umask_mode(digits_folder, curator_cli, tmp_path, umask_002):
    """The CLI child inherits umask 002: files are 0664 like any `open(..., "w")`, not mkstemp's 0600."""
    project = tmp_path / "proj"
    res = curator_cli("import", digits_folder["root"], "-o", project)
    assert res.returncode == 0, res.stderr
    assert _mode(project / "curator.json") == 0o664


def test_export_file_mode(analyzed_project, curator_cli, tmp_path, umask_002):
    target = tmp_path / "issues.csv"
    assert curator_cli("export", analyzed_project, "-o", target).returncode == 0
    assert _mode(target) == 0o664


def test_replacing_a_file_keeps_its_mode(tmp_path):
    from curator.store import atomic_write_bytes

    target = tmp_path / "shared.csv"
    target.write_text("old")
    target.chmod(0o640)
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new"
    assert _mode(target) == 0o640


# ----------------------------------------------------------------------------- 22: quoting


def _next_words(stdout: str) -> list[list[str]]:
    """The commands on a ``next:`` line, split the way a POSIX shell would."""
    line = next(l for l in stdout.splitlines() if l.startswith("next: "))
    return [shlex.split(part) for part in line[len("next: "):].split("  |  ")]


def test_next_hints_paste_back_into_a_shell(curator_cli, tmp_path):
    source = tmp_path / "my images"
    for label in ("a", "b"):
        (source / label).mkdir(parents=True)
        for i in range(3):
            Image.new("L", (16, 16), 40 * i + 60 * (label == "b")).save(source / label / f"{i}.png")
    project = tmp_path / "it's a project; rm -rf x"
    res = curator_cli("import", source, "-o", project)
    assert res.returncode == 0, res.stderr
    assert _next_words(res.stdout) == [["curator", "analyze", str(project)]]


def test_analyze_hint_is_quoted(analyzed_project, curator_cli, tmp_path):
    spaced = tmp_path / "a project with spaces"
    shutil.copytree(analyzed_project, spaced)
    res = curator_cli("analyze", spaced, "-q", "--projection", "pca")
    assert res.returncode == 0, res.stderr
    summary_cmd, export_cmd = _next_words(res.stdout)
    assert summary_cmd == ["curator", "summary", str(spaced)]
    assert export_cmd == ["curator", "export", str(spaced), "-o", "issues.csv"]
