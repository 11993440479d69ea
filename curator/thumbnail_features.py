"""Features of the stored colour thumbnails for neighbour searches where the CNN is blind:
brightness-free pixels (copies of tiny images stay close) and their Fourier magnitudes (a
shifted copy stays close). Used by analyze's near-duplicate candidates and compare's leaks."""

from __future__ import annotations

import numpy as np


def pixel_features(thumbs: np.ndarray, side: int = 16) -> np.ndarray:
    """Thumbnails area-averaged to ``side`` px with each image's brightness removed (analyze's
    thumbnail space at half resolution: copies stay close, and the PCA fit is 16x cheaper)."""
    x = np.asarray(thumbs)
    if x.ndim == 3:
        x = x[..., None]
    n, s = len(x), x.shape[1]
    f = max(s // side, 1)
    # the f x f blocks summed as f^2 strided slices (exactly, in integers for 8-bit thumbnails):
    # numpy's mean over the two inner axes of a 6-d float reshape walked memory 4x slower
    # (5 of the 7.5 s of the shift-free neighbours at 50k images)
    exact = x.dtype == np.uint8 and f * f <= 256
    out = np.zeros((n, s // f, s // f, x.shape[3]), np.uint16 if exact else np.float32)
    for i in range(f):
        for j in range(f):
            out += x[:, i : s // f * f : f, j : s // f * f : f]
    out = out.reshape(n, -1).astype(np.float32) / np.float32(f * f)
    out -= out.mean(axis=1, keepdims=True)
    return out


def shift_free_features(pixels: np.ndarray, side: int = 16) -> np.ndarray:
    """Magnitudes of the 2D Fourier transform of the brightness-free luminance thumbnail
    (``pixels``: :func:`pixel_features`): the same for a picture and a shifted copy of it,
    which pixels and CNN features of tiny images are not (a 1-px shift of an 8-px digit moves
    it by an eighth)."""
    x = pixels.reshape(len(pixels), side, side, -1).mean(axis=3)
    spec = np.abs(np.fft.rfft2(x, axes=(1, 2)))
    spec[:, 0, 0] = 0.0
    return spec.reshape(len(pixels), -1).astype(np.float32)
