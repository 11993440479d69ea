"""Compiled inner loops of the near-duplicate alignment (:mod:`curator.checks.align`).

The whole-pixel shift search and the bilinear warp touch every pixel of every candidate pair
(tens of thousands of pairs per 5k images), and in numpy each step makes a temporary the size
of a chunk of pairs; the warp was a batched (S x S) matrix product, 16x the arithmetic of the
four-tap bilinear sum it stands for. These numba kernels do the same arithmetic in one pass,
without the GIL (the caller's two threads each run one), and their compiled code is cached in
``$NUMBA_CACHE_DIR`` (see :mod:`curator.native_env`), so only the first run on a machine pays
the compilation.
"""

from __future__ import annotations

import numba
import numpy as np


def _flat(x):
    """(P, S, S, C) -> (P, S, S * C) contiguous float32 (each row of pixels one run), and C."""
    p_count, s, w, channels = x.shape
    return np.ascontiguousarray(x, np.float32).reshape(p_count, s, w * channels), channels


@numba.njit(cache=True, nogil=True, fastmath=True)
def _shift_differences(a, ia, b, ib, reach, margin, channels):
    """(P, (2 reach + 1)^2) mean |a[ia[p]] - b[ib[p]] shifted| per pair p and shift; a, b:
    image stacks (M, S, S * C), read through the indices (no per-pair copy of the images)."""
    p_count = len(ia)
    s = a.shape[1]
    side = 2 * reach + 1
    out = np.empty((p_count, side * side), np.float32)
    inner = s - 2 * margin
    width = inner * channels
    norm = np.float32(1.0 / (inner * width))
    for p in range(p_count):
        k = 0
        for dy in range(-reach, reach + 1):
            for dx in range(-reach, reach + 1):
                total = np.float32(0.0)
                for y in range(margin, s - margin):
                    ra = a[ia[p], y, margin * channels : margin * channels + width]
                    rb = b[ib[p], y + dy, (margin + dx) * channels : (margin + dx) * channels + width]
                    for i in range(width):
                        total += abs(ra[i] - rb[i])
                out[p, k] = total * norm
                k += 1
    return out


def _indices(ia, n):
    return np.arange(n, dtype=np.int64) if ia is None else np.ascontiguousarray(ia, np.int64)


def best_whole_shift(a, b, reach, margin, ia=None, ib=None):
    """For each pair p, the whole-pixel shift (dy, dx), |d| <= ``reach``, minimising the mean
    |a[p] - b[p] shifted| over the window ``margin`` pixels inside the frame (the first such
    shift in (dy, dx) order on a tie). a, b: (P, S, S, C) float32; or, with ``ia`` / ``ib``
    (P,), image stacks that the pairs index (a[ia[p]] against b[ib[p]]). Returns (params
    (P, 4) = (dy, dx, 1, 1), difference (P,))."""
    ia = _indices(ia, len(a))
    ib = _indices(ib, len(ia))
    p_count = len(ia)
    a_flat, channels = _flat(a)
    d = _shift_differences(a_flat, ia, _flat(b)[0], ib, reach, margin, channels)
    k = d.argmin(axis=1)
    params = np.ones((p_count, 4), np.float32)
    params[:, 0], params[:, 1] = k // (2 * reach + 1) - reach, k % (2 * reach + 1) - reach
    return params, d[np.arange(p_count), k]


@numba.njit(cache=True, nogil=True, fastmath=True)
def _column_taps(pos_x, s, channels, lx, wx, lo, hi):
    """Fill the left tap's offset ``lx`` and weight ``wx`` of columns lo..hi-1 sampled at
    ``pos_x`` (S,), clamped to the frame: the same for every row of one warp."""
    top = np.float32(s - 1)
    for x in range(lo, hi):
        px = min(max(pos_x[x], np.float32(0.0)), top)
        lx[x] = min(int(np.floor(px)), s - 2) * channels
        wx[x] = px - lx[x] // channels


@numba.njit(cache=True, nogil=True, fastmath=True)
def _blended_row(img, py, tmp):
    """``tmp`` = the two rows of ``img`` (S, S * C) around row position ``py`` (clamped to the
    frame) blended linearly (contiguous: vectorised)."""
    s = img.shape[0]
    py = min(max(py, np.float32(0.0)), np.float32(s - 1))
    ly = min(int(np.floor(py)), s - 2)
    wy = np.float32(py - ly)
    upper, lower = img[ly], img[ly + 1]
    for i in range(tmp.shape[0]):
        tmp[i] = (1 - wy) * upper[i] + wy * lower[i]


@numba.njit(cache=True, nogil=True, fastmath=True)
def _bilinear(img, idx, pos_y, pos_x, channels):
    p_count = len(idx)
    s, row = img.shape[1], img.shape[2]
    out = np.empty((p_count, s, row), np.float32)
    tmp = np.empty(row, np.float32)
    lx = np.empty(s, np.int64)
    wx = np.empty(s, np.float32)
    for p in range(p_count):
        _column_taps(pos_x[p], s, channels, lx, wx, 0, s)
        for y in range(s):
            _blended_row(img[idx[p]], pos_y[p, y], tmp)
            for x in range(s):
                for c in range(channels):
                    out[p, y, x * channels + c] = (1 - wx[x]) * tmp[lx[x] + c] + wx[x] * tmp[lx[x] + channels + c]
    return out


def bilinear_warp(img, pos_y, pos_x, idx=None):
    """(P, S, S, C) ``img`` sampled bilinearly at rows ``pos_y`` (P, S) and columns ``pos_x``
    (P, S), positions clamped to the frame: the separable warp of ``align.warp``. With
    ``idx`` (P,), ``img`` is a stack of images and pair p warps img[idx[p]]."""
    flat, channels = _flat(img)
    idx = _indices(idx, len(pos_y))
    out = _bilinear(flat, idx, np.ascontiguousarray(pos_y, np.float32), np.ascontiguousarray(pos_x, np.float32), channels)
    return out.reshape((len(idx),) + img.shape[1:])


@numba.njit(cache=True, nogil=True, fastmath=True)
def _warped_mean_abs(a, ia, b, ib, pos_y, pos_x, margin, channels):
    """Mean |a[ia[p]] - b[ib[p]] warped| over the window ``margin`` inside the frame: the
    bilinear samples of :func:`_bilinear` taken only where they are compared, summed at once
    (no warped copy of each pair's image is written and read back)."""
    p_count = len(ia)
    s = a.shape[1]
    inner = s - 2 * margin
    out = np.empty(p_count, np.float32)
    lx = np.empty(s, np.int64)
    wx = np.empty(s, np.float32)
    tmp = np.empty(s * channels, np.float32)
    norm = np.float32(1.0 / (inner * inner * channels))
    for p in range(p_count):
        _column_taps(pos_x[p], s, channels, lx, wx, margin, s - margin)
        total = np.float32(0.0)
        for y in range(margin, s - margin):
            _blended_row(b[ib[p]], pos_y[p, y], tmp)
            row = a[ia[p], y]
            for x in range(margin, s - margin):
                for c in range(channels):
                    v = (1 - wx[x]) * tmp[lx[x] + c] + wx[x] * tmp[lx[x] + channels + c]
                    total += abs(row[x * channels + c] - v)
        out[p] = total * norm
    return out


def warped_mean_abs(a, b, pos_y, pos_x, margin, ia=None, ib=None):
    """Mean |a - b warped to (pos_y, pos_x)| per pair over the window ``margin`` inside the
    frame: ``a`` against ``bilinear_warp(b, pos_y, pos_x)`` in one pass;
    ``ia`` / ``ib`` as in :func:`best_whole_shift`."""
    ia = _indices(ia, len(a))
    ib = _indices(ib, len(ia))
    a_flat, channels = _flat(a)
    return _warped_mean_abs(a_flat, ia, _flat(b)[0], ib, np.ascontiguousarray(pos_y, np.float32),
                            np.ascontiguousarray(pos_x, np.float32), margin, channels)


@numba.njit(cache=True, nogil=True)
def _window_stats(x, p, margin, s, channels):
    """Mean and spread (std, floored at 1e-3) of image p's window (x: (P, S, S * C))."""
    total = 0.0
    count = 0
    for y in range(margin, s - margin):
        for i in range(margin * channels, (s - margin) * channels):
            total += x[p, y, i]
            count += 1
    mean = total / count
    sq = 0.0
    for y in range(margin, s - margin):
        for i in range(margin * channels, (s - margin) * channels):
            d = x[p, y, i] - mean
            sq += d * d
    return mean, max(np.sqrt(sq / count), 1e-3)


@numba.njit(cache=True, nogil=True)
def _standardised_cost(a_std, b, margin, channels):
    """Mean squared difference per pair between a's standardised window ``a_std``
    (P, W, W * C) and b's window standardised (zero mean, unit spread)."""
    p_count, s, _ = b.shape
    out = np.empty(p_count, np.float32)
    for p in range(p_count):
        mean, spread = _window_stats(b, p, margin, s, channels)
        total = 0.0
        for y in range(margin, s - margin):
            for i in range(margin * channels, (s - margin) * channels):
                d = a_std[p, y - margin, i - margin * channels] - (b[p, y, i] - mean) / spread
                total += d * d
        out[p] = total / ((s - 2 * margin) * (s - 2 * margin) * channels)
    return out


@numba.njit(cache=True, nogil=True)
def _normal_equations(a_std, b, grid, margin, channels):
    """Gauss-Newton system (H (P, 4, 4), g (P, 4)) of (ty, tx, sy, sx) for standardised windows:
    per pixel the Jacobian row (gy, gx, gy * grid_y, gx * grid_x) of b's standardised window
    (central-difference gradients, all inside the frame since margin >= 1), the residual
    a_std - b_std; H = J^T J + 1e-3 I, g = J^T r. The pass replaces the (P, W^2 C, 4)
    Jacobian numpy had to build."""
    p_count, s, _ = b.shape
    h = np.zeros((p_count, 4, 4), np.float32)
    g = np.zeros((p_count, 4), np.float32)
    for p in range(p_count):
        mean, spread = _window_stats(b, p, margin, s, channels)
        inv = 1.0 / spread
        h00 = h01 = h02 = h03 = h11 = h12 = h13 = h22 = h23 = h33 = 0.0
        g0 = g1 = g2 = g3 = 0.0
        for y in range(margin, s - margin):
            gy_pos = grid[y - margin]
            for x in range(margin, s - margin):
                gx_pos = grid[x - margin]
                for c in range(channels):
                    i = x * channels + c
                    j0 = 0.5 * (b[p, y + 1, i] - b[p, y - 1, i]) * inv
                    j1 = 0.5 * (b[p, y, i + channels] - b[p, y, i - channels]) * inv
                    j2 = j0 * gy_pos
                    j3 = j1 * gx_pos
                    r = a_std[p, y - margin, i - margin * channels] - (b[p, y, i] - mean) * inv
                    h00 += j0 * j0
                    h01 += j0 * j1
                    h02 += j0 * j2
                    h03 += j0 * j3
                    h11 += j1 * j1
                    h12 += j1 * j2
                    h13 += j1 * j3
                    h22 += j2 * j2
                    h23 += j2 * j3
                    h33 += j3 * j3
                    g0 += j0 * r
                    g1 += j1 * r
                    g2 += j2 * r
                    g3 += j3 * r
        upper = ((0, 0, h00), (0, 1, h01), (0, 2, h02), (0, 3, h03), (1, 1, h11), (1, 2, h12),
                 (1, 3, h13), (2, 2, h22), (2, 3, h23), (3, 3, h33))
        for u, v, value in upper:
            h[p, u, v] = value
            h[p, v, u] = value
        for u in range(4):
            h[p, u, u] += 1e-3
        g[p, 0], g[p, 1], g[p, 2], g[p, 3] = g0, g1, g2, g3
    return h, g


def standardised_cost(a_std, b, margin):
    """Mean squared difference between ``a_std`` (P, W, W, C), a's standardised window, and
    the window ``margin`` inside b (P, S, S, C) standardised the same way."""
    a_flat, channels = _flat(a_std)
    return _standardised_cost(a_flat, _flat(b)[0], margin, channels)


def normal_equations(a_std, b, grid, margin):
    """(H, g) of one Gauss-Newton step, see :func:`_normal_equations`."""
    a_flat, channels = _flat(a_std)
    return _normal_equations(a_flat, _flat(b)[0], np.ascontiguousarray(grid, np.float64), margin, channels)


@numba.njit(cache=True, nogil=True, fastmath=True)
def _gain_fitted_difference(a, bw, mask, channels, residual):
    p_count, s, row = a.shape
    keep = residual.shape[0] == p_count
    out = np.empty(p_count, np.float32)
    for p in range(p_count):
        # one pass of sums (float64): the means, and the centred cross and square sums from them
        n = sa = sb = sab = sbb = 0.0
        for y in range(s):
            for x in range(s):
                if mask[p, y, x] > 0:
                    for c in range(channels):
                        va = a[p, y, x * channels + c]
                        vb = bw[p, y, x * channels + c]
                        sa += va
                        sb += vb
                        sab += va * vb
                        sbb += vb * vb
                    n += channels
        n = max(n, 1.0)
        ma, mb = sa / n, sb / n
        sab -= n * ma * mb
        sbb = max(sbb - n * mb * mb, 0.0)
        gain = min(max(sab / max(sbb, 1e-6), 0.5), 2.0)
        total = 0.0
        for y in range(s):
            for x in range(s):
                here = 0.0
                if mask[p, y, x] > 0:
                    for c in range(channels):
                        here += abs((a[p, y, x * channels + c] - ma) - gain * (bw[p, y, x * channels + c] - mb))
                total += here
                if keep:
                    residual[p, y, x] = here / channels
        out[p] = total / n
    return out


def gain_fitted_difference(a, bw, mask, with_residual: bool = False):
    """Mean |a - (g bw + o)| over the pixels where ``mask`` (P, S, S) is set, the gain g
    (clipped to [0.5, 2]) and offset o (shared by all channels) fitted by least squares
    there: :func:`curator.checks.align.masked_difference`'s arithmetic in one pass. Returns
    (mean (P,), the residual averaged over channels (P, S, S), 0 outside the mask, or None)."""
    a_flat, channels = _flat(a)
    p_count, s = a.shape[0], a.shape[1]
    residual = np.zeros((p_count, s, s) if with_residual else (0, 1, 1), np.float32)
    mean = _gain_fitted_difference(a_flat, _flat(bw)[0], np.ascontiguousarray(mask, np.float32), channels, residual)
    return mean, (residual if with_residual else None)
