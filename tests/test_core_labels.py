"""The label check's feature space is chosen by measurement, and defective images are skipped."""

from __future__ import annotations

import numpy as np

from curator.checks.labels import LabelIssueCheck, choose_label_features
from curator.neighbors import knn, normalize


def blobs(n_per_class=40, classes=4, dim=16, spread=0.3, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, dim))
    x = np.concatenate([c + spread * rng.normal(size=(n_per_class, dim)) for c in centres])
    return normalize(x), np.repeat(np.arange(classes), n_per_class)


def test_choose_label_features_picks_the_space_that_carries_the_labels():
    informative, y = blobs()
    noise = normalize(np.random.default_rng(1).normal(size=informative.shape))
    name, features, idx, sim = choose_label_features({"noise": noise, "good": informative}, y)
    assert name == "good" and features is informative
    assert idx.shape == (len(y), 10) and np.isfinite(sim).all()
    name, *_ = choose_label_features({"good": informative, "noise": noise}, y)
    assert name == "good"


def test_flipped_labels_are_found_and_skipped_items_are_not_flagged():
    x, y = blobs(seed=2)
    given = y.copy()
    flipped = np.array([3, 50, 97, 140])
    given[flipped] = (y[flipped] + 1) % 4
    idx, sim = knn(x, 10, normalized=True)
    classes = ["a", "b", "c", "d"]
    ids = np.arange(len(y))
    found, proba = LabelIssueCheck().find(ids, x, given, classes, idx, sim)
    assert set(found["item_id"]) == set(flipped)
    assert list(found.sort_values("item_id")["suggested_label"]) == [classes[c] for c in y[np.sort(flipped)]]
    skip = np.zeros(len(y), bool)
    skip[flipped[:2]] = True  # e.g. flagged dark: its label is not questioned
    found, _ = LabelIssueCheck().find(ids, x, given, classes, idx, sim, skip)
    assert set(found["item_id"]) == set(flipped[2:])


def test_a_weak_model_must_earn_a_larger_margin():
    """Where the features barely predict the labels, disagreement is the model's error more
    often than the label's: the margin grows with the out-of-fold error rate, so far fewer
    items are flagged than at the plain margin; on separable classes it stays the plain one."""
    check = LabelIssueCheck()
    classes = ["a", "b", "c", "d"]
    x, y = blobs(seed=3)
    idx, sim = knn(x, 10, normalized=True)
    _, proba = check.find(np.arange(len(y)), x, y, classes, idx, sim)
    assert check.margin_needed(proba, y, np.ones(len(y), bool)) == check.min_margin
    x, y = blobs(seed=3, spread=2.5)  # heavily overlapping classes
    idx, sim = knn(x, 10, normalized=True)
    found, proba = check.find(np.arange(len(y)), x, y, classes, idx, sim)
    needed = check.margin_needed(proba, y, np.ones(len(y), bool))
    assert needed > check.min_margin + 0.1
    plain = LabelIssueCheck(error_scale=0.0).find(np.arange(len(y)), x, y, classes, idx, sim)[0]
    assert len(found) < len(plain) / 2
    per_class = check.margins_needed(proba, y, np.ones(len(y), bool))
    suggested = found["suggested_label"].map(classes.index).to_numpy()
    assert (found["score"].to_numpy() > per_class[suggested]).all()
    assert (per_class > check.min_margin).any()


def test_a_class_the_model_predicts_reliably_needs_a_smaller_margin():
    """Per suggested class: the share of the model's predictions of that class that disagree
    with the given label. Three classes the pictures separate and one mixed in with noise: a
    suggestion of a clean class clears a smaller margin than a suggestion of the confused one."""
    check = LabelIssueCheck()
    proba = np.array([[0.9, 0.05, 0.05]] * 30 + [[0.05, 0.9, 0.05]] * 30 + [[0.05, 0.05, 0.9]] * 30)
    labels = np.array([0] * 30 + [1] * 30 + [2] * 15 + [0] * 15)  # half of what looks like class 2 is labelled 0
    margins = check.margins_needed(proba, labels, np.ones(len(labels), bool))
    assert margins[1] == check.min_margin and margins[2] > 0.8
    assert check.margin_needed(proba, labels, np.ones(len(labels), bool)) < margins[2]
