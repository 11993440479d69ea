"""Stage 5: the 2D maps. Drawn on the feature space whose neighbours agree most with the
labels (ImageNet features of 8x8 digits separate them far worse than pixels); beyond
``projector.MAP_SAMPLE_LIMIT`` points UMAP / t-SNE are fitted on a sample and every other
point placed from its neighbours (projector.extend_map), reusing a neighbour graph already
searched for that space where there is one."""

from __future__ import annotations

import time

import numpy as np

from .. import projector
from ..projector import MapSpec, choose_space, compute_map, full_map


def draw_maps(spaces, base: str, labels: np.ndarray, methods: list, n: int, known: dict, timings: dict):
    """({method: (n, 2) map}, {"space": name, "agreement": {...}}). ``known``: {space name:
    (idx, sim)} neighbour graphs already searched (reused by the map and its extension)."""
    map_space, agreement = choose_space(spaces, labels, [base, "pixels", f"{base}+pixels"])
    maps = {}
    for method in methods:
        spec = MapSpec(method=method, space=map_space)
        t = time.perf_counter()
        maps[method] = full_map(n, spaces.readable, compute_map(spec, spaces[map_space], neighbours=known.get(map_space)))
        timings[f"projection_{method}"] = round(time.perf_counter() - t, 3)
    return maps, {"space": map_space, "agreement": agreement}


def known_graphs(label_space: str, label_nbrs, base: str, nbrs, n: int) -> dict:
    """The neighbour graphs each map space can reuse. Below the sample limit only the label
    space's (the same space the map is drawn in, as always); beyond it the full-dimension
    embedding and pixel graphs too, which the extension to unsampled points only needs to be
    roughly right."""
    known = {label_space: label_nbrs}
    if n > projector.MAP_SAMPLE_LIMIT:
        known.setdefault(base, (nbrs.idx, nbrs.sim))
        known.setdefault("pixels", (nbrs.pixel_idx, nbrs.pixel_sim))
    return known
