"""Image-level checks on per-image metrics.

Each rule combines a dataset-relative test (ratio to the dataset median, which still works
when most images are identical, as on MNIST where the interquartile range is zero) with an
absolute guard, so that a uniformly dark dataset (MNIST: black background) is not flagged
wholesale and a bright photo is not flagged because the rest of the set is dark.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .base import Finding, flagged_items


def _median(values: pd.Series) -> float:
    values = values.dropna()
    return float(values.median()) if len(values) else float("nan")


def class_medians(values, labels, min_size: int = 5) -> np.ndarray:
    """Per image, the median of ``values`` over its class (labels: any hashable, None/NaN = no
    label), counting only finite values; NaN for unlabelled images and classes with fewer than
    ``min_size`` such values."""
    frame = pd.DataFrame({"v": np.asarray(values, dtype=float), "label": labels})
    kept = frame[frame["v"].notna() & frame["label"].notna()]
    sizes = kept.groupby("label")["v"].transform("size")
    medians = kept[sizes >= min_size].groupby("label")["v"].median()
    return frame["label"].map(medians).to_numpy(dtype=float)


def _lower_reference(values: np.ndarray, m: pd.DataFrame) -> np.ndarray:
    """Per image, the lower of the dataset's median of ``values`` and its class's median
    (:func:`class_medians`; the dataset's alone without labels): an image must stand out from
    both to count as darker or lighter than usual, so a class of thin strokes or of night
    scenes is judged against itself too."""
    values = np.asarray(values, dtype=float)
    overall = np.full(len(values), max(float(np.nanmedian(values)), 1e-6))
    if "label" not in m or m["label"].isna().all():
        return overall
    return np.fmin(overall, np.maximum(class_medians(values, m["label"].to_numpy()), 1e-6))


@dataclass
class ImageCheck:
    """Base: subclasses define ``name`` and ``score_and_flags(metrics) -> (score, flag, severe)``."""

    name = "base"

    def find(self, metrics: pd.DataFrame) -> pd.DataFrame:
        readable = metrics[metrics["readable"] == 1]
        if readable.empty:
            return Finding(self.name, [], [], [])
        score, flag, severe = self.score_and_flags(readable)
        flag = np.asarray(flag, dtype=bool)
        return Finding(
            self.name,
            readable["item_id"].to_numpy()[flag],
            np.asarray(score)[flag],
            np.asarray(severe, dtype=bool)[flag],
        )


@dataclass
class UnreadableCheck:
    """``unreadable``: the file is missing, empty, truncated or not an image. Score 1, severe."""

    name = "unreadable"

    def find(self, metrics: pd.DataFrame) -> pd.DataFrame:
        bad = metrics[metrics["readable"] == 0]
        return Finding(self.name, bad["item_id"], np.ones(len(bad)), np.ones(len(bad), bool))


@dataclass
class DarkCheck(ImageCheck):
    """``dark``: the brightest 1% of pixels (``brightness_high``, the 99th percentile of luminance
    in [0, 1]) is far below the dataset's typical value, and so is the mean luminance.

    Flagged when brightness_high < ``ratio`` x dataset median AND < ``absolute_max`` AND the
    mean brightness < ``mean_ratio`` x the lower of the dataset's and its class's median mean
    (a blurred thin stroke is dim next to bold ones, not next to its own class), or when brightness_high is
    below ``always_below`` whatever the dataset (a practically black image; not a transparent
    picture whose silhouette shows on the grey: symbolic icons are painted black). The 99th
    percentile keeps MNIST-style images (black background, white strokes) clean; the mean
    keeps blurred ones clean (blur lowers the peaks, but not the mean, while darkening lowers
    both). On an image also flagged ``blurry`` the mean must be below ``blurred_mean_ratio``
    x that reference (:func:`run_image_checks`). A transparent picture in one flat black paint
    (black letters, line art: :func:`_flat_paint`) is never dark, nor one in dark grey ink
    (no hue, below ``absolute_max``: Open Clip Art's arrows and signs; a flat paint of a dark
    colour is judged, and a mid-grey paint darkened would be missed). The relative rule also needs
    the colours to be dim: ``max_channel_high`` (the 99th percentile of each pixel's largest
    channel) below ``ratio`` x its median and ``absolute_max``, since a saturated blue or red
    is dim in luminance (0.11, 0.30) but not dark (on Open Clip Art's drawings that took the
    precision of ``dark`` from .35 to .63 at recall 1). A nearly fully transparent image whose
    shape does not show is not judged (its tone is that of pixels nobody sees;
    ``low_information`` reports it). Score: 1 - brightness_high / median. Severe below
    ``severe_ratio`` x median.
    """

    name = "dark"
    ratio: float = 0.35
    absolute_max: float = 0.35
    mean_ratio: float = 0.6
    blurred_mean_ratio: float = 0.3
    always_below: float = 0.06
    severe_ratio: float = 0.25

    def tone_shift(self, m) -> np.ndarray:
        """Mean luminance over the lower of its dataset's and class's medians."""
        mean = m["brightness"].to_numpy()
        return mean / _lower_reference(mean, m)

    def score_and_flags(self, m):
        v = m["brightness_high"].to_numpy()
        typical = _median(m["brightness_high"])
        ref = max(typical, 1e-6)
        # where the typical image is itself practically black (symbolic icons painted black),
        # nothing is darker than usual: only the absolute rule speaks
        relative = typical >= self.always_below
        dim = self.tone_shift(m) < self.mean_ratio
        score = np.clip(1.0 - v / ref, 0.0, 1.0)
        # a saturated blue or red is dim in luminance (0.11, 0.30) but far from black
        colours_dim = _far_below_typical(m, "max_channel_high", self.ratio, self.absolute_max)
        black = (v < self.always_below) & ~_silhouette(m)
        # black or dark grey ink (a flat paint with no hue: its largest channel is its luminance)
        black_paint = _flat_paint(m) & ((v < self.always_below) | (_hueless(m) & (v < self.absolute_max)))
        flag = (((v < self.ratio * ref) & (v < self.absolute_max) & dim & colours_dim & relative) | black) & ~black_paint
        flag &= ~_invisible(m)
        severe = flag & ((v < self.severe_ratio * ref) | black)
        return score, flag, severe


@dataclass
class BrightCheck(ImageCheck):
    """``bright``: even the darkest 1% of pixels are close to white, and the whole image is
    lighter than usual.

    Works on headroom = 1 - brightness_low (brightness_low = 1st percentile of luminance, so
    the outline and details of a light icon or document keep it off the list):
    flagged when headroom < ``ratio`` x dataset median headroom AND < ``absolute_max`` AND
    the mean headroom (1 - mean brightness) < ``mean_ratio`` x the lower of its dataset and
    class medians (blur
    raises the 1st percentile of a dark-background image, not its mean), or when headroom <
    ``always_below`` (a practically white image, unless a transparent picture whose silhouette
    shows); on an image also flagged ``blurry``, the
    mean headroom must be below ``blurred_mean_ratio`` x that reference
    (:func:`run_image_checks`). A transparent picture in one flat white paint
    (:func:`_flat_paint`) is never bright. The relative rule also needs the colours to be
    pale: 1 - ``min_channel_low`` (the 1st percentile of each pixel's smallest channel) below
    ``ratio`` x its median and ``absolute_max`` (a saturated yellow is light in luminance,
    0.89, but far from white); a nearly invisible image is not judged, as for ``dark``.
    Score: 1 - headroom / median.
    """

    name = "bright"
    ratio: float = 0.35
    absolute_max: float = 0.35
    mean_ratio: float = 0.6
    blurred_mean_ratio: float = 0.3
    always_below: float = 0.04
    severe_ratio: float = 0.25

    def tone_shift(self, m) -> np.ndarray:
        """Mean headroom (1 - mean luminance) over the lower of its dataset's and class's medians."""
        mean_headroom = 1.0 - m["brightness"].to_numpy()
        return mean_headroom / _lower_reference(mean_headroom, m)

    def score_and_flags(self, m):
        headroom = 1.0 - m["brightness_low"].to_numpy()
        typical = float(np.nanmedian(headroom))
        ref = max(typical, 1e-6)
        relative = typical >= self.always_below  # (as for dark: white-painted symbolic icons)
        light = self.tone_shift(m) < self.mean_ratio
        score = np.clip(1.0 - headroom / ref, 0.0, 1.0)
        # a saturated yellow is light in luminance (0.89) but far from white
        colours_pale = _far_below_typical(m, "min_channel_low", self.ratio, self.absolute_max, flip=True)
        white = (headroom < self.always_below) & ~_silhouette(m)
        white_paint = _flat_paint(m) & (headroom < self.always_below)
        flag = (((headroom < self.ratio * ref) & (headroom < self.absolute_max) & light & colours_pale & relative) | white) & ~white_paint
        flag &= ~_invisible(m)
        severe = flag & ((headroom < self.severe_ratio * ref) | white)
        return score, flag, severe


@dataclass
class BlurryCheck(ImageCheck):
    """``blurry``: edge energy (``sharpness``: std of the Laplacian / std of the image, so
    darkening or brightening does not change it) well below what similar images have, and
    the finest scale missing (``fine_detail``: Laplacian energy at full over half resolution).

    Natural sharpness varies a lot with content (thick vs thin strokes, close-ups vs
    landscapes), so the reference is local when available: the lower of the median sharpness
    of the image's nearest neighbours in thumbnail space and the median sharpness of its class
    (column ``sharpness_reference``, see :meth:`local_reference` and :meth:`class_reference`;
    the dataset median where neither exists). The lower of the two, so that an image of a
    naturally soft class (retina scans, sky) is not called blurry because it resembles sharp
    images of other classes, nor a soft crop of a sharp class because its look-alikes are
    sharp. Flagged
    when sharpness < ``local_ratio`` x that reference AND < ``global_ratio`` x the dataset
    median, or < ``neighbour_floor`` x the dataset median whatever the reference (strongly
    blurred; without a local reference, < ``fallback_ratio`` x the dataset median).

    The finest scale (images of at least 24 px) then decides where it can: fine_detail runs
    from about 0.25 for content much smoother than a pixel, as in upscaled images, where it
    says nothing, to 1-2 for pixel-level detail. Where the dataset's median fine_detail is at
    least ``detail_floor`` (it has pixel-level detail to lose), an image that keeps
    ``detail_ratio`` x that median is crisp and not flagged whatever its sharpness (clean
    graphics with large flat areas, soft but grainy photo crops; a strongly blurred one must
    also keep ``detail_floor``: JPEG noise alone gives 0.41), and one with less than
    ``lost_detail_ratio`` x the lower of that median and its class's is blurry whatever its
    sharpness (a blurred crop of a low-contrast wall whose neighbours are as soft). Where the median is lower, only
    fine_detail >= ``detail_floor`` exempts (crisp edges among upscaled images). On the
    quality suite (3 seeds) that took blurry photo crops from P/R .49/.74 to 1/.78 and icons
    .90/.97 to 1/.98, tiny colour crops .47/.44 to .48/.56; the mid-size sources, never used
    to choose them: see the README.

    Near-constant images (contrast < ``min_contrast``) are left to ``low_information``.
    Score: 1 - sharpness / reference (or 1 - fine_detail / its median, if larger, for an
    image flagged by its lost detail).
    """

    name = "blurry"
    local_ratio: float = 0.5
    global_ratio: float = 0.5
    fallback_ratio: float = 0.5
    detail_ratio: float = 0.6
    lost_detail_ratio: float = 0.5
    detail_floor: float = 0.45
    neighbour_floor: float = 0.15
    min_contrast: float = 0.02
    severe_ratio: float = 0.5

    def local_reference(self, sharpness: np.ndarray, neighbour_ids: np.ndarray) -> np.ndarray:
        """Median sharpness of each image's neighbours (rows of item ids, -1 = none), leaving
        out neighbours that are themselves below ``neighbour_floor`` x the dataset median:
        strongly blurred images resemble each other and must not vouch for each other, while
        naturally soft ones (a class of smooth medical images, say) still do. NaN where none
        is left."""
        valid = neighbour_ids >= 0
        values = np.where(valid, sharpness[np.clip(neighbour_ids, 0, None)], np.nan)
        floor = self.neighbour_floor * np.nanmedian(sharpness)
        values = np.where(values >= floor, values, np.nan)
        with warnings.catch_warnings():  # rows with no qualifying neighbour give NaN, as meant
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanmedian(values, axis=1)

    def class_reference(self, sharpness: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """Median sharpness of each image's class (labels: any hashable, None/NaN = no label),
        leaving out images below ``neighbour_floor`` x the dataset median as
        :meth:`local_reference` does; NaN for unlabelled images and classes with fewer than
        five measured images."""
        sharpness = np.asarray(sharpness, dtype=float)
        floor = self.neighbour_floor * np.nanmedian(sharpness)
        return class_medians(np.where(sharpness >= floor, sharpness, np.nan), labels)

    def lost_native_detail(self, m) -> tuple[np.ndarray, np.ndarray]:
        """(lost, score): images well above the metrics' copy (``imaging.NATIVE_ABOVE_SIDE``)
        whose finest scale at their own resolution (``native_detail``) is below
        ``lost_detail_ratio`` x the lower of the dataset's and their class's median of it,
        where that median is at least ``detail_floor``, and 1 - native_detail / that median.
        A blur of 1-2.5 px of a 1,000 px drawing is a quarter of a pixel on the 256 px copy,
        where its sharpness and fine_detail hardly move. Only ever adds a finding: JPEG's noise
        keeps the native fine detail of a strongly blurred photo high (that one the sharpness
        finds)."""
        none = np.zeros(len(m), dtype=bool), np.zeros(len(m))
        if "native_detail" not in m or m["native_detail"].notna().sum() < 5:
            return none
        if _median(m["native_detail"]) < self.detail_floor:
            return none
        native = m["native_detail"].to_numpy(dtype=float)
        own = _lower_reference(native, m)
        measured = np.nan_to_num(native, nan=np.inf)  # unmeasured: never lost
        return measured < self.lost_detail_ratio * own, np.clip(1.0 - measured / own, 0.0, 1.0)

    def score_and_flags(self, m):
        s = m["sharpness"].to_numpy()
        median = max(_median(m["sharpness"]), 1e-6)
        textured = _shown(m, "contrast") >= self.min_contrast
        # below neighbour_floor x the dataset median an image is strongly blurred whatever its
        # look-alikes (bold 28 px glyphs are soft, so a blurred "8" among them kept 0.56-0.79
        # of its reference at 0.11-0.14 of the dataset's median)
        strong = s < self.neighbour_floor * median
        if "sharpness_reference" in m and m["sharpness_reference"].notna().any():
            ref = np.maximum(m["sharpness_reference"].fillna(median).to_numpy(), 1e-6)
            flag = ((s < self.local_ratio * ref) & (s < self.global_ratio * median)) | strong
        else:
            ref = np.full(len(s), median)
            flag = s < self.fallback_ratio * median
        score = np.clip(1.0 - s / ref, 0.0, 1.0)
        if "fine_detail" in m and m["fine_detail"].notna().any():
            detail = m["fine_detail"].to_numpy(dtype=float)
            typical = _median(m["fine_detail"])
            if typical >= self.detail_floor:  # the dataset has pixel-level detail to lose
                # a strongly blurred image must keep detail_floor too: JPEG's own noise gives a
                # photo blurred by 4 px a fine_detail of 0.41
                needed = np.where(strong, max(self.detail_ratio * typical, self.detail_floor), self.detail_ratio * typical)
                crisp = np.nan_to_num(detail, nan=-np.inf) >= needed
                # lost against the lower of the dataset's and its class's median, as the tone
                # checks do: a class of soft scans keeps its own typical detail
                own = _lower_reference(detail, m)
                lost = np.nan_to_num(detail, nan=np.inf) < self.lost_detail_ratio * own
                flag = (flag & ~crisp) | lost
                score = np.where(lost, np.maximum(score, np.clip(1.0 - detail / own, 0.0, 1.0)), score)
            else:  # smooth (upscaled) content: the finest scale says nothing but for crisp graphics
                flag &= ~(np.nan_to_num(detail, nan=-np.inf) >= self.detail_floor)
        lost_native, native_score = self.lost_native_detail(m)
        flag |= lost_native
        score = np.where(lost_native, np.maximum(score, native_score), score)
        flag = textured & flag
        return score, flag, flag & (s < self.severe_ratio * ref)


@dataclass
class LowInformationCheck(ImageCheck):
    """``low_information``: almost nothing to see. Grey-level entropy below ``ratio`` x the
    dataset median with contrast (std of luminance) below ``contrast_ratio`` x its median,
    and the contrast of the colours (``colour_contrast``) below the same ratio of its median
    (Open Clip Art's blue stick figures and red-on-blue flags differ little in luminance from
    what surrounds them: 8 of its 44 clean `low_information` flags of seed 0);
    entropy below ``sparse_ratio`` x the median whatever the contrast (a black frame with a
    bright timestamp, a two-tone test card among photos); both contrasts below
    ``min_contrast`` (a flat image); or ``opacity`` (mean alpha) below ``min_opacity`` (a nearly fully
    transparent image). Sparse content on a plain background (a thin handwritten "1", line-art
    icons) has low entropy but full contrast: it is content, not its absence. A transparent
    picture is judged by the larger of its inside's and its silhouette's entropy and contrast
    (:func:`_shown`): a one-colour symbolic icon is flat inside, and its shape is its content.
    Where its shape shows on the grey (:func:`_silhouette`) neither the sparse rule applies (a
    black letter or a minus sign on transparency has 0.6-1.1 bits of entropy at full contrast:
    clip art, not a blank frame) nor the faint one (Open Clip Art's blue stick figures cover a
    tenth of their canvas, so their colours spread over it differ little: colour contrast
    0.10-0.12 against a median of 0.24); only a blank or nearly invisible one is flagged. The
    gap this leaves: a picture faded into near-transparency whose shape still shows (mean
    opacity above ``min_opacity``) is not reported.
    Score: 1 - entropy / median entropy (1 for flat or transparent images).

    Darkening or brightening squeezes the grey levels together and so lowers the entropy: an
    image flagged ``dark`` or ``bright`` (whose contrast shrinks with its tone too) is not
    reported again (the tone is the finding; :func:`run_image_checks`) unless it is
    :meth:`constant` or transparent."""

    name = "low_information"
    ratio: float = 0.35
    contrast_ratio: float = 0.5
    sparse_ratio: float = 0.2
    min_contrast: float = 0.02
    min_opacity: float = 0.02
    severe_ratio: float = 0.15

    def score_and_flags(self, m):
        e = _shown(m, "entropy")
        ref = max(float(np.nanmedian(e)), 1e-6)
        contrast = _shown(m, "contrast")
        # a drawing in one flat paint whose lines show is neither faint nor nearly transparent
        # however thin its lines (a map's outline covers 1% of its canvas): its low contrast, the
        # spread of grey levels over the canvas, comes from how little it covers, not its tone
        drawing = _flat_paint(m)
        colours = _colour_contrast(m)
        blank = ((contrast < self.min_contrast) & (colours < self.min_contrast)) | ((_opacity(m) < self.min_opacity) & ~drawing)
        score = np.where(blank, 1.0, np.clip(1.0 - e / ref, 0.0, 1.0))
        # faint in grey levels and in colour: a blue figure on the grey, or red on blue, has
        # little luminance contrast but its colours stand apart
        # a transparent picture whose shape shows on the grey is content however little of its
        # canvas it covers (the spread of its colours over the canvas shrinks with the coverage)
        shape = _silhouette(m)
        faint = (contrast < self.contrast_ratio * max(float(np.nanmedian(contrast)), 1e-6)) & ~drawing & ~shape
        faint &= colours < self.contrast_ratio * max(float(np.nanmedian(colours)), 1e-6)
        sparse = (e < self.sparse_ratio * ref) & ~shape
        flag = blank | sparse | ((e < self.ratio * ref) & faint)
        return score, flag, blank | (e < self.severe_ratio * ref)

    def constant(self, m) -> np.ndarray:
        """Practically one grey level (contrast below a tenth of ``min_contrast``, half a grey
        level of 255) or nearly fully transparent: nothing to see whatever the tone."""
        flat = (_shown(m, "contrast") < 0.1 * self.min_contrast) & (_colour_contrast(m) < 0.1 * self.min_contrast)
        return flat | (_opacity(m) < self.min_opacity)


def _shown(m: pd.DataFrame, column: str) -> np.ndarray:
    """The larger of a metric measured inside the opaque part (``contrast``, ``entropy``) and
    on the picture as shown (``outline_contrast``, ``outline_entropy``: composited on the
    neutral grey): the information a transparent picture carries is in its inside or in its
    silhouette (a one-colour symbolic icon). The inside value alone where the outline one is
    missing (metrics from before it was measured)."""
    inside = m[column].to_numpy(dtype=float)
    outline = f"outline_{column}"
    if outline not in m:
        return inside
    return np.fmax(inside, m[outline].to_numpy(dtype=float))


def _colour_contrast(m: pd.DataFrame) -> np.ndarray:
    """``colour_contrast`` (inside or as shown, the larger), or the luminance one of
    :func:`_shown` where it is missing (metrics from before it was measured)."""
    shown = _shown(m, "contrast")
    if "colour_contrast" not in m:
        return shown
    return np.where(m["colour_contrast"].isna().to_numpy(), shown, m["colour_contrast"].to_numpy(dtype=float))


def _silhouette(m: pd.DataFrame, min_contrast: float = 0.02) -> np.ndarray:
    """Transparent pictures whose shape stands out on the neutral grey: however black or
    white their paint, they are not a black or white frame."""
    if "outline_contrast" not in m:
        return np.zeros(len(m), dtype=bool)
    shown = np.nan_to_num(m["outline_contrast"].to_numpy(dtype=float), nan=0.0) >= min_contrast
    return shown & (_opacity(m) < 0.99)


def _flat_paint(m: pd.DataFrame, max_contrast: float = 0.02, max_entropy: float = 1.0) -> np.ndarray:
    """Transparent pictures drawn in one flat paint whose shape shows: black letters and line
    art on transparency, white symbolic icons. Inside, their contrast is below
    ``max_contrast`` and their entropy below ``max_entropy`` bits (one grey level, give or
    take its anti-aliased edge). In black paint such a picture is not dark, in white paint not
    bright: its tone is its design, and darkening black (or brightening white) paint changes
    nothing (a black-inked alphabet in a colour clip-art set had 204 of its 208 letters flagged
    ``dark``, all at contrast and entropy 0; darkened pictures keep some detail: contrast
    0.017 or more, entropy 1.7 bits or more). A black letter brightened into pale grey paint
    is another matter: it is judged like any picture."""
    shown = _silhouette(m)
    if not shown.any() or "contrast" not in m or "entropy" not in m:
        return np.zeros(len(m), dtype=bool)
    inside_contrast = np.nan_to_num(m["contrast"].to_numpy(dtype=float), nan=1.0)
    inside_entropy = np.nan_to_num(m["entropy"].to_numpy(dtype=float), nan=8.0)
    return shown & (inside_contrast < max_contrast) & (inside_entropy < max_entropy)


def _opacity(m: pd.DataFrame) -> np.ndarray:
    """Mean alpha per row (1 where the metric is missing: an opaque image)."""
    return m["opacity"].fillna(1.0).to_numpy() if "opacity" in m else np.ones(len(m))


def _far_below_typical(m: pd.DataFrame, column: str, ratio: float, absolute_max: float, flip: bool = False) -> np.ndarray:
    """Rows whose ``column`` (or 1 - it, ``flip``) is below ``ratio`` x its dataset median and
    below ``absolute_max``; True where the column is missing (metrics from before it was
    measured), so the test then leaves the decision to the others."""
    if column not in m or m[column].isna().all():
        return np.ones(len(m), dtype=bool)
    values = m[column].to_numpy(dtype=float)
    values = 1.0 - values if flip else values
    typical = max(float(np.nanmedian(values)), 1e-6)
    return np.nan_to_num(values, nan=0.0) < min(ratio * typical, absolute_max)


def _hueless(m: pd.DataFrame, tolerance: float = 0.03) -> np.ndarray:
    """Rows whose brightest colours are grey: the 99th percentile of the largest channel within
    ``tolerance`` of that of luminance (False where it was not measured)."""
    if "max_channel_high" not in m:
        return np.zeros(len(m), dtype=bool)
    gap = m["max_channel_high"].to_numpy(dtype=float) - m["brightness_high"].to_numpy(dtype=float)
    return np.nan_to_num(gap, nan=1.0) < tolerance


def _invisible(m: pd.DataFrame, min_opacity: float = LowInformationCheck.min_opacity) -> np.ndarray:
    """Nearly fully transparent images whose shape does not show on the grey: their tone is
    the colour of pixels nobody sees (``low_information`` reports them)."""
    return (_opacity(m) < min_opacity) & ~_silhouette(m)


def _log_deviation(values: np.ndarray) -> tuple[np.ndarray, float]:
    logs = np.log(np.maximum(values, 1e-9))
    med = float(np.median(logs))
    mad = float(np.median(np.abs(logs - med))) * 1.4826
    return np.abs(logs - med), mad


@dataclass
class _LogDeviationCheck(ImageCheck):
    """Flags values at least ``min_factor`` times away from the dataset median AND beyond ``z``
    robust standard deviations of the log values (so a dataset whose values vary widely is
    not flagged wholesale). Score: |log(value / median)|; severe beyond ``severe_factor``."""

    column = ""
    min_factor: float = 4.0
    z: float = 4.0
    severe_factor: float = 16.0

    def score_and_flags(self, m):
        dev, sigma = _log_deviation(m[self.column].to_numpy())
        flag = (dev > np.log(self.min_factor)) & (dev > self.z * sigma)
        return dev, flag, flag & (dev > np.log(self.severe_factor))


@dataclass
class OddSizeCheck(_LogDeviationCheck):
    """``odd_size``: pixel area (width x height) at least 4x smaller or larger than the dataset
    median and beyond 4 robust sigma of log-area. Score: |log(area / median area)|."""

    name = "odd_size"
    column = "area"


@dataclass
class OddAspectRatioCheck(_LogDeviationCheck):
    """``odd_aspect_ratio``: width/height at least 2x away from the dataset's median aspect
    ratio and beyond 4 robust sigma of log-aspect. Score: |log(aspect / median aspect)|."""

    name = "odd_aspect_ratio"
    column = "aspect_ratio"
    min_factor: float = 2.0
    severe_factor: float = 4.0


IMAGE_CHECKS = (
    UnreadableCheck(),
    DarkCheck(),
    BrightCheck(),
    BlurryCheck(),
    LowInformationCheck(),
    OddSizeCheck(),
    OddAspectRatioCheck(),
)


TONE_DEFECTS = ("dark", "bright")


def run_image_checks(metrics: pd.DataFrame, checks=IMAGE_CHECKS) -> list[pd.DataFrame]:
    """Every check's findings, with two defects not reported twice:

    - a ``dark`` or ``bright`` finding on a ``blurry`` image is kept only when its mean has
      moved below ``blurred_mean_ratio`` (0.3) of its class's too: blur spreads a thin
      stroke's light, which lowers the brightest 1% (or raises the darkest 1%) but keeps the
      mean, so a blurred thin "1" looks dim by its peaks alone (mean 0.42-0.59 of its class
      on the quality suite's glyphs and MNIST, where darkened images reach 0.05-0.58);
    - a ``low_information`` finding on an image also flagged ``dark`` or ``bright`` is kept
      only when the image is :meth:`LowInformationCheck.constant`: otherwise its low entropy
      and contrast are the tone defect reported again (a photo darkened x0.15 keeps its
      picture but squeezes it into 40 grey levels)."""
    found = [check.find(metrics) for check in checks]
    blurred = flagged_items(found, ("blurry",))
    by_id = metrics.set_index("item_id")
    for i, (check, frame) in enumerate(zip(checks, found)):
        if isinstance(check, (DarkCheck, BrightCheck)) and len(frame) and blurred:
            shift = pd.Series(check.tone_shift(metrics), index=metrics["item_id"]).loc[frame["item_id"]]
            keep = ~frame["item_id"].isin(blurred).to_numpy() | (shift.to_numpy() < check.blurred_mean_ratio)
            found[i] = frame[keep].reset_index(drop=True)
    toned = flagged_items(found, TONE_DEFECTS)
    for i, (check, frame) in enumerate(zip(checks, found)):
        if isinstance(check, LowInformationCheck) and len(frame) and toned:
            keep = ~frame["item_id"].isin(toned).to_numpy() | check.constant(by_id.loc[frame["item_id"]])
            found[i] = frame[keep].reset_index(drop=True)
    return found
