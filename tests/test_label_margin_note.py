"""When the images barely predict the labels, the label check demands a larger margin and
flags few or none; analyze says so instead of a silent `label_issue 0` (Tux Paint's stamps
filed in 86 folders: 40% out-of-fold error, margin 0.80, nothing flagged)."""

from __future__ import annotations

import json

import numpy as np

from conftest import digit_images, write_class_folders

NOTE = "the images predict the given labels poorly"


def analyzed(curator_cli, tmp_path, labels, images):
    write_class_folders(tmp_path / "images", images, labels)
    assert curator_cli("import", tmp_path / "images", "--out", tmp_path / "p").returncode == 0
    res = curator_cli("analyze", tmp_path / "p", "-q", "--projection", "pca", "--workers", "0")
    assert res.returncode == 0, res.stderr
    return res, json.loads((tmp_path / "p" / "curator.json").read_text())["analysis"]


def test_unpredictable_labels_are_explained(curator_cli, tmp_path):
    images, _ = digit_images(per_class=12)
    shuffled = np.random.default_rng(0).integers(0, 10, len(images))  # labels unrelated to the pictures
    res, analysis = analyzed(curator_cli, tmp_path, shuffled, images)
    assert analysis["label_error"] > 0.5 and analysis["label_margin"] > 0.9
    assert NOTE in res.stderr and f"over {analysis['label_margin']:.2f}" in res.stderr
    again = curator_cli("analyze", tmp_path / "p", "-q", "--projection", "pca", "--workers", "0")
    assert NOTE in again.stderr  # an up-to-date re-run says it too


def test_predictable_labels_need_no_note(curator_cli, tmp_path):
    images, labels = digit_images(per_class=12)
    res, analysis = analyzed(curator_cli, tmp_path, labels, images)
    assert analysis["label_margin"] == 0.4 and analysis["label_error"] < 0.2
    assert NOTE not in res.stderr
