"""The projector controls above the 2D map (which embedding, which algorithm with its
parameters, colour by which column) and the query string that keeps the view in a link.

Session-state keys (``P`` = page prefix): ``P_map_space``, ``P_map_method``, ``P_map_color``,
``P_map_nn``, ``P_map_md``, ``P_map_perp``, ``P_map_pc1``, ``P_map_pc2``. The query string
carries them as ``embedding``, ``projection``, ``color``, ``n_neighbors``, ``min_dist``,
``perplexity``, ``components`` (``1,2``), with the filters (``class``, ``issue``, ``tag``,
``path``, repeated for several values) and on Data Quality the ``metric``: so
``/data-quality?projection=tsne&color=brightness`` opens the t-SNE map coloured by brightness.
"""

from __future__ import annotations

import json
import time

import numpy as np
import streamlit as st

from .. import projector as PJ
from ..errors import CuratorError
from . import data as D
from . import figures

# query name -> (session key suffix, kind); kinds: str, int, float, list, pcs
MAP_FIELDS = {
    "embedding": ("map_space", "str"),
    "projection": ("map_method", "str"),
    "color": ("map_color", "str"),
    "n_neighbors": ("map_nn", "int"),
    "min_dist": ("map_md", "float"),
    "perplexity": ("map_perp", "float"),
    "hover": ("map_hover", "bool"),
}
FILTER_FIELDS = {"class": ("classes", "list"), "issue": ("issues", "list"), "tag": ("tags", "list"), "path": ("path", "str")}
PAGE_FIELDS = {"dq": {"metric": ("metric", "str")}}


def _fields(page: str) -> dict:
    return {**MAP_FIELDS, **FILTER_FIELDS, **PAGE_FIELDS.get(page, {})}


def _parse(kind: str, values: list[str]):
    if kind == "list":
        return [v for v in values if v != ""]
    value = values[-1]
    if kind == "int":
        return int(float(value))
    if kind == "float":
        return float(value)
    if kind == "bool":
        return value.lower() in ("1", "true", "yes", "on")
    return value


def apply_query(d: D.ExplorerData, page: str) -> None:
    """Copy the URL's view into the page's widgets, once per distinct query string (the page
    rewrites the query as the user changes the view, so its own writes are not re-applied).
    Classes the project does not have are dropped; other unknown values fall back later."""
    query = {k: st.query_params.get_all(k) for k in st.query_params.keys()}
    sig = json.dumps(query, sort_keys=True)
    if st.session_state.get(f"_{page}_query_sig") == sig:
        return
    st.session_state[f"_{page}_query_sig"] = sig
    for name, (suffix, kind) in _fields(page).items():
        if name not in query or not query[name]:
            continue
        try:
            value = _parse(kind, query[name])
            if name == "class":
                value = [c for c in value if c in d.label_values]
            st.session_state[f"{page}_{suffix}"] = value
        except ValueError:
            st.toast(f"ignored {name}={query[name][-1]!r} in the link (not a number)")
    if "components" in query:
        try:
            a, b = (int(v) for v in query["components"][-1].split(",")[:2])
            st.session_state[f"{page}_map_pc1"], st.session_state[f"{page}_map_pc2"] = a, b
        except ValueError:
            st.toast("ignored components in the link (use e.g. components=1,2)")


def write_query(page: str, spec: PJ.MapSpec) -> None:
    """Put the current view in the URL (no rerun)."""
    state = st.session_state
    out: dict = {"embedding": spec.space, "projection": spec.method, "color": state.get(f"{page}_map_color")}
    out.update({k: f"{v:g}" for k, v in spec.params().items() if k != "components"})
    if state.get(f"{page}_map_hover"):
        out["hover"] = "1"
    if spec.method == "pca":
        out["components"] = "{},{}".format(*spec.components)
    for name, (suffix, kind) in {**FILTER_FIELDS, **PAGE_FIELDS.get(page, {})}.items():
        value = state.get(f"{page}_{suffix}")
        if value:
            out[name] = [str(v) for v in value] if kind == "list" else str(value)
    out = {k: v for k, v in out.items() if v not in (None, "", [])}
    current = {k: st.query_params.get_all(k) for k in st.query_params.keys()}
    wanted = {k: v if isinstance(v, list) else [v] for k, v in out.items()}
    if current != wanted:
        st.query_params.from_dict(out)
    st.session_state[f"_{page}_query_sig"] = json.dumps(wanted, sort_keys=True)


def color_options(d: D.ExplorerData) -> list[str]:
    opts = ["class"]
    if d.labelled.any():
        opts.append("label")
    return opts + ["issue", "tag"] + d.available_metrics()


def _space_label(d: D.ExplorerData, name: str) -> str:
    score = (d.analysis.get("map_space_agreement") or {}).get(name)
    text = PJ.SPACE_LABELS[name]
    return f"{text} · 10-NN agreement {score:.2f}" if score is not None else text


def controls(d: D.ExplorerData, page: str, default_color: str = "class") -> tuple[PJ.MapSpec, str]:
    """Embedding, projection (with its parameters) and colour-by widgets; the requested spec
    and colouring. Values from the link or session that this project cannot show fall back
    to the defaults."""
    default = d.default_map_spec()
    spaces = d.map_spaces() or [default.space]
    colors = color_options(d)
    state = st.session_state
    fixes = {f"{page}_map_space": (spaces, default.space), f"{page}_map_method": (PJ.METHODS, default.method),
             f"{page}_map_color": (colors, default_color if default_color in colors else "class")}
    for key, (allowed, fallback) in fixes.items():
        if state.get(key) not in allowed:
            state[key] = fallback
    for key, value in ((f"{page}_map_nn", default.n_neighbors), (f"{page}_map_md", default.min_dist),
                       (f"{page}_map_perp", default.perplexity), (f"{page}_map_pc1", 1), (f"{page}_map_pc2", 2)):
        if state.get(key) is None:
            state[key] = value
    cols = st.columns([3, 3, 3, 1.4], vertical_alignment="bottom")
    cols[0].selectbox("Embedding", spaces, key=f"{page}_map_space", format_func=lambda s: _space_label(d, s),
                      help="features the map is drawn from; the default is the one whose nearest neighbours agree "
                           "most often with the labels (measured by analyze)")
    method = cols[1].segmented_control("Projection", list(PJ.METHODS), key=f"{page}_map_method", required=True,
                                       format_func=PJ.METHOD_LABELS.get)
    cols[2].selectbox("Colour by", colors, key=f"{page}_map_color", format_func=figures.color_label)
    with cols[3].popover("Parameters", icon=":material/tune:", width="stretch"):
        if method == "umap":
            st.number_input("n_neighbors", 2, 200, step=1, key=f"{page}_map_nn",
                            help="larger = more global structure")
            st.number_input("min_dist", 0.0, 1.0, step=0.05, key=f"{page}_map_md", format="%.2f",
                            help="smaller = tighter clusters")
        elif method == "tsne":
            st.number_input("perplexity", 2.0, 100.0, step=5.0, key=f"{page}_map_perp",
                            help="about the number of neighbours each point keeps close")
        else:
            st.number_input("x: component", 1, 50, step=1, key=f"{page}_map_pc1")
            st.number_input("y: component", 1, 50, step=1, key=f"{page}_map_pc2")
    st.toggle("Image on hover", key=f"{page}_map_hover",
              help="hovering a point shows its image, label and issues (box and lasso selection still narrow the grid)")
    try:
        spec = PJ.MapSpec(method=method, space=state[f"{page}_map_space"], n_neighbors=state[f"{page}_map_nn"],
                          min_dist=state[f"{page}_map_md"], perplexity=state[f"{page}_map_perp"],
                          components=(state[f"{page}_map_pc1"], state[f"{page}_map_pc2"]))
    except CuratorError as exc:
        st.warning(f"{exc}; showing the default map")
        spec = default
    return spec, state[f"{page}_map_color"]


def _minutes(seconds: float) -> str:
    return f"about {seconds / 60:.0f} min" if seconds >= 90 else f"about {seconds:.0f} s"


def resolve(d: D.ExplorerData, page: str, spec: PJ.MapSpec) -> PJ.MapSpec:
    """The map to draw: ``spec`` when known or computed now (with a progress bar), else the
    default map while a slow computation waits for the user's go-ahead."""
    if d.map_coords(spec) is not None:
        return spec
    n = int(d.readable.sum())
    expected = PJ.expected_seconds(spec.method, n)
    if PJ.too_slow(spec.method, n) and st.session_state.get(f"{page}_map_go") != spec.key():
        with st.container(border=True):
            st.warning(f"{spec.describe()} of {n:,} images takes {_minutes(expected)} on this machine. "
                       "The default map is shown until you start it.", icon=":material/hourglass:")
            if st.button(f"Compute it ({_minutes(expected)})", key=f"{page}_map_start", icon=":material/play_arrow:"):
                st.session_state[f"{page}_map_go"] = spec.key()
                st.rerun()
        return d.default_map_spec()
    bar = st.progress(0.0, text=f"Computing {spec.describe()} for {n:,} images ({_minutes(expected)} expected)…")
    start = time.perf_counter()

    def progress(fraction: float, text: str) -> None:
        bar.progress(float(np.clip(fraction, 0.0, 1.0)),
                     text=f"Computing {spec.describe()}: {text} · {time.perf_counter() - start:.0f} s")

    d.compute_map(spec, progress=progress)
    bar.empty()
    return spec


def tag_of(d: D.ExplorerData, tags: dict[int, list[str]]) -> np.ndarray:
    out = np.full(d.n, "(untagged)", dtype=object)
    for i, names in tags.items():
        if 0 <= i < d.n and names:
            out[i] = sorted(names)[0]
    return out
