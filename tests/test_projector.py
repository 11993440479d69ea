"""The projector: map specs and their cache files, UMAP / t-SNE / PCA, the choice of feature
space by k-NN label agreement, analyze's precomputed maps and the digits target."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from curator import Project
from curator import projector as PJ
from curator.errors import CuratorError
from curator.neighbors import normalize


def clusters(n=300, dim=32, k=4, noise=0.4, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, dim))
    y = rng.integers(0, k, n)
    return normalize((centres[y] + noise * rng.normal(size=(n, dim))).astype(np.float32)), y


# ------------------------------------------------------------------------------ specs
def test_spec_keys_name_the_method_space_and_parameters():
    assert PJ.MapSpec().file_name == "projection-umap-cnn-n15-d0.1.npy"
    assert PJ.MapSpec(method="tsne", space="pixels", perplexity=50).file_name == "projection-tsne-pixels-p50.npy"
    assert PJ.MapSpec(method="pca", space="cnn+pixels", components=(2, 3)).key() == "pca-cnn+pixels-c2c3"
    # parameters of other methods do not split the cache
    assert PJ.MapSpec(method="tsne", n_neighbors=40).key() == PJ.MapSpec(method="tsne").key()


@pytest.mark.parametrize("kwargs, words", [
    ({"method": "isomap"}, "unknown projection"), ({"space": "clip"}, "unknown embedding"),
    ({"n_neighbors": 1}, "n_neighbors"), ({"min_dist": 2}, "min_dist"), ({"perplexity": 500}, "perplexity"),
    ({"components": (2, 2)}, "components"),
])
def test_bad_spec_is_one_line(kwargs, words):
    with pytest.raises(CuratorError, match=words) as exc:
        PJ.MapSpec(**kwargs)
    assert "\n" not in str(exc.value)


def test_parse_methods():
    assert PJ.parse_methods("umap, t-SNE,pca,umap") == ["umap", "tsne", "pca"]
    with pytest.raises(CuratorError, match="unknown projection 'mds'"):
        PJ.parse_methods("umap,mds")


# ------------------------------------------------------------------------------ algorithms
@pytest.mark.parametrize("method", ["umap", "tsne", "pca"])
def test_each_method_separates_clusters(method):
    x, y = clusters()
    coords = PJ.compute_map(PJ.MapSpec(method=method, perplexity=20), x)
    assert coords.shape == (len(x), 2) and coords.dtype == np.float32 and np.isfinite(coords).all()
    assert PJ.map_knn_accuracy(coords, y) > 0.9


def test_pca_components_are_the_chosen_ones():
    from sklearn.decomposition import PCA

    x, _ = clusters()
    full = PCA(n_components=3, random_state=42).fit_transform(x)
    coords = PJ.compute_map(PJ.MapSpec(method="pca", components=(3, 2)), x)
    assert np.allclose(np.abs(coords[:, 0]), np.abs(full[:, 2]), atol=1e-4)
    assert np.allclose(np.abs(coords[:, 1]), np.abs(full[:, 1]), atol=1e-4)


def test_umap_parameters_change_the_map():
    x, _ = clusters()
    a = PJ.compute_map(PJ.MapSpec(min_dist=0.0), x)
    b = PJ.compute_map(PJ.MapSpec(min_dist=0.9), x)
    spread = lambda c: float(np.median(np.linalg.norm(c - c.mean(0), axis=1)))  # noqa: E731
    assert not np.allclose(a, b) and spread(a) != spread(b)


def test_tsne_reports_progress():
    x, _ = clusters()
    seen = []
    PJ.compute_map(PJ.MapSpec(method="tsne", perplexity=20), x, progress=lambda f, t: seen.append((f, t)))
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0) and len(seen) > 5


# ------------------------------------------------------------------------------ choosing the space
def test_the_space_whose_neighbours_agree_with_labels_is_chosen():
    rng = np.random.default_rng(1)
    x, y = clusters(n=400, dim=48, k=5, noise=0.3)
    noise = rng.normal(size=(400, 64)).astype(np.float32)  # a "CNN" that ignores the classes
    thumbs = np.clip(128 + 100 * x[:, :48].reshape(400, 4, 4, 3), 0, 255).astype(np.uint8)
    spaces = PJ.FeatureSpaces(np.arange(400), cnn=noise, thumbs=thumbs)
    best, scores = PJ.choose_space(spaces, y)
    assert best in ("pixels", "cnn+pixels") and scores["cnn"] < 0.5 < scores[best]
    # no labels: no evidence, the embedding stays
    assert PJ.choose_space(spaces, np.full(400, -1)) == ("cnn", {})


# ------------------------------------------------------------------------------ cache
def test_cache_round_trip_and_stale_files(tmp_path):
    (tmp_path / "arrays").mkdir()
    spec = PJ.MapSpec(method="pca")
    coords = np.arange(20, dtype=np.float32).reshape(10, 2)
    assert PJ.save_map(tmp_path, spec, coords)
    assert np.array_equal(PJ.cached_map(tmp_path, spec, 10), coords)
    assert PJ.cached_map(tmp_path, spec, 11) is None  # another item count: stale
    (tmp_path / "arrays" / spec.file_name).write_bytes(b"garbage")
    assert PJ.cached_map(tmp_path, spec, 10) is None
    PJ.clear_cache(tmp_path)
    assert not list((tmp_path / "arrays").glob("projection-*"))


def test_unwritable_project_is_not_an_error(tmp_path):
    (tmp_path / "arrays").write_text("not a folder")  # as root, chmod would not stop the write
    assert PJ.save_map(tmp_path, PJ.MapSpec(), np.zeros((3, 2), np.float32)) is False


# ------------------------------------------------------------------------------ analyze
def test_analyze_records_the_chosen_space_and_caches_its_maps(analyzed_project):
    p = Project(analyzed_project, readonly=True)
    a = p.analysis
    assert a["map_space"] in ("cnn", "pixels", "cnn+pixels")
    assert a["map_space_agreement"][a["map_space"]] == max(a["map_space_agreement"].values())
    spec = PJ.MapSpec(method="pca", space=a["map_space"])
    assert np.array_equal(PJ.cached_map(p.root, spec, len(p)), p.projection(), equal_nan=True)


def test_cli_precomputes_every_listed_projection(copy_project, curator_cli):
    root = copy_project()
    r = curator_cli("analyze", root, "-q", "--projection", "pca,tsne,umap")
    assert r.returncode == 0, r.stderr
    a = json.loads((root / "curator.json").read_text())["analysis"]
    assert a["projections"] == ["pca", "tsne", "umap"] and a["projection"] == "pca"
    files = sorted(f.name for f in (root / "arrays").glob("projection-*.npy"))
    space = a["map_space"]
    assert files == sorted(PJ.MapSpec(method=m, space=space).file_name for m in ("pca", "tsne", "umap"))
    default = np.load(root / "arrays" / "projection.npy")
    assert np.array_equal(default, np.load(root / "arrays" / PJ.MapSpec(method="pca", space=space).file_name), equal_nan=True)
    # a new analysis drops maps of the old one
    r = curator_cli("analyze", root, "-q", "--projection", "pca")
    assert r.returncode == 0, r.stderr
    assert [f.name for f in (root / "arrays").glob("projection-*.npy")] == [PJ.MapSpec(method="pca", space=space).file_name]


def test_cli_refuses_an_unknown_projection(analyzed_project, curator_cli):
    r = curator_cli("analyze", analyzed_project, "--projection", "umap,mds")
    assert r.returncode != 0 and r.stderr.strip().count("\n") == 0 and "unknown projection 'mds'" in r.stderr


@pytest.mark.slow
def test_digits_default_map_separates_the_classes(digits_cli_project, curator_cli, tmp_path):
    """Issue #8's target: the default (UMAP) map of `curator download digits` has a 5-fold
    10-NN accuracy >= 0.95 (0.87 when drawn on the CNN embedding alone)."""
    root = tmp_path / "digits"
    shutil.copytree(digits_cli_project["project"], root)
    r = curator_cli("analyze", root, "-q")
    assert r.returncode == 0, r.stderr
    p = Project(root, readonly=True)
    index = {c: i for i, c in enumerate(p.classes)}
    y = p.items()["label"].map(index).to_numpy()
    assert p.analysis["map_space"] != "cnn"
    assert PJ.map_knn_accuracy(p.projection(), y) >= 0.95
