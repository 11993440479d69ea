"""Label errors and outliers from the embedding space.

``label_issue``: out-of-fold class probabilities (a cross-validated logistic regression on the
features, so no item is scored by a model that saw its own label) averaged with the label
distribution of its nearest neighbours. An item is flagged when another class is both the
most likely and more likely than the given label by ``min_margin`` (confident-learning
style); the suggested label is that class.

Items with an image-level defect (dark, bright, blurry, low information) are skipped: their
features describe the defect more than the content, so a wrong-looking label there is the
defect reported twice. They neither train the classifier nor get flagged.

``outlier``: mean cosine distance to the 11th-30th nearest neighbours, flagged far beyond the
dataset's typical value (robust z-score). Items with an image-level defect are not reported
again as outliers (a heavily blurred or darkened image sits far from everything: the defect is
the finding), but they still count in the robust statistics.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .base import Finding, empty_findings


def out_of_fold_proba(x: np.ndarray, y: np.ndarray, n_classes: int, folds: int = 5, seed: int = 0,
                      strength: float = 4.0, fit_limit: int | None = None, chunk: int = 20_000) -> np.ndarray:
    """(N, C) probabilities, each row from a model trained on the other folds. ``strength`` is
    the inverse regularisation C: 4 beat 1 and 16 on the quality suite (unit-norm features).

    Beyond ``fit_limit`` items the folds are drawn from a class-stratified sample of that size
    (:func:`stratified_sample`): its items get out-of-fold probabilities as above, every other
    item the mean of the fold models (none of which saw it), predicted ``chunk`` rows at a
    time, so time and memory grow linearly with N instead of with the size of the fit."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    n = len(y)
    sampled = fit_limit is not None and n > fit_limit
    sample = stratified_sample(y, fit_limit, seed) if sampled else np.arange(n)
    xs, ys = (x[sample], y[sample]) if sampled else (x, y)
    rest = np.setdiff1d(np.arange(n), sample) if sampled else np.zeros(0, dtype=np.int64)
    proba = np.zeros((n, n_classes), dtype=np.float64)
    counts = np.bincount(ys, minlength=n_classes)
    folds = int(max(2, min(folds, counts[counts > 0].min())))
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for train, test in splitter.split(xs, ys):
        clf = LogisticRegression(C=strength, max_iter=300, tol=1e-3)
        clf.fit(xs[train], ys[train])
        proba[np.ix_(sample[test], clf.classes_)] = clf.predict_proba(xs[test])
        for a in range(0, len(rest), chunk):
            part = rest[a : a + chunk]
            proba[np.ix_(part, clf.classes_)] += clf.predict_proba(x[part]) / folds
    return proba


def stratified_sample(y: np.ndarray, size: int, seed: int = 0, floor: int = 50) -> np.ndarray:
    """Sorted row numbers of about ``size`` items, each class in proportion to its count but
    with at least ``floor`` items (all of a smaller class), so rare classes still train."""
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(y, return_counts=True)
    picked = []
    for c, count in zip(classes, counts):
        take = min(count, max(floor, int(np.ceil(size * count / len(y)))))
        picked.append(rng.choice(np.flatnonzero(y == c), size=take, replace=False))
    return np.sort(np.concatenate(picked))


def neighbour_label_proba(nbr_idx: np.ndarray, nbr_sim: np.ndarray, y: np.ndarray, n_classes: int) -> np.ndarray:
    """Similarity-weighted label histogram of each item's neighbours (self excluded)."""
    valid = (nbr_idx >= 0) & (y[np.clip(nbr_idx, 0, None)] >= 0)
    weights = np.where(valid, np.clip(nbr_sim, 0.0, None) + 1e-6, 0.0)
    proba = np.zeros((len(nbr_idx), n_classes), dtype=np.float64)
    rows = np.repeat(np.arange(len(nbr_idx)), nbr_idx.shape[1])
    labels = y[np.clip(nbr_idx, 0, None)].ravel()
    np.add.at(proba, (rows[valid.ravel()], labels[valid.ravel()]), weights.ravel()[valid.ravel()])
    total = proba.sum(axis=1, keepdims=True)
    return np.where(total > 0, proba / np.maximum(total, 1e-12), 1.0 / n_classes)


def choose_label_features(spaces: dict, labels: np.ndarray, k: int = 10):
    """The feature space whose nearest neighbours agree most often with the given labels
    (leave-one-out, similarity-weighted vote over ``k`` neighbours, labelled items only).
    Returns (name, features, neighbour indices, neighbour similarities)."""
    from ..neighbors import knn

    n = len(labels)
    if n < 2:
        name, features = next(iter(spaces.items()))
        return name, features, np.full((n, 1), -1), np.full((n, 1), -np.inf)
    known = labels >= 0
    n_classes = int(labels.max()) + 1 if known.any() else 1
    best = None
    for name, features in spaces.items():
        idx, sim = knn(features, min(k, n - 1), normalized=True)
        vote = neighbour_label_proba(idx, sim, labels, n_classes).argmax(axis=1)
        agreement = float((vote == labels)[known].mean()) if known.any() else 0.0
        if best is None or agreement > best[0]:
            best = (agreement, name, features, idx, sim)
    return best[1:]


@dataclass
class LabelIssueCheck:
    """``label_issue`` with ``suggested_label``. Score: p(suggested) - p(given), in (0, 1];
    flagged when above the margin the model has earned, ``min_margin`` or ``error_scale`` x
    its out-of-fold error rate, whichever is larger; severe when > ``severe_margin``.

    Why the error rate: where the images barely predict the labels (icons filed by the folder
    of their theme: 32% of out-of-fold predictions disagree with the given label), a model
    that is wrong that often disagrees with a correct label by 0.4 all the time; at a margin of
    0.4 the quality suite's icons got 131 flags of which 26% were planted errors and 88 clean
    icons flagged (10%). On sources whose labels the model predicts (error <= 20%) the margin
    stays 0.4.

    The error rate is taken per suggested class (:meth:`margins_needed`): the share of the
    model's out-of-fold predictions of that class that disagree with the given label, shrunk
    toward the overall rate by ``class_prior`` predictions. A class the model predicts
    reliably (Open Clip Art's buildings or plants, beside its "special" and "unsorted" folders)
    needs a smaller margin to be suggested than a class it confuses; on 18 stored quality projects
    label F1 rose on icons (.38 -> .40), icons-128 (.45 -> .47), Open Clip Art (.09 / .06 /
    .03 -> .11 / .08 / .24) and was the same within .01 elsewhere."""

    name = "label_issue"
    knn_weight: float = 0.3
    min_margin: float = 0.4
    error_scale: float = 2.0
    class_prior: float = 5.0
    severe_margin: float = 0.8
    folds: int = 5
    fit_limit: int = 20_000  # the classifier is fitted on a stratified sample of this size beyond it

    @staticmethod
    def out_of_fold_error(proba: np.ndarray, labels: np.ndarray, known: np.ndarray) -> float:
        """Share of the ``known`` items whose most likely class is not their given label."""
        return float((proba[known].argmax(axis=1) != labels[known]).mean())

    def margin_needed(self, proba: np.ndarray, labels: np.ndarray, known: np.ndarray) -> float:
        """The flagging margin for these out-of-fold probabilities (see the class docstring)."""
        if not known.any():
            return self.min_margin
        return max(self.min_margin, self.error_scale * self.out_of_fold_error(proba, labels, known))

    def margins_needed(self, proba: np.ndarray, labels: np.ndarray, known: np.ndarray) -> np.ndarray:
        """(C,) the margin a suggestion of each class must clear: ``min_margin``, or
        ``error_scale`` x the share of the ``known`` items the model predicts as that class
        whose given label is another, counted with ``class_prior`` pseudo-predictions at the
        overall error rate, whichever is larger."""
        n_classes = proba.shape[1]
        if not known.any():
            return np.full(n_classes, self.min_margin)
        predicted = proba[known].argmax(axis=1)
        wrong = np.bincount(predicted, weights=(predicted != labels[known]).astype(float), minlength=n_classes)
        count = np.bincount(predicted, minlength=n_classes)
        error = (wrong + self.class_prior * self.out_of_fold_error(proba, labels, known)) / (count + self.class_prior)
        return np.maximum(self.min_margin, self.error_scale * error)

    def probabilities(self, features, labels, nbr_idx, nbr_sim, classes, skip=None):
        y = labels
        n_classes = len(classes)
        known = (y >= 0) if skip is None else (y >= 0) & ~skip
        p_clf = np.full((len(y), n_classes), 1.0 / n_classes)
        trainable = known & np.isin(y, np.flatnonzero(np.bincount(y[known], minlength=n_classes) >= 2))
        if trainable.sum() >= 4 and len(np.unique(y[trainable])) >= 2:
            p_clf[trainable] = out_of_fold_proba(features[trainable], y[trainable], n_classes, self.folds,
                                                 fit_limit=self.fit_limit)
        p_knn = neighbour_label_proba(nbr_idx, nbr_sim, np.where(known, y, -1), n_classes)
        return (1 - self.knn_weight) * p_clf + self.knn_weight * p_knn

    def find(self, item_ids, features, labels, classes, nbr_idx, nbr_sim, skip=None) -> tuple[pd.DataFrame, np.ndarray]:
        """item_ids/labels aligned with features rows; labels are class indices (-1 = none);
        ``skip``: boolean mask of items with an image-level defect (not trained on, not flagged).
        Returns the findings and the (N, C) combined probabilities."""
        if len(classes) < 2:
            return empty_findings(), np.zeros((len(labels), len(classes)))
        proba = self.probabilities(features, labels, nbr_idx, nbr_sim, classes, skip)
        known = (labels >= 0) if skip is None else (labels >= 0) & ~np.asarray(skip, dtype=bool)
        given = np.where(known, proba[np.arange(len(labels)), np.clip(labels, 0, None)], 1.0)
        other = proba.copy()
        other[np.arange(len(labels))[known], labels[known]] = -1.0
        best = other.argmax(axis=1)
        margin = other[np.arange(len(labels)), best] - given
        flag = known & (margin > self.margins_needed(proba, labels, known)[best])
        return (
            Finding(
                self.name,
                np.asarray(item_ids)[flag],
                margin[flag],
                margin[flag] > self.severe_margin,
                suggested=[classes[c] for c in best[flag]],
            ),
            proba,
        )


def lowest_in_group(values: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Each value replaced by the lowest of its group (``group`` < 0: on its own)."""
    out = values.copy()
    grouped = group >= 0
    if grouped.any():
        frame = pd.DataFrame({"g": group[grouped], "v": values[grouped]})
        out[grouped] = frame.groupby("g")["v"].transform("min").to_numpy()
    return out


@dataclass
class OutlierCheck:
    """``outlier``: mean cosine distance to the neighbours ranked ``skip_nearest`` + 1 to 30 (in
    the full embedding space) more than ``z`` robust standard deviations above the median
    (severe beyond ``severe_z``). Score: that z-score. Skipping the nearest ten means a few
    odd images that resemble each other (crops of one photo, a batch of scans) do not vouch for
    each other. A copy (exact or near duplicate) takes the lowest z of its group: a noisy or
    re-encoded copy of a typical image is typical, its odd embedding comes from the noise (noisy
    28 px glyph copies scored z 6.6-8.9), while copies of a foreign image stay foreign.

    An image with an image-level defect (dark, blurry, ...) is not reported again where its
    defect explains its odd embedding: blurred or darkened glyphs reached z 14.3. It is where
    its picture is foreign too: seen coarsely and without its brightness (the pixel-thumbnail
    neighbours, ``pixel_sim``, whose distance a blur or a tone change hardly moves), it is
    among the ``pixel_percentile`` most isolated and above ``pixel_z``. On the quality suite a
    photo shrunk into 8x8 digits, blurry as a digit, scored pixel z 3.7-5.4 against 2.8 at most
    for the planted blurred and darkened digits (threshold: the 99th percentile, 3.3 there):
    outlier recall on digits .4 -> .8, glyphs .9 -> 1, MNIST .9 -> 1, no other finding changed
    on 16 stored projects (Wesnoth's sprites: the upscaled foreign images are not foreign at
    16 px, pixel z -2.7 to 1.0, and stay `blurry` only).

    Two views that agree are enough, defect or not: an image more than ``both_z`` robust sigma
    out in the embedding *and* in ``pixel_sim`` is an outlier below ``z`` too. Photos shrunk
    into 8x8 digits (blurry) scored embedding z 4.5-6.5 with pixel z above 4, where a clean
    image far out in one view is typical in the other (clean maximum of the lower of the two:
    3.2 on digits, 2.5 on MNIST, 1.6 on tiny colour crops): outlier recall on digits, seeds
    0-2, .8/.8/.9 -> .9/1/1 at precision 1, nothing else changed on 13 sources."""

    name = "outlier"
    skip_nearest: int = 10
    z: float = 6.5
    severe_z: float = 12.0
    pixel_percentile: float = 99.0
    pixel_z: float = 2.0
    both_z: float = 4.0

    def find(self, item_ids, nbr_sim, skip=None, copy_group=None, pixel_sim=None) -> pd.DataFrame:
        """``skip``: boolean mask of items with an image-level defect (scored, flagged only when
        also foreign in ``pixel_sim``, see below); ``copy_group``: each item's duplicate group
        number (-1: none)."""
        if len(item_ids) < 2 * self.skip_nearest:
            return empty_findings()
        zscore = self.zscores(nbr_sim, self.skip_nearest)
        pixel_z = None
        if pixel_sim is not None:
            pixel_z = self.zscores(pixel_sim, pixel_sim.shape[1] // 3)
        if copy_group is not None:
            zscore = lowest_in_group(zscore, np.asarray(copy_group))
            pixel_z = None if pixel_z is None else lowest_in_group(pixel_z, np.asarray(copy_group))
        flag = zscore > self.z
        if skip is not None:
            skip = np.asarray(skip, dtype=bool)
            if pixel_z is not None:  # a defect explains an odd embedding, not an odd picture
                foreign = pixel_z > max(float(np.nanpercentile(pixel_z, self.pixel_percentile)), self.pixel_z)
                skip = skip & ~foreign
            flag &= ~skip
        if pixel_z is not None:  # far out in both views
            flag |= np.minimum(zscore, pixel_z) > self.both_z
        return Finding(self.name, np.asarray(item_ids)[flag], zscore[flag], zscore[flag] > self.severe_z)

    @staticmethod
    def zscores(nbr_sim: np.ndarray, skip_nearest: int) -> np.ndarray:
        """Robust z-score of the mean cosine distance to the neighbours ranked past
        ``skip_nearest``."""
        sims = np.where(np.isfinite(nbr_sim), nbr_sim, np.nan)[:, skip_nearest:]
        dist = 1.0 - np.nanmean(sims, axis=1)
        med = np.nanmedian(dist)
        sigma = max(1.4826 * np.nanmedian(np.abs(dist - med)), 1e-6)
        return (dist - med) / sigma


def label_margin_note(analysis: dict) -> str | None:
    """Why few (or no) labels were flagged, where the images barely predict the given labels:
    the label check then demands a larger margin (LabelIssueCheck). None where it used its
    usual margin."""
    margin, error = analysis.get("label_margin"), analysis.get("label_error")
    if margin is None or error is None or margin <= LabelIssueCheck.min_margin:
        return None
    flagged = int((analysis.get("issues") or {}).get("label_issue", 0))
    return (f"label check: the images predict the given labels poorly ({error:.0%} of held-out predictions "
            f"disagree), so a label is flagged only where another class is more likely by over {margin:.2f} "
            f"on average (usually {LabelIssueCheck.min_margin:.2f}; less for a class the model predicts "
            f"reliably): {flagged} flagged")
