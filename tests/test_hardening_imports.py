"""Issue #10 (hardening), the import side: labels files that lead out of SOURCE (2), missing
listed files (10), one file spelt two ways (11), no labels (12), other CSV separators (13)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from curator import Project
from curator.errors import CuratorError

from conftest import digit_images


def assert_one_line_error(result, *needles):
    """Non-zero exit, exactly one stderr line starting with ``error:``, no traceback."""
    assert result.returncode != 0, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error:"), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for needle in needles:
        assert needle.lower() in lines[0].lower(), lines[0]


@pytest.fixture
def source(tmp_path) -> Path:
    """tmp_path/src/<digit>/<i>.png for digits 0-3, two each (8 images), plus a PNG outside it."""
    src = tmp_path / "src"
    images, labels = digit_images(per_class=2, size=16)
    for i, (img, label) in enumerate(zip(images, labels)):
        if label < 4:
            (src / str(label)).mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(src / str(label) / f"{i}.png")
    Image.fromarray(images[-1]).save(tmp_path / "secret.png")
    return src


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def labels_by_path(project_dir: Path) -> dict:
    items = Project(project_dir).items()
    return dict(zip(items["path"], items["label"]))


# ------------------------------------------------------------------ 2: nothing from outside SOURCE
def test_labels_file_paths_outside_source_are_refused(curator_cli, source, tmp_path):
    secret, other = tmp_path / "secret.png", tmp_path / "other.png"
    other.write_bytes(secret.read_bytes()[::-1])
    csv = write_csv(tmp_path / "l.csv", f"path,label\n0/0.png,zero\n../secret.png,x\n{other},y\n")
    for extra in ([], ["--copy"]):
        res = curator_cli("import", source, "--out", tmp_path / "p", "--labels", csv, *extra)
        assert_one_line_error(res, "outside SOURCE", "'../secret.png'", "--allow-outside-source", "2 files")
        assert not (tmp_path / "p").exists()
    # the explicit opt-in imports (and with --copy copies) them
    res = curator_cli("import", source, "--out", tmp_path / "p", "--labels", csv, "--copy", "--allow-outside-source")
    assert res.returncode == 0, res.stderr
    p = Project(tmp_path / "p")
    copied = {path: p.resolve(loc).read_bytes() for path, loc in zip(p.items()["path"], p.items()["location"])}
    assert copied["../secret.png"] == secret.read_bytes() and copied[str(other)] == other.read_bytes()
    res = curator_cli("import", "--help")
    assert "--allow-outside-source" in res.stdout


def test_symlink_out_of_source_is_refused_and_never_followed(curator_cli, source, tmp_path):
    secret = tmp_path / "secret.png"
    (source / "0" / "link.png").symlink_to(secret)
    (source / "inner.png").symlink_to(source / "0" / "0.png")  # a link within SOURCE is fine
    # folder import, in place and copying
    for extra in ([], ["--copy"]):
        res = curator_cli("import", source, "--out", tmp_path / "p", *extra)
        assert_one_line_error(res, "outside SOURCE", "link.png", str(secret), "--allow-outside-source")
        assert not (tmp_path / "p").exists()
    # a labels file naming the link, or a path through a linked folder
    (source / "elsewhere").symlink_to(tmp_path, target_is_directory=True)
    for listed in ("0/link.png", "elsewhere/secret.png"):
        csv = write_csv(tmp_path / "l.csv", f"path,label\n{listed},x\n0/0.png,zero\n")
        res = curator_cli("import", source, "--out", tmp_path / "p", "--labels", csv, "--copy")
        assert_one_line_error(res, "outside SOURCE", listed)
        assert not (tmp_path / "p").exists()
    (source / "0" / "link.png").unlink()
    res = curator_cli("import", source, "--out", tmp_path / "p", "--copy")
    assert res.returncode == 0, res.stderr
    assert len(Project(tmp_path / "p")) == 9  # 8 images + the inner link
    # opted in: the target is copied
    (source / "0" / "link.png").symlink_to(secret)
    res = curator_cli("import", source, "--out", tmp_path / "q", "--copy", "--allow-outside-source")
    assert res.returncode == 0, res.stderr
    p = Project(tmp_path / "q")
    loc = dict(zip(p.items()["path"], p.items()["location"]))[str(source / "0" / "link.png")]
    assert p.resolve(loc).read_bytes() == secret.read_bytes()


def test_copy_checks_again_where_a_file_leads(source, tmp_path):
    """A file swapped for a symlink after the scan is still not copied from outside."""
    from curator.importers import SourceGuard, _copy_inside

    target = source / "0" / "0.png"
    target.unlink()
    target.symlink_to(tmp_path / "secret.png")
    with pytest.raises(CuratorError, match="outside SOURCE"):
        _copy_inside(str(target), tmp_path / "copy.png", SourceGuard(source), allow_outside=False)
    assert not (tmp_path / "copy.png").exists()
    _copy_inside(str(target), tmp_path / "copy.png", SourceGuard(source), allow_outside=True)
    assert (tmp_path / "copy.png").read_bytes() == (tmp_path / "secret.png").read_bytes()


# ------------------------------------------------------------------ 10: missing listed files
def test_missing_listed_files_are_counted_and_named(curator_cli, source, tmp_path):
    csv = write_csv(tmp_path / "l.csv",
                    "path,label\n0/0.png,zero\n0/gone.png,zero\n1/2.png,one\n1/lost.png,one\n2/4.png,two\n")
    res = curator_cli("import", source, "--out", tmp_path / "p", "--labels", csv)
    assert res.returncode == 0, res.stderr
    out = res.stdout + res.stderr
    line = next(line for line in out.splitlines() if "do not exist" in line)
    assert "2 of 5" in line and "'0/gone.png'" in line
    assert len(Project(tmp_path / "p")) == 10  # listed (missing ones too: analyze reports them) + unlisted
    # nothing listed exists: probably the wrong SOURCE
    csv = write_csv(tmp_path / "none.csv", "path,label\nx/0.png,zero\nx/1.png,one\n")
    res = curator_cli("import", source, "--out", tmp_path / "q", "--labels", csv)
    assert_one_line_error(res, "none of the 2 files", "x/0.png")
    assert not (tmp_path / "q").exists()
    # a NUL byte (no file can have one) is a one-line error, not a crash later in analyze
    csv.write_bytes(b"path,label\n0/0.png,zero\n\"0/\x00.png\",one\n")
    assert_one_line_error(curator_cli("import", source, "--out", tmp_path / "q", "--labels", csv), "NUL byte")


# ------------------------------------------------------------------ 11: one file, one item
def test_one_file_spelt_differently_is_one_item(curator_cli, source, tmp_path):
    csv = write_csv(tmp_path / "l.csv",
                    f"path,label\n0/0.png,zero\n./0/0.png,zero\n0//0.png,zero\n1/../0/0.png,zero\n"
                    f"{source}/0/0.png,zero\n1/2.png,one\n")
    res = curator_cli("import", source, "--out", tmp_path / "p", "--labels", csv)
    assert res.returncode == 0, res.stderr
    assert "dropped 4 duplicate rows" in res.stderr
    labels = labels_by_path(tmp_path / "p")
    assert len(labels) == 8  # 8 files, each once
    assert labels["0/0.png"] == "zero" and labels["1/2.png"] == "one"
    assert str(source / "0" / "0.png") not in labels  # not imported again as unlabelled
    # the same file with two labels: refused, naming it
    csv = write_csv(tmp_path / "c.csv", "path,label\n0/0.png,zero\n1/2.png,one\n./0/0.png,one\n")
    res = curator_cli("import", source, "--out", tmp_path / "q", "--labels", csv)
    assert_one_line_error(res, "'0/0.png'", "two labels", "'./0/0.png'")
    # a folder import from a SOURCE spelt with .. has no .. in its paths
    res = curator_cli("import", f"{source}/../src/./", "--out", tmp_path / "r")
    assert res.returncode == 0, res.stderr
    paths = list(labels_by_path(tmp_path / "r"))
    assert len(paths) == 8 and all(p == os.path.normpath(p) and p.startswith(str(source)) for p in paths)


# ------------------------------------------------------------------ 12: no labels
def test_header_only_labels_file_says_label_checks_are_skipped(curator_cli, source, tmp_path):
    csv = write_csv(tmp_path / "l.csv", "path,label\n")
    res = curator_cli("import", source, "--out", tmp_path / "p", "--labels", csv)
    assert res.returncode == 0, res.stderr
    assert "0 labelled" in res.stdout and "no labels: label checks skipped" in res.stderr
    res = curator_cli("analyze", tmp_path / "p", "-q", "--projection", "pca", "--workers", "0")
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    assert "no labels: label checks skipped" in res.stderr
    assert "nan" not in res.stdout.lower()
    info = json.loads(curator_cli("summary", tmp_path / "p", "--json").stdout)
    assert info["items"] == 8 and info["issues"]["label_issue"] == 0
    numbers = [v for v in info["issues"].values()] + [c["items"] for c in info["classes"].values()]
    assert all(isinstance(v, int) and not math.isnan(v) for v in numbers)
    p = Project(tmp_path / "p")
    assert not np.isnan(np.load(p.array_path("projection.npy"))).any()
    # one class is not enough either
    res = curator_cli("import", source / "0", "--out", tmp_path / "q", "--labels",
                      write_csv(tmp_path / "one.csv", "path,label\n0.png,zero\n"))
    assert res.returncode == 0 and "only one class" in res.stderr


# ------------------------------------------------------------------ 13: other separators
@pytest.mark.parametrize("sep", [";", "\t", "|"])
def test_labels_file_separator_is_sniffed(curator_cli, source, tmp_path, sep):
    csv = write_csv(tmp_path / "l.csv", f"path{sep}label\n0/0.png{sep}zero\n1/2.png{sep}one\n")
    res = curator_cli("import", source, "--out", tmp_path / "p", "--labels", csv)
    assert res.returncode == 0, res.stderr
    labels = labels_by_path(tmp_path / "p")
    assert labels["0/0.png"] == "zero" and labels["1/2.png"] == "one"


def test_wrong_columns_error_lists_found_columns_and_separator(curator_cli, source, tmp_path):
    csv = write_csv(tmp_path / "l.csv", "file;class\n0/0.png;zero\n")
    res = curator_cli("import", source, "--out", tmp_path / "p", "--labels", csv)
    assert_one_line_error(res, "'file', 'class'", "semicolon-separated", "missing: label, path")
    # a comma CSV with a stray ; in a value is still read as comma-separated
    csv = write_csv(tmp_path / "c.csv", "path,label\n0/0.png,zero;one\n")
    res = curator_cli("import", source, "--out", tmp_path / "q", "--labels", csv)
    assert res.returncode == 0, res.stderr
    assert labels_by_path(tmp_path / "q")["0/0.png"] == "zero;one"
    # parquet is unaffected
    pd.DataFrame({"path": ["0/0.png"], "label": ["zero"]}).to_parquet(tmp_path / "l.parquet")
    res = curator_cli("import", source, "--out", tmp_path / "r", "--labels", tmp_path / "l.parquet")
    assert res.returncode == 0, res.stderr


def test_listed_folders_and_fifos_are_skipped_not_read(curator_cli, source, tmp_path):
    """Reading a FIFO would block import --copy (and analyze) forever; a folder has nothing to decode."""
    os.mkfifo(source / "0" / "pipe.png")
    csv = write_csv(tmp_path / "l.csv", "path,label\n0/0.png,zero\n0/pipe.png,zero\n1,one\n")
    res = curator_cli("import", source, "--out", tmp_path / "p", "--labels", csv, "--copy", timeout=120)
    assert res.returncode == 0, res.stderr
    assert "skipped 2 listed paths that are not regular files (first: '0/pipe.png', '1')" in res.stderr
    assert "0/pipe.png" not in labels_by_path(tmp_path / "p")
