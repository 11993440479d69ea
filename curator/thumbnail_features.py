"""Features of the stored colour thumbnails for neighbour searches where the CNN is blind:
brightness-free pixels (copies of tiny images stay close) and their Fourier magnitudes (a
shifted copy stays close). Used by analyze's near-duplicate candidates and compare's leaks."""

from __future__ import annotations

import numpy as np


def pixel_features(thumbs: np.ndarray, side: int = 16) -> np.ndarray:
    """Thumbnails area-averaged to ``side`` px with each image's brightness removed (analyze's
    thumbnail space at half resolution: copies stay close, and the PCA fit is 16x cheaper)."""
    x = np.asarray(thumbs, dtype=np.float32)
    n, s = len(x), x.shape[1]
    f = max(s // side, 1)
    x = x[:, : s // f * f, : s // f * f].reshape(n, s // f, f, s // f, f, -1).mean(axis=(2, 4)).reshape(n, -1)
    x -= x.mean(axis=1, keepdims=True)
    return x


def shift_free_features(pixels: np.ndarray, side: int = 16) -> np.ndarray:
    """Magnitudes of the 2D Fourier transform of the brightness-free luminance thumbnail
    (``pixels``: :func:`pixel_features`): the same for a picture and a shifted copy of it,
    which pixels and CNN features of tiny images are not (a 1-px shift of an 8-px digit moves
    it by an eighth)."""
    x = pixels.reshape(len(pixels), side, side, -1).mean(axis=3)
    spec = np.abs(np.fft.rfft2(x, axes=(1, 2)))
    spec[:, 0, 0] = 0.0
    return spec.reshape(len(pixels), -1).astype(np.float32)
