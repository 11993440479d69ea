"""Align pairs of thumbnails and measure what differs once they are aligned.

Near-duplicate copies differ from their original by a small geometric change (a shift of a
pixel or two, a resize, a crop of up to a tenth of a side, which rescales the thumbnail
anisotropically) plus photometric noise (sensor noise, JPEG, a brightness or contrast
change). Distinct pictures differ in structure. So: normalise each thumbnail's brightness and
contrast (all channels together, so colour differences stay), smooth away pixel noise, find
the shift and per-axis scale that best map one onto the other (a whole-pixel search, then
Gauss-Newton / Lucas-Kanade refinement over all pairs, inner loops compiled in
:mod:`align_kernels`), and report the mean
absolute difference that remains where both images overlap, after fitting a gain and offset,
in units of the images' contrast, and (on request) its peak over a few pixels, which tells a
difference in one place (a look-alike's serif) from one spread everywhere (a copy's noise).
"""

from __future__ import annotations

import os

import numpy as np

SMOOTH_SIGMA = 1.0  # thumbnail pixels; noise averages out, strokes and edges survive
MIN_SPREAD = 0.02  # contrast floor, so near-flat images are not blown up to pure noise
MARGIN = 3  # border excluded from the comparison (content shifted or cropped in from outside)
MAX_SHIFT = 4.0  # thumbnail pixels; beyond that it is another picture
MAX_SCALE = 0.25  # per-axis scale change: cropping 10% off both ends of an axis rescales it by 1.25
ASPECT_SLACK = 0.01  # log-anisotropy allowed beyond what the two canvases imply (plus their rounding)
ITERATIONS = 3  # Gauss-Newton steps per pyramid level
PYRAMID = (2.0,)  # extra smoothing of the coarser levels: a wider basin for 10-25% rescales


def _kernels():
    """The compiled loops (:mod:`align_kernels`), imported on first use: numba takes half a
    second to import, which a run with nothing to align (an up-to-date re-run) never pays."""
    from . import align_kernels

    return align_kernels


LEVELS = (8, 12, 16, 24)  # common resolutions below the thumbnail's at which pairs are compared


def _lowpass_matrix(r: int, s: int) -> np.ndarray:
    """(S, S) matrix: area-downsample to ``r`` samples, then linear interpolation back to ``s``."""
    edges = np.linspace(0, s, r + 1)
    down = np.zeros((r, s), dtype=np.float32)
    for i in range(r):  # area weights of each thumbnail pixel inside output cell i
        lo, hi = edges[i], edges[i + 1]
        for j in range(int(np.floor(lo)), int(np.ceil(hi))):
            down[i, j] = min(hi, j + 1) - max(lo, j)
        down[i] /= down[i].sum()
    centres = (np.arange(s) + 0.5) * r / s - 0.5
    lo = np.clip(np.floor(centres).astype(int), 0, r - 2)
    w = np.clip(centres - lo, 0, 1)
    up = np.zeros((s, r), dtype=np.float32)
    up[np.arange(s), lo] = 1 - w
    up[np.arange(s), lo + 1] += w
    return up @ down


def comparison_level(side: np.ndarray, thumb: int = 32) -> np.ndarray:
    """The resolution at which an image of native side ``side`` is compared: the largest level
    not above it (the thumbnail's own when larger). A pair is compared at the smaller of its
    two levels, so an upscaled or downscaled copy is not told apart by the detail it lacks."""
    side = np.asarray(side)
    out = np.full(side.shape, thumb, dtype=np.int64)
    for level in sorted(LEVELS, reverse=True):
        out[side <= level * 1.25] = level  # within a quarter of a level counts as that level
    return out


def prepare(thumbs: np.ndarray, sigma: float = SMOOTH_SIGMA, level: int | None = None) -> np.ndarray:
    """(P, S, S[, C]) uint8 -> (P, S, S, C) float32, zero mean and unit contrast per image,
    low-passed to ``level`` samples per side (when given), smoothed."""
    from scipy.ndimage import gaussian_filter

    x = np.asarray(thumbs, dtype=np.float32) / 255.0
    if x.ndim == 3:
        x = x[..., None]
    x = x - x.mean(axis=(1, 2, 3), keepdims=True)
    x /= np.maximum(x.std(axis=(1, 2, 3), keepdims=True), MIN_SPREAD)
    if level is not None and level < x.shape[1]:
        m = _lowpass_matrix(level, x.shape[1])
        # m @ image @ m.T per image and channel, as two large matrix products (einsum's batched
        # path was 5x slower on 15k thumbnails)
        y = np.tensordot(m, x, axes=([1], [1]))  # (S, P, S, C)
        y = np.tensordot(y, m, axes=([2], [1]))  # (S, P, C, S)
        x = np.ascontiguousarray(y.transpose(1, 0, 3, 2), dtype=np.float32)
    if sigma > 0:
        x = gaussian_filter(x, sigma=(0, sigma, sigma, 0), mode="nearest")
    return x


def _sample_positions(scale: np.ndarray, shift: np.ndarray, s: int) -> np.ndarray:
    """(P, S) positions c + scale (i - c) + shift sampled along one axis of each image."""
    c = (s - 1) / 2.0
    return c + scale[:, None] * (np.arange(s, dtype=np.float32) - c)[None] + shift[:, None]


def _positions(params: np.ndarray, s: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows, columns) sampled by the warp ``params`` (P, 4) = (ty, tx, sy, sx), each (P, S)."""
    return _sample_positions(params[:, 2], params[:, 0], s), _sample_positions(params[:, 3], params[:, 1], s)


def warp(img: np.ndarray, params: np.ndarray, idx: np.ndarray | None = None) -> np.ndarray:
    """Bilinear resampling of each (S, S, C) image at y' = cy + sy (y - cy) + ty (x likewise),
    positions clamped to the frame; params (P, 4) = (ty, tx, sy, sx) with scales around 1.
    The warp is separable (no rotation): a compiled four-tap kernel. ``idx`` (P,): ``img``
    is a stack of images, and row p of the result warps img[idx[p]]."""
    pos_y, pos_x = _positions(params, img.shape[1])
    return _kernels().bilinear_warp(img, pos_y, pos_x, idx)


def coverage(params: np.ndarray, s: int, bleed: float = 0.0) -> np.ndarray:
    """(P, S, S, 1) 1 where the warp samples inside the other image, 0 where it runs off its
    edge (what a crop cut away cannot be compared). ``bleed``: on a side where the warp does
    run off, a further band this wide is left out too: the smoothing carried whatever filled
    the far side of that edge (a shifted copy's padding) into it."""
    out = []
    for pos in _positions(params, s):
        lo, hi = np.full(len(pos), -0.5, np.float32), np.full(len(pos), s - 0.5, np.float32)
        if bleed:
            lo = np.where(pos.min(axis=1) < -0.5, lo + bleed, lo)
            hi = np.where(pos.max(axis=1) > s - 0.5, hi - bleed, hi)
        out.append((pos >= lo[:, None]) & (pos <= hi[:, None]))
    iny, inx = out
    return (iny[:, :, None] & inx[:, None, :]).astype(np.float32)[..., None]


def masked_difference(a: np.ndarray, b: np.ndarray, params: np.ndarray, bleed: float = 0.0,
                      with_peak: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Mean |a - (g warp(b) + o)| over the whole frame where the warp stays inside b (not just
    the central window: the alignment must not be able to push differences out of sight), with
    the gain g and offset o (shared by all channels) fitted by least squares over that region:
    per-image normalisation is not crop-invariant (cutting away a black border changes an
    image's mean and contrast), this fit is. ``with_peak``: also return :func:`peak_difference`
    of that residual."""
    mask = coverage(params, a.shape[1], bleed)[..., 0]
    mean, residual = _kernels().gain_fitted_difference(a, warp(b, params), mask, with_residual=with_peak)
    return (mean, peak_difference(residual[..., None])) if with_peak else mean


PEAK_SIGMA = 2.0  # thumbnail pixels over which a residual is averaged before its peak is taken


def peak_difference(residual: np.ndarray) -> np.ndarray:
    """(P,) largest local mean of |residual| ((P, S, S, C), zero outside the compared region):
    the absolute residual averaged over channels and over a Gaussian window of PEAK_SIGMA.
    What is left of a copy once aligned (pixel noise, JPEG blocks, resampling along every
    edge) is spread thinly over the picture; two distinct look-alikes (glyphs of one letter
    in two similar fonts, two handwritten strokes that coincide but for a serif or a loop)
    differ in one place, which stands out here even where their mean difference is as
    small as a noisy copy's."""
    from scipy.ndimage import gaussian_filter

    local = gaussian_filter(np.abs(residual).mean(axis=3), sigma=(0, PEAK_SIGMA, PEAK_SIGMA), mode="constant")
    return local.max(axis=(1, 2))


def _warped_mean_abs(a: np.ndarray, b: np.ndarray, params: np.ndarray, ia: np.ndarray, ib: np.ndarray) -> np.ndarray:
    """Mean |a[ia[p]] - warp(b, params, ib)[p]| over the window MARGIN inside the frame, per
    pair, in one compiled pass (stacks a and b, the pairs' indices ``ia`` / ``ib``): no warped
    copy of each pair's image is made."""
    pos_y, pos_x = _positions(params, a.shape[1])
    return _kernels().warped_mean_abs(a, b, pos_y, pos_x, MARGIN, ia, ib)


def _window(x: np.ndarray) -> np.ndarray:
    return x[:, MARGIN:-MARGIN, MARGIN:-MARGIN]


def _pool(x: np.ndarray) -> np.ndarray:
    """2x2 average pooling: half the resolution, for the coarse shift search."""
    p, s = x.shape[0], x.shape[1] // 2 * 2
    return x[:, :s, :s].reshape(p, s // 2, 2, s // 2, 2, -1).mean(axis=(2, 4))


def _best_whole_shift(a: np.ndarray, b: np.ndarray, reach: int = 2, margin: int = MARGIN,
                      ia: np.ndarray | None = None, ib: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The best whole-pixel shift within ``reach`` (<= margin) and its difference; ``ia`` /
    ``ib``: a and b are stacks of images that the pairs index."""
    return _kernels().best_whole_shift(a, b, reach, margin, ia, ib)


def _standardise(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-image zero mean and unit std over (S, S, C); also returns the std (P, 1, 1, 1)."""
    centred = x - x.mean(axis=(1, 2, 3), keepdims=True)
    spread = np.maximum(centred.std(axis=(1, 2, 3), keepdims=True), 1e-3)
    return centred / spread, spread


def allowed_anisotropy(size_a: np.ndarray, size_b: np.ndarray) -> np.ndarray:
    """(P, 2) centre and half-width of log(sy / sx) for warps mapping b onto a (sizes: native
    (width, height) per pair). Thumbnails are stretched to squares, so a copy that was cropped
    and/or resized (keeping its proportions) maps back with sy / sx = aspect(b) / aspect(a)
    exactly, up to the rounding of the smaller image's sides. Any other anisotropy would
    stretch one picture into another (a narrow "0" into a wide one, one straight edge onto an
    edge at another angle): distinct pictures, not copies."""
    wa, ha = np.maximum(size_a[:, 0], 1), np.maximum(size_a[:, 1], 1)
    wb, hb = np.maximum(size_b[:, 0], 1), np.maximum(size_b[:, 1], 1)
    centre = np.log((wb / hb) / (wa / ha))
    smaller = wa * ha <= wb * hb
    ws, hs = np.where(smaller, wa, wb), np.where(smaller, ha, hb)
    half = ASPECT_SLACK + 0.5 / ws + 0.5 / hs
    return np.stack([centre, half], axis=1).astype(np.float32)


def _constrained(params: np.ndarray, anisotropy: np.ndarray | None) -> np.ndarray:
    """``params`` with log(sy / sx) clipped into its allowed band (zoom sqrt(sy sx) kept), then
    shifts and scales into their limits."""
    lo = np.array([-MAX_SHIFT, -MAX_SHIFT, 1 - MAX_SCALE, 1 - MAX_SCALE], np.float32)
    hi = np.array([MAX_SHIFT, MAX_SHIFT, 1 + MAX_SCALE, 1 + MAX_SCALE], np.float32)
    if anisotropy is not None:
        params = params.copy()
        zoom = np.sqrt(params[:, 2] * params[:, 3])
        u = np.clip(np.log(params[:, 2] / params[:, 3]), anisotropy[:, 0] - anisotropy[:, 1],
                    anisotropy[:, 0] + anisotropy[:, 1])
        params[:, 2], params[:, 3] = zoom * np.exp(u / 2), zoom * np.exp(-u / 2)
    return np.clip(params, lo, hi)


def refine(a: np.ndarray, b: np.ndarray, params: np.ndarray, iterations: int = ITERATIONS,
           anisotropy: np.ndarray | None = None) -> np.ndarray:
    """Damped Gauss-Newton (Lucas-Kanade) steps on (ty, tx, sy, sx) mapping b onto a. Each
    step is tried whole and at 40%, and a pair keeps whichever lowers its squared
    difference (never a worse one), so an overshooting step cannot throw it out of its basin.
    Both windows are standardised (zero mean, unit contrast) before comparing: the images'
    own normalisation is not crop-invariant, and a gain mismatch would bias the scale.
    ``anisotropy``: (P, 2) allowed band of log(sy / sx) (:func:`allowed_anisotropy`); None
    lets each axis scale freely."""
    s = a.shape[1]
    grid = (np.arange(s, dtype=np.float32) - (s - 1) / 2.0)[MARGIN:-MARGIN]
    aw = _standardise(_window(a))[0]
    max_step = np.array([1.5, 1.5, 0.08, 0.08], np.float32)
    kernels = _kernels()

    def cost(p):
        return kernels.standardised_cost(aw, warp(b, p), MARGIN)

    params = _constrained(params, anisotropy)
    current = cost(params)
    for _ in range(iterations):
        # the normal equations of the Jacobian of b's standardised window with respect to
        # (ty, tx, sy, sx) and the residual (one compiled pass, no per-pixel Jacobian array)
        h, g = kernels.normal_equations(aw, warp(b, params), grid, MARGIN)
        step = np.clip(np.linalg.solve(h, g[..., None])[..., 0], -max_step, max_step)
        best_params, best = params, current
        for fraction in (1.0, 0.4):
            trial = _constrained(params + fraction * step, anisotropy)
            c = cost(trial)
            better = c < best
            best = np.where(better, c, best)
            best_params = np.where(better[:, None], trial, best_params)
        if np.array_equal(best_params, params):
            break
        params, current = best_params, best
    return params


def initial_alignment(stack: np.ndarray, ia: np.ndarray, ib: np.ndarray, crop_scales: np.ndarray | None = None,
                      pooled: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Start for the refinement of the pairs (stack[ia[p]], stack[ib[p]]), b onto a: the
    better of the best whole-pixel shift within 2 px and the best 2-px step within 4 px at
    half resolution (a 1 px shift of an 8 px image is 4 px here), with the difference it
    leaves at full resolution. The kernels read the images through the indices, so no pair
    copies its images. ``crop_scales``: (P, 2) (sy, sx) that would map b onto a if one were a
    plain crop of the other (:func:`crop_scales`); where it is not 1, the best whole-pixel
    shift at that scale is tried too (the refinement's basin does not reach a 10-20% rescale
    from scale 1 on every picture). ``pooled``: ``stack`` already pooled (:func:`_pool`),
    once per image."""
    ia, ib = np.asarray(ia, np.int64), np.asarray(ib, np.int64)
    pooled = _pool(stack) if pooled is None else pooled
    fine, d_fine = _best_whole_shift(stack, stack, ia=ia, ib=ib)
    coarse, _ = _best_whole_shift(pooled, pooled, reach=2, margin=2, ia=ia, ib=ib)
    coarse[:, :2] *= 2
    d_coarse = _warped_mean_abs(stack, stack, coarse, ia, ib)
    use = d_coarse < d_fine
    fine[use] = coarse[use]
    best = np.where(use, d_coarse, d_fine)
    if crop_scales is not None:
        sel = possible_crops(crop_scales)
        if len(sel):
            guess = np.zeros((len(sel), 4), np.float32)
            guess[:, 2:] = crop_scales[sel]
            shift, _ = _best_whole_shift(stack, warp(stack, guess, ib[sel]), ia=ia[sel])
            # comparing a[i] with warp(b)[i + d] samples b at c + s (i - c) + s d
            guess[:, :2] = shift[:, :2] * guess[:, 2:]
            # with a gain and offset fitted: a crop changes the image's own normalisation (a
            # transparent icon's grey margin cut away), which the other searches do not undo
            d_guess = masked_difference(stack[ia[sel]], stack[ib[sel]], guess)
            better = d_guess < best[sel]
            fine[sel[better]] = guess[better]
            best[sel[better]] = d_guess[better]
    return fine, best


def possible_crops(scales: np.ndarray) -> np.ndarray:
    """Rows of (P, 2) :func:`crop_scales` whose canvases differ enough (2%) that one image may be
    a crop or resize of the other."""
    return np.flatnonzero(np.abs(scales - 1).max(axis=1) > 0.02)


def crop_scales(size_a: np.ndarray, size_b: np.ndarray) -> np.ndarray:
    """(P, 2) (sy, sx) mapping b's thumbnail onto a's if one image is a plain crop of the other
    (no resize): each axis scales by the ratio of the native sides, within the warp's limits."""
    ratio = np.maximum(size_a, 1) / np.maximum(size_b, 1)  # (w, h) ratios
    return np.clip(ratio[:, ::-1], 1 - MAX_SCALE, 1 + MAX_SCALE).astype(np.float32)


REFINE_PER_IMAGE = 2  # each image's closest candidates that are refined (the crowd rule needs two)
GOOD_ENOUGH = 0.03  # a forward alignment this close is not retried backwards
PREFILTER = 0.3  # pairs further apart than this after whole-pixel shifts are not refined


def pair_differences(thumbs: np.ndarray, pairs: np.ndarray, sides: np.ndarray | None = None,
                     chunk: int = 2048, refine_per_image: int = REFINE_PER_IMAGE,
                     queries_only: bool = False, sizes: np.ndarray | None = None,
                     colour_matters: bool = True,
                     with_peaks: bool = False, scratch_dir=None) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Aligned difference of each (i, j) row of ``pairs`` (indices into ``thumbs``), symmetric:
    the smaller of aligning j onto i and i onto j (a crop enlarges in one direction only).

    ``sides``: each image's native short side; a pair is compared at the smaller of the two
    :func:`comparison_level` values. ``sizes``: each image's native (width, height); when
    given, it also sets ``sides`` and limits each pair's anisotropic scaling to what its two
    canvases allow (:func:`allowed_anisotropy`). Alignment runs on luminance (3x cheaper); the difference
    is then measured in colour at the aligned position, so two pictures that differ only in
    colour stay apart. Every pair gets the cheap whole-pixel search; only pairs closer than
    PREFILTER and among the ``refine_per_image`` closest of one of their members are refined
    (the others keep the whole-pixel difference, an upper bound), so the cost stays linear
    in the number of images however crowded the neighbourhoods are. ``queries_only``: rank
    only among the pairs of each first member (a test image's candidates in the training
    split), not of the second too. ``colour_matters=False``: compare luminance only, so a
    recoloured copy (grey and blue versions of one picture) counts as a copy.
    ``with_peaks``: also return each pair's :func:`peak_difference` at its refined alignment
    (NaN for the pairs not refined). ``scratch_dir``: a folder of the user's (the project's
    arrays) where the prepared images of more than PREPARE_LIMIT images are kept in temporary
    files while the pairs are compared, each image prepared once; without it such a level is
    compared in blocks (:func:`_blocks`), each preparing its images afresh (at 1M images about
    20 times over).
    """
    with _Scratch(scratch_dir) as scratch:
        pairs = np.asarray(pairs, dtype=np.int64)
        anisotropy = guesses = None
        if sizes is not None:
            sizes = np.asarray(sizes, dtype=np.float64)
            sides = sizes.min(axis=1)
            anisotropy = allowed_anisotropy(sizes[pairs[:, 0]], sizes[pairs[:, 1]])
            guesses = crop_scales(sizes[pairs[:, 0]], sizes[pairs[:, 1]])
        levels = np.full(len(pairs), thumbs.shape[1], dtype=np.int64)
        if sides is not None:
            per_image = comparison_level(sides, thumbs.shape[1])
            levels = np.minimum(per_image[pairs[:, 0]], per_image[pairs[:, 1]])
        out = np.empty(len(pairs), dtype=np.float32)
        params = np.empty((len(pairs), 4), dtype=np.float32)
        peaks = np.full(len(pairs), np.nan, dtype=np.float32)
        # level -> (its rows, stack positions, colour, luminance, pyramid) of levels searched in one
        # block, kept for the refinement: those on disk always, those in memory while they hold no
        # more than PREPARE_LIMIT images in all (the reuse adds at most one block's worth of memory,
        # however many sizes the images come in)
        prepared, kept = {}, 0
        for level, block in _blocks(pairs, levels, on_disk=scratch.usable):
            inverse, colour, lum, pooled, pyramid = _prepared(thumbs, pairs[block], level, colour_matters, scratch)
            whole = len(block) == int((levels == level).sum())
            if whole and (pyramid is not None or kept + len(lum) <= PREPARE_LIMIT):  # on disk, or room in memory
                prepared[level] = (block, inverse, colour, lum, pyramid)
                kept += 0 if pyramid is not None else len(lum)

            def search(start, stop, block=block, inverse=inverse, colour=colour, lum=lum, pooled=pooled):
                ia, ib = inverse[start:stop].T
                rows = block[start:stop]
                # the search runs on luminance (3x cheaper); the difference it leaves, in colour;
                # the kernels read the images through the pair indices (no per-pair copies)
                params[rows] = initial_alignment(lum, ia, ib, None if guesses is None else guesses[rows], pooled)[0]
                out[rows] = _warped_mean_abs(colour, colour, params[rows], ia, ib)
                if guesses is not None:  # possible crops: also with a gain and offset fitted (see initial_alignment)
                    crop = possible_crops(guesses[rows])
                    if len(crop):
                        fitted = masked_difference(colour[ia[crop]], colour[ib[crop]], params[rows[crop]])
                        out[rows[crop]] = np.minimum(out[rows[crop]], fitted)

            _each_chunk(search, len(block), chunk)
        todo = (out < PREFILTER) & _among_closest(pairs, out, refine_per_image, queries_only)
        for level, block in _blocks(pairs, levels, todo, on_disk=scratch.usable):
            if level in prepared:  # the search's prepared images serve again
                searched, positions, colour, lum, pyramid = prepared[level]
                inverse = positions[np.searchsorted(searched, block)]
            else:
                inverse, colour, lum, _, pyramid = _prepared(thumbs, pairs[block], level, colour_matters, scratch)
            if pyramid is None:
                pyramid = _smoothed(lum)  # once per image, not per pair and direction
            bleed = thumbs.shape[1] / level + SMOOTH_SIGMA  # one comparison sample plus the smoothing

            def refine_chunk(start, stop, block=block, inverse=inverse, colour=colour, lum=lum, pyramid=pyramid, bleed=bleed):
                ia, ib = inverse[start:stop].T
                rows = block[start:stop]
                band = None if anisotropy is None else anisotropy[rows]
                out[rows], peaks[rows] = _refined(colour, lum, ia, ib, params[rows], out[rows], band, bleed, pyramid)

            _each_chunk(refine_chunk, len(block), chunk)
        return (out, peaks) if with_peaks else out


SCRATCH_PREFIX = ".curator-align-"  # temporary folders of pair_differences in a scratch_dir


class _Scratch:
    """A temporary folder inside ``parent`` (SCRATCH_PREFIX...), made on first use and
    removed with its files when the ``with`` block ends, even when the alignment fails;
    ``parent`` None: no folder may be made (:attr:`usable` is False)."""

    def __init__(self, parent):
        self.parent, self._folder = parent, None

    @property
    def usable(self) -> bool:
        return self.parent is not None

    def path(self, name: str) -> str:
        import tempfile

        if self._folder is None:
            self._folder = tempfile.TemporaryDirectory(dir=self.parent, prefix=SCRATCH_PREFIX)
        return os.path.join(self._folder.name, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self._folder is not None:
            self._folder.cleanup()
            self._folder = None
        return False


PREPARE_LIMIT = 40_000  # images whose prepared thumbnails are held at once (about 16 KB each a level)
BLOCK_PAIRS = 32_768  # beyond that, pairs handled per block: bounds memory, not results


def _blocks(pairs: np.ndarray, levels: np.ndarray, wanted: np.ndarray | None = None, on_disk: bool = False):
    """(level, pair rows) blocks. All of a level's pairs at once while they involve at most
    PREPARE_LIMIT images; beyond, blocks of BLOCK_PAIRS rows ordered by first member, so the
    prepared thumbnails stay bounded (at most 2 x BLOCK_PAIRS images, about 1 GB) however many
    images there are, at the price of preparing an image again in each block it appears in.
    ``on_disk``: the prepared images can be kept in files, so every level is one block."""
    for level in np.unique(levels):
        rows = np.flatnonzero((levels == level) if wanted is None else (levels == level) & wanted)
        if on_disk or len(rows) <= BLOCK_PAIRS or len(np.unique(pairs[rows])) <= PREPARE_LIMIT:
            yield int(level), rows
            continue
        rows = rows[np.argsort(pairs[rows, 0], kind="stable")]
        for start in range(0, len(rows), BLOCK_PAIRS):
            yield int(level), rows[start : start + BLOCK_PAIRS]


PREPARE_CHUNK = 4096  # images prepared at a time (each thread its own chunks)


def _prepared(thumbs: np.ndarray, block_pairs: np.ndarray, level: int, colour_matters: bool, scratch: _Scratch):
    """(pair positions into the block's images (B, 2), colour (M, S, S, C), luminance (M, S, S, 1),
    luminance pooled (:func:`_pool`), pyramid) for the images of one block of pairs, each
    prepared as :func:`prepare` does, in
    chunks on both threads (beyond 40,000 images each block prepares its images afresh: at
    50,000 small images that was 12 of the alignment's 27 s, on one core). Beyond
    PREPARE_LIMIT images and with a ``scratch`` folder, the arrays are memory-mapped files
    there (16 KB per image, read back through the page cache) and the pyramid's smoothed
    luminance (:func:`_smoothed`) is made alongside; otherwise pyramid is None."""
    involved, inverse = np.unique(block_pairs, return_inverse=True)
    m, s = len(involved), thumbs.shape[1]
    channels = thumbs.shape[3] if thumbs.ndim == 4 and colour_matters else 1
    on_disk = scratch.usable and m > PREPARE_LIMIT

    def new(name, c, side=s):
        if not on_disk:
            return np.empty((m, side, side, c), np.float32)
        return np.lib.format.open_memmap(scratch.path(f"{name}-{level}.npy"), "w+", np.float32, (m, side, side, c))

    colour, lum, pooled = new("colour", channels), new("luminance", 1), new("pooled", 1, s // 2)
    pyramid = [new(f"pyramid{i}", 1) for i in range(len(PYRAMID))] if on_disk else None

    def work(start, stop):
        chosen = np.asarray(thumbs[involved[start:stop]])
        if not colour_matters and chosen.ndim == 4:  # grey levels (ITU-R 601 luma, as PIL's "L")
            chosen = chosen.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        colour[start:stop] = prepare(chosen, level=level)
        grey = colour[start:stop].mean(axis=3, keepdims=True)
        lum[start:stop] = grey / np.maximum(grey.std(axis=(1, 2, 3), keepdims=True), 1e-3)
        pooled[start:stop] = _pool(lum[start:stop])  # once per image, not per pair
        for smooth, out in zip(_smoothed(lum[start:stop]) if on_disk else (), pyramid or ()):
            out[start:stop] = smooth

    _each_chunk(work, m, PREPARE_CHUNK)
    return inverse.reshape(-1, 2), colour, lum, pooled, pyramid


def _each_chunk(work, n: int, chunk: int) -> None:
    """``work(start, stop)`` for chunks of at most ``chunk`` of ``n`` pairs, on up to two
    threads: the chunks write disjoint rows, and numpy and the compiled kernels release the
    GIL, so the second core does real work (the alignment is the costliest dataset-level
    stage of analyze). The chunks are of equal size and come in a multiple of the thread
    count: 2,738 pairs as 2,048 + 690 kept one thread busy three times as long as the other."""
    threads = min(2, os.cpu_count() or 1)
    pieces = max(1, -(-n // chunk))
    if threads > 1 and n >= 2 * threads:
        pieces = -(-pieces // threads) * threads
    bounds = np.linspace(0, n, pieces + 1).round().astype(int)
    spans = [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
    if threads <= 1 or len(spans) <= 1:
        for start, stop in spans:
            work(start, stop)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(threads) as pool:
        for _ in pool.map(lambda span: work(*span), spans):  # re-raises the first failure
            pass


def rank_within_nodes(pairs: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each (pair, member) entry ranked by ``values`` among the pairs of that member.
    Returns (pair row, member, rank) per entry, 0 = that member's smallest value."""
    nodes = pairs.ravel()
    row = np.repeat(np.arange(len(pairs)), 2)
    order = np.lexsort((values[row], nodes))
    nodes_sorted = nodes[order]
    rank = np.arange(len(order)) - np.searchsorted(nodes_sorted, nodes_sorted, side="left")
    return row[order], nodes_sorted, rank


def _among_closest(pairs: np.ndarray, values: np.ndarray, k: int, first_only: bool = False) -> np.ndarray:
    """Pairs that are among the ``k`` smallest ``values`` of at least one of their members
    (of their first member with ``first_only``)."""
    if first_only:
        order = np.lexsort((values, pairs[:, 0]))
        first = pairs[order, 0]
        rank = np.arange(len(order)) - np.searchsorted(first, first, side="left")
        chosen = np.zeros(len(pairs), dtype=bool)
        chosen[order[rank < k]] = True
        return chosen
    row, _, rank = rank_within_nodes(pairs, values)
    chosen = np.zeros(len(pairs), dtype=bool)
    chosen[row[rank < k]] = True
    return chosen


def _smoothed(lum: np.ndarray) -> list:
    """The stack ``lum`` (M, S, S, 1) smoothed at each extra PYRAMID level, per image."""
    from scipy.ndimage import gaussian_filter

    return [gaussian_filter(lum, sigma=(0, sigma, sigma, 0), mode="nearest") for sigma in PYRAMID]


def coarse_to_fine(a: np.ndarray, b: np.ndarray, params: np.ndarray, anisotropy: np.ndarray | None,
                   pyramid: list) -> np.ndarray:
    """Refine on more strongly smoothed copies first (a wider basin: a 20% rescale moves the
    border by 3 px), then at the working smoothness. ``pyramid``: those copies of a and b,
    [(a, b)] per PYRAMID level (:func:`_smoothed`)."""
    for blurred_a, blurred_b in pyramid:
        params = refine(blurred_a, blurred_b, params, iterations=ITERATIONS, anisotropy=anisotropy)
    return refine(a, b, params, iterations=ITERATIONS, anisotropy=anisotropy)


def _refined(colour: np.ndarray, lum: np.ndarray, ia: np.ndarray, ib: np.ndarray, params: np.ndarray,
             coarse: np.ndarray, anisotropy: np.ndarray | None, bleed: float,
             pyramid: list) -> tuple[np.ndarray, np.ndarray]:
    """Refine the alignment of pairs (ia, ib) from ``params`` on luminance; the smaller of the
    coarse and the refined colour difference, in both directions where the first leaves a
    visible difference, and the :func:`peak_difference` of the refined direction with the
    smaller difference. ``bleed``: see :func:`coverage`. ``pyramid``: :func:`_smoothed` of
    ``lum``, made once for the whole stack."""
    forward = coarse_to_fine(lum[ia], lum[ib], params, anisotropy, [(x[ia], x[ib]) for x in pyramid])
    refined, peak = masked_difference(colour[ia], colour[ib], forward, bleed, with_peak=True)
    result = np.minimum(coarse, refined)
    # the other direction only where this one left a visible difference (a crop aligns
    # better from the cropped side); a pair already this close needs no second opinion
    again = np.flatnonzero(result > GOOD_ENOUGH)
    if len(again):
        ta, tb = ia[again], ib[again]
        flipped = None if anisotropy is None else anisotropy[again] * np.array([-1, 1], np.float32)
        scale = params[again, 2:]
        inverse = np.concatenate([-params[again, :2] / scale, 1 / scale], axis=1)  # a onto b
        backward = coarse_to_fine(lum[tb], lum[ta], inverse, flipped, [(x[tb], x[ta]) for x in pyramid])
        back, back_peak = masked_difference(colour[tb], colour[ta], backward, bleed, with_peak=True)
        peak[again] = np.where(back < refined[again], back_peak, peak[again])
        result[again] = np.minimum(result[again], back)
    return result, peak
