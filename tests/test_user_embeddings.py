"""Bring your own embeddings: both table layouts and .npy are read and aligned with the items;
each bad input is one line; analyze and import use them."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from curator import Project
from curator.errors import CuratorError
from curator.user_embeddings import read_user_embeddings


@pytest.fixture(scope="module")
def items(analyzed_project):
    with Project(analyzed_project, readonly=True) as p:
        return p.items(), p.root


@pytest.fixture(scope="module")
def vectors(items):
    df, _ = items
    rng = np.random.default_rng(0)
    return rng.normal(size=(len(df), 6)).astype(np.float32)


def read(path, items):
    df, root = items
    return read_user_embeddings(path, df, root)


def one_line_error(path, items, match):
    with pytest.raises(CuratorError, match=match) as exc:
        read(path, items)
    assert "\n" not in str(exc.value) and str(path) in str(exc.value)


def test_npy_aligned_with_items(tmp_path, items, vectors):
    np.save(tmp_path / "e.npy", vectors.astype(np.float64))
    x = read(tmp_path / "e.npy", items)
    assert x.dtype == np.float32 and np.array_equal(x, vectors)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_table_with_a_list_column_in_any_row_order(tmp_path, items, vectors, fmt):
    df, _ = items
    order = np.random.default_rng(1).permutation(len(df))
    table = pd.DataFrame({"path": df["path"].to_numpy()[order], "label": df["label"].to_numpy()[order]})
    if fmt == "csv":
        table["embedding"] = [json.dumps(v.tolist()) for v in vectors[order]]
        table.to_csv(tmp_path / "e.csv", index=False)
    else:
        table["embedding"] = [v.tolist() for v in vectors[order]]
        table.to_parquet(tmp_path / "e.parquet")
    x = read(tmp_path / f"e.{fmt}", items)
    assert np.allclose(x, vectors, atol=1e-6)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_table_with_numeric_columns(tmp_path, items, vectors, fmt):
    df, _ = items
    table = pd.DataFrame(vectors, columns=[f"f{i}" for i in range(vectors.shape[1])])
    table.insert(0, "path", df["path"].to_numpy())
    getattr(table.iloc[::-1], f"to_{fmt}")(tmp_path / f"e.{fmt}", index=False)
    assert np.allclose(read(tmp_path / f"e.{fmt}", items), vectors, atol=1e-6)


def test_npy_with_other_row_count_is_misaligned(tmp_path, items, vectors):
    np.save(tmp_path / "e.npy", vectors[:-1])
    one_line_error(tmp_path / "e.npy", items, r"rows but the project has .* items")


def test_npy_of_wrong_rank(tmp_path, items, vectors):
    np.save(tmp_path / "e.npy", vectors[:, :, None])
    one_line_error(tmp_path / "e.npy", items, "3-dimensional array")


def test_rows_matching_no_item(tmp_path, items, vectors):
    df, _ = items
    table = pd.DataFrame({"path": list(df["path"]) + ["not/in/project.png"],
                          "embedding": [v.tolist() for v in vectors] + [vectors[0].tolist()]})
    table.to_parquet(tmp_path / "e.parquet")
    one_line_error(tmp_path / "e.parquet", items, "1 rows match no item .*misaligned.*not/in/project.png")


def test_items_without_a_row(tmp_path, items, vectors):
    df, _ = items
    table = pd.DataFrame({"path": df["path"].iloc[2:], "embedding": [v.tolist() for v in vectors[2:]]})
    table.to_parquet(tmp_path / "e.parquet")
    one_line_error(tmp_path / "e.parquet", items, "2 of .* items have no row")


def test_duplicate_rows(tmp_path, items, vectors):
    df, _ = items
    table = pd.DataFrame({"path": list(df["path"]) + [df["path"].iloc[0]],
                          "embedding": [v.tolist() for v in vectors] + [vectors[0].tolist()]})
    table.to_parquet(tmp_path / "e.parquet")
    one_line_error(tmp_path / "e.parquet", items, "has two rows")


def test_nan_values(tmp_path, items, vectors):
    bad = vectors.copy()
    bad[3, 1] = np.nan
    np.save(tmp_path / "e.npy", bad)
    one_line_error(tmp_path / "e.npy", items, "1 items have NaN or infinite values")


def test_rows_of_different_lengths(tmp_path, items, vectors):
    df, _ = items
    rows = [v.tolist() for v in vectors]
    rows[5] = rows[5][:4]
    pd.DataFrame({"path": df["path"], "embedding": rows}).to_parquet(tmp_path / "e.parquet")
    one_line_error(tmp_path / "e.parquet", items, "row 6 .* has 4 dimensions, the others 6")


def test_too_few_dimensions(tmp_path, items, vectors):
    np.save(tmp_path / "e.npy", vectors[:, :1])
    one_line_error(tmp_path / "e.npy", items, "1 dimension")


def test_table_without_path_or_embedding(tmp_path, items, vectors):
    pd.DataFrame({"file": ["a"], "x": [1.0]}).to_csv(tmp_path / "a.csv", index=False)
    one_line_error(tmp_path / "a.csv", items, "needs a 'path' column")
    df, _ = items
    pd.DataFrame({"path": df["path"], "x": 1.0, "note": "x"}).to_csv(tmp_path / "b.csv", index=False)
    one_line_error(tmp_path / "b.csv", items, "not numeric")


def test_unknown_format_and_missing_file(tmp_path, items):
    (tmp_path / "e.json").write_text("{}")
    one_line_error(tmp_path / "e.json", items, "use a .npy array")
    one_line_error(tmp_path / "nope.npy", items, "not found")


# ------------------------------------------------------------------------------ the CLI
def planted(n_items, labels, dim=8, seed=0):
    """Vectors that cluster by a rule unrelated to the images: item id parity. Maps and
    neighbours drawn from them must follow the parity, proving they were used."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(2, dim)) * 5
    return (centres[np.arange(n_items) % 2] + rng.normal(size=(n_items, dim))).astype(np.float32)


def test_analyze_uses_the_users_embeddings(copy_project, curator_cli, tmp_path):
    root = copy_project()
    with Project(root, readonly=True) as p:
        n = len(p)
        labels = p.items()["label"]
    np.save(tmp_path / "mine.npy", planted(n, labels))
    r = curator_cli("analyze", root, "-q", "--projection", "pca", "--embeddings", tmp_path / "mine.npy")
    assert r.returncode == 0, r.stderr
    with Project(root, readonly=True) as p:
        a = p.analysis
        assert a["user_embeddings"]["dim"] == 8
        assert a["label_features"] in ("user", "user+pixels") and a["map_space"] in ("user", "pixels", "user+pixels")
        nbrs = np.load(root / "arrays" / "neighbors.npy")
        readable = p.metrics()["readable"].to_numpy() == 1
    ids = np.flatnonzero(readable)
    first = nbrs[ids, 0]
    assert ((first % 2) == (ids % 2)).mean() > 0.95  # "show similar" follows the user's vectors
    again = curator_cli("analyze", root, "-q", "--projection", "pca", "--embeddings", tmp_path / "mine.npy")
    assert "up to date" in again.stdout  # same vectors: nothing to redo


def test_analyze_with_bad_embeddings_is_one_line(analyzed_project, curator_cli, tmp_path):
    np.save(tmp_path / "bad.npy", np.zeros((3, 4), np.float32))
    r = curator_cli("analyze", analyzed_project, "-q", "--embeddings", tmp_path / "bad.npy")
    assert r.returncode != 0 and r.stderr.strip().count("\n") == 0 and "rows but the project has" in r.stderr


def test_import_with_embeddings(digits_folder, curator_cli, tmp_path, items, vectors):
    df, _ = items
    table = pd.DataFrame({"path": df["location"], "embedding": [v.tolist() for v in vectors]})
    table.to_parquet(tmp_path / "e.parquet")
    r = curator_cli("import", digits_folder["root"], "--out", tmp_path / "p", "--embeddings", tmp_path / "e.parquet")
    assert r.returncode == 0, r.stderr
    assert "6-dimensional embeddings" in r.stdout
    assert np.allclose(np.load(tmp_path / "p" / "arrays" / "embeddings-user.npy"), vectors, atol=1e-6)
    bad = table.iloc[1:]
    bad.to_parquet(tmp_path / "bad.parquet")
    r = curator_cli("import", digits_folder["root"], "--out", tmp_path / "q", "--embeddings", tmp_path / "bad.parquet")
    assert r.returncode != 0 and r.stderr.strip().count("\n") == 0 and "have no row" in r.stderr
    assert not (tmp_path / "q").exists()  # no half-made project
