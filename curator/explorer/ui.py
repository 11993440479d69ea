"""Shared Streamlit pieces of the explorer: project data, the 2D map with box/lasso selection,
the metric histogram, the paginated image grid, tagging and CSV downloads.

Session-state keys a page (or a test) may set, ``P`` being the page prefix (``dq``, ``lq``,
``tags``): ``P_selection`` (item ids picked in the 2D map), ``P_similar`` (item id whose
nearest neighbours are shown), ``picked`` (item ids ticked in the grid, shared by all pages),
``lq_pair`` ([given, suggested] chosen in the class-pair table).
"""

from __future__ import annotations

import base64
import functools
import html
import json
import math
import os
import re
import sqlite3
import sys
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import streamlit as st

from .. import errors
from ..errors import CuratorError
from ..project import DATABASE
from . import APP_PATH, figures
from . import data as D

PROJECT_ENV = "CURATOR_PROJECT"
PAGES: dict = {}  # filled by app.py on every run: name -> st.Page
PLOT_CONFIG = {
    "displaylogo": False,
    "scrollZoom": True,
    "modeBarButtonsToRemove": ["toImage", "autoScale2d", "toggleSpikelines", "hoverClosestGl2d"],
}
GRID_COLUMNS = 6

CSS = """<style>
.cur-card{font-size:0.8rem;line-height:1.35;color:inherit}
.cur-card img{width:100%;aspect-ratio:1/1;object-fit:contain;background:#f1f3f5;border-radius:4px;display:block}
.cur-card .cur-hd{margin-top:4px;font-size:0.85rem}
.cur-card.cur-query img{outline:3px solid #3b5bdb;outline-offset:-3px}
.cur-lbl{background:#edf2ff;color:#364fc7;border-radius:4px;padding:0 5px;font-family:ui-monospace,monospace;font-size:0.8rem}
.cur-muted{color:#868e96}
.cur-b{display:inline-block;border-radius:6px;padding:0 6px;margin:3px 3px 0 0;font-size:0.72rem;white-space:nowrap}
.cur-b.severe{background:#ffe3e3;color:#c92a2a}
.cur-b.moderate{background:#fff4e6;color:#d9480f}
.cur-b.tag{background:#e7f5ff;color:#1864ab}
.cur-b.keep{background:#d3f9d8;color:#2b8a3e;font-weight:600}
.cur-b.dup{background:#f1f3f5;color:#495057}
.cur-b.err{background:#f1f3f5;color:#495057;white-space:normal}
</style>"""


# ---------------------------------------------------------------------------------- page icon
@functools.lru_cache(maxsize=1)
def page_icon():
    """The browser-tab icon, drawn here: Streamlit serves an image icon itself, whereas an emoji
    or ``:material/...:`` icon makes the browser fetch it from a public CDN on every visit."""
    from PIL import Image, ImageDraw

    img = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    draw.rounded_rectangle((0, 0, 63, 63), radius=12, fill="#3b5bdb")
    for x in (12, 35):
        for y in (12, 35):
            draw.rounded_rectangle((x, y, x + 16, y + 16), radius=3, fill="#ffffff" if (x, y) != (35, 35) else "#ffa8a8")
    return img


# ---------------------------------------------------------------------------------- project & data
def project_root() -> Path:
    """The project shown: $CURATOR_PROJECT, else ``streamlit run app.py -- PROJECT``."""
    root = os.environ.get(PROJECT_ENV)
    if not root and len(sys.argv) > 1 and Path(sys.argv[0]).name == APP_PATH.name:
        root = sys.argv[1]
    if not root:
        raise CuratorError("no project given: run `curator visualize PROJECT`")
    return Path(root).expanduser().absolute()


def data() -> D.ExplorerData:
    """The project's data for its current analysis: loaded once per server process and
    analysis version (manifest ``finished`` stamp + file mtimes), never by hashing arrays."""
    root = project_root()
    if D.is_loaded(root):
        return D.load(root)
    with st.spinner("Loading the project…"):
        return D.load(root)


def damaged_errors() -> tuple[type[BaseException], ...]:
    """What reading a damaged ``curator.db`` raises: sqlite's error, pandas' wrapper of it, and
    ``curator.errors.DamagedProject`` where the store defines that."""
    found = [sqlite3.DatabaseError, pd.errors.DatabaseError]
    damaged = getattr(errors, "DamagedProject", None)
    if isinstance(damaged, type) and issubclass(damaged, BaseException):
        found.append(damaged)
    return tuple(found)


def damaged_message(exc: BaseException) -> str:
    """One line for the page (no traceback): the database is damaged, and what to do."""
    if isinstance(exc, CuratorError):
        return md(exc)
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return (f"The project database {md(project_root() / DATABASE)} is damaged ({md(reason)}). Re-import the images "
            "into a new project folder (`curator import SOURCE --out NEW_PROJECT`), then run `curator analyze NEW_PROJECT`.")


@st.cache_data(max_entries=64, show_spinner=False)
def _tags(root: str, version: tuple, nonce: int) -> pd.DataFrame:
    return D.read_tags(root)


def tags_frame(d: D.ExplorerData) -> pd.DataFrame:
    """item_id, tag rows; re-read whenever the database (or its WAL) changes."""
    return _tags(str(d.root), D.tags_version(d.root), st.session_state.get("_tags_nonce", 0))


def tags_by_item(d: D.ExplorerData) -> dict[int, list[str]]:
    df = tags_frame(d)
    out: dict[int, list[str]] = {}
    for i, t in zip(df["item_id"].tolist(), df["tag"].tolist()):
        out.setdefault(int(i), []).append(t)
    return out


def tagged_ids(d: D.ExplorerData, tags: Sequence[str]) -> np.ndarray | None:
    if not tags:
        return None
    df = tags_frame(d)
    return df.loc[df["tag"].isin(list(tags)), "item_id"].to_numpy(dtype=np.int64)


def bump_tags() -> None:
    st.session_state["_tags_nonce"] = st.session_state.get("_tags_nonce", 0) + 1


def init_state(**defaults) -> None:
    """Give widgets their first value through session state (never also through ``default=``,
    which Streamlit warns about when another page has set the key)."""
    for key, value in defaults.items():
        if st.session_state.get(key) is None:
            st.session_state[key] = value


_MD_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")


def md(text) -> str:
    """User text (class names, tags, paths, the project name) for any Streamlit element that
    renders Markdown (markdown, caption, title, metric values, button labels, alerts), shown
    literally: every ASCII punctuation mark gets a backslash, which CommonMark allows for each
    of them and which also stops Streamlit's ``:red[..]``, ``:material/..:``, ``:emoji:`` and
    ``$math$`` extensions (so ``![b](http://host/x.png)`` cannot load an image); line breaks
    become spaces."""
    return _MD_PUNCTUATION.sub(r"\\\1", " ".join(str(text).splitlines()))


def esc(text) -> str:
    return html.escape(str(text), quote=True)


# ---------------------------------------------------------------------------------- the 2D map
def _parse_selection(event) -> tuple[np.ndarray | None, tuple]:
    sel = None
    if event:
        sel = event.get("selection") if hasattr(event, "get") else getattr(event, "selection", None)
    if not sel:
        return None, ()
    points = sel.get("points") or []
    geometry = (json.dumps(sel.get("box") or [], sort_keys=True, default=str),
                json.dumps(sel.get("lasso") or [], sort_keys=True, default=str))
    if not points and geometry == ("[]", "[]"):
        return None, ()
    ids = []
    for p in points:
        cd = p.get("customdata")
        if isinstance(cd, (list, tuple)):
            cd = cd[0] if cd else None
        if cd is not None:
            ids.append(int(cd))
    arr = np.unique(np.asarray(ids, dtype=np.int64))
    return arr, (geometry, len(arr), int(arr.sum()))


def _map_key(page: str) -> str:
    """The map widget's key: new after "clear selection" and for every other map or colouring
    (a selection made on one map means nothing on another)."""
    return f"{page}_plot_{st.session_state.get(f'{page}_plot_nonce', 0)}{st.session_state.get(f'{page}_map_id', '')}"


def set_map(page: str, spec, color: str) -> None:
    """Record which map and colouring the page draws (before :func:`map_selection`)."""
    hover = "_hover" if st.session_state.get(f"{page}_map_hover") else ""
    st.session_state[f"{page}_map_id"] = f"_{spec.key()}_{color}{hover}"


@functools.lru_cache(maxsize=1)
def _hover_component():
    import streamlit.components.v1 as components

    return components.declare_component("curator_hover_map", path=str(Path(__file__).with_name("hover_map")))


def _figure_json(d: D.ExplorerData, fig, mode: str, spec) -> str:
    if mode == "tag":
        return fig.to_json()
    return d.memo(("scatter_json", mode, spec), fig.to_json)


def _update_selection(page: str, event) -> np.ndarray | None:
    if isinstance(event, dict) and "seq" in event:  # the hover map component: {ids, seq, at}
        ids = None if event.get("ids") is None else np.unique(np.asarray(event["ids"], dtype=np.int64))
        sig = ("hover", event.get("seq"), event.get("at")) if ids is not None else ()
    else:
        ids, sig = _parse_selection(event)
    sig_key, sel_key = f"{page}_plot_sig", f"{page}_selection"
    if sig != st.session_state.get(sig_key, ()):
        st.session_state[sig_key] = sig
        if ids is None:
            st.session_state.pop(sel_key, None)
        else:
            st.session_state[sel_key] = ids.tolist()
    sel = st.session_state.get(sel_key)
    return None if sel is None else np.asarray(sel, dtype=np.int64)


def map_selection(page: str) -> np.ndarray | None:
    """Item ids selected with box/lasso in the page's 2D map (None = no selection), read from
    the map's widget state before the map is drawn. The ids are kept in
    ``st.session_state[f"{page}_selection"]``, so a test can inject a selection."""
    try:
        event = st.session_state[_map_key(page)]
    except KeyError:
        event = None
    return _update_selection(page, event)


def draw_map(d: D.ExplorerData, page: str, mode: str = "class", spec=None) -> np.ndarray | None:
    """Draw the 2D map (box/lasso selection reruns the app). Pages draw it into a slot at the
    end of the script while a selection is active: Streamlit deep-copies a selection of many
    points on every run, and that should not delay the grid. ``spec``: which map (default
    ``arrays/projection.npy``); ``mode``: the colouring (see :func:`figures.scatter`)."""
    tag_of = None
    if mode == "tag":
        from .projector_ui import tag_of as first_tags

        tag_of = first_tags(d, tags_by_item(d))
    if st.session_state.get(f"{page}_map_hover"):
        # image on hover: plotly.js in a component; thumbnails fetched from the app per hover
        fig = figures.scatter(d, mode, spec, tag_of)
        text = _figure_json(d, fig, mode, spec)
        value = _hover_component()(figure=text, fig_id=f"{st.session_state.get(f'{page}_map_id', '')}-{len(text)}-{hash(text)}",
                                   height=480, config={**PLOT_CONFIG, "displaylogo": False}, key=_map_key(page), default=None)
        return _update_selection(page, value)
    event = st.plotly_chart(figures.scatter(d, mode, spec, tag_of), key=_map_key(page), on_select="rerun",
                            selection_mode=("box", "lasso"), config=PLOT_CONFIG, width="stretch")
    return _update_selection(page, event)


def clear_selection(page: str) -> None:
    st.session_state.pop(f"{page}_selection", None)
    st.session_state[f"{page}_plot_sig"] = ()
    st.session_state[f"{page}_plot_nonce"] = st.session_state.get(f"{page}_plot_nonce", 0) + 1


# ---------------------------------------------------------------------------------- cards & grid
def img_tag(d: D.ExplorerData, item_id: int) -> str:
    data, mime = D.thumbnail(d, int(item_id))
    return f'<img src="data:{mime};base64,{base64.b64encode(data).decode()}" alt="#{int(item_id)}">'


def badges_html(d: D.ExplorerData, item_id: int, tags: dict[int, list[str]] | None = None, skip: Sequence[str] = ()) -> str:
    i = int(item_id)
    parts = []
    for info in sorted(d.item_issues.get(i, []), key=lambda x: -x.score):
        if info.issue in skip:
            continue
        parts.append(f'<span class="cur-b {esc(info.severity)}" title="{esc(D.ISSUE_HELP.get(info.issue, ""))}">'
                     f'{esc(info.issue)} {info.score:.2f}</span>')
        if info.keep:
            parts.append('<span class="cur-b keep">keep</span>')
    if not d.readable[i] and d.errors[i]:
        parts.append(f'<span class="cur-b err">{esc(str(d.errors[i])[:80])}</span>')
    for t in (tags or {}).get(i, []):
        parts.append(f'<span class="cur-b tag" title="tag">tag: {esc(t)}</span>')
    return "".join(parts)


def card_html(d: D.ExplorerData, item_id: int, *, metric: str | None = None, tags=None, extra: str = "",
              caption: str | None = None, skip: Sequence[str] = (), css: str = "") -> str:
    """One image card: thumbnail, id, label, metric value, extra lines, issue and tag badges."""
    i = int(item_id)
    label = f'<span class="cur-lbl">{esc(d.labels[i])}</span>' if d.labelled[i] else '<span class="cur-muted">unlabelled</span>'
    lines = [f'<div class="cur-hd"><b>#{i}</b> · {label}</div>']
    if caption:
        lines.append(f'<div class="cur-muted">{esc(caption)}</div>')
    if metric is not None:
        m = D.METRICS[metric]
        lines.append(f'<div><span class="cur-muted">{esc(m.label.lower())}</span> <b>{esc(m.format(d.metric(metric)[i]))}</b></div>')
    if extra:
        lines.append(extra)
    badges = badges_html(d, i, tags, skip)
    if badges:
        lines.append(f"<div>{badges}</div>")
    title = esc(d.paths[i])
    return f'<div class="cur-card {css}" title="{title}">{img_tag(d, i)}{"".join(lines)}</div>'


def _toggle_pick(item_id: int, key: str) -> None:
    picked = set(st.session_state.get("picked", []))
    if st.session_state.get(key):
        picked.add(item_id)
    else:
        picked.discard(item_id)
    st.session_state["picked"] = sorted(picked)


def card(d: D.ExplorerData, item_id: int, page: str, *, metric: str | None = None, tags=None,
         extra: Callable[[int], str] | None = None, actions: bool = True, caption: str | None = None,
         skip: Sequence[str] = (), ns: str | None = None) -> None:
    """A card plus its actions: Pick (for tagging) and Similar (nearest neighbours, shown by
    the page's :func:`similar_panel`). ``ns`` prefixes the widget keys (default: ``page``)."""
    i = int(item_id)
    ns = ns or page
    st.html(card_html(d, i, metric=metric, tags=tags, extra=extra(i) if extra else "", caption=caption, skip=skip))
    if actions:
        key = f"{ns}_pick_{i}"
        st.session_state[key] = i in set(st.session_state.get("picked", []))
        st.checkbox("Pick", key=key, on_change=_toggle_pick, args=(i, key))
        if st.button("Similar", key=f"{ns}_sim_{i}", icon=":material/image_search:", type="tertiary",
                     disabled=d.neighbors.shape[1] == 0):
            st.session_state[f"{page}_similar"] = i
            st.rerun()


def _view_signature(ids: np.ndarray) -> str:
    if not len(ids):
        return "0"
    head = np.asarray(ids[:4096], dtype=np.int64)
    return f"{len(ids)}-{int(ids[0])}-{int(ids[-1])}-{int((head * np.arange(1, len(head) + 1)).sum()) % 1_000_003}"


def image_grid(d: D.ExplorerData, ids: np.ndarray, page: str, *, metric: str | None = None,
               extra: Callable[[int], str] | None = None, skip: Sequence[str] = (),
               empty: str = "No images match the current filters.") -> np.ndarray:
    """A paginated grid of cards; returns the ids on the shown page."""
    ids = np.asarray(ids, dtype=np.int64)
    if not len(ids):
        st.info(empty)
        return ids
    tags = tags_by_item(d)
    init_state(**{f"{page}_page_size": 24})
    with st.container(horizontal=True, vertical_alignment="center"):
        size = st.selectbox("Per page", [12, 24, 48, 96], key=f"{page}_page_size", label_visibility="collapsed",
                            width=120, format_func=lambda n: f"{n} per page")
        pages = max(1, math.ceil(len(ids) / size))
        page_no = st.pagination(pages, key=f"{page}_pg_{size}_{_view_signature(ids)}", max_visible_pages=9) if pages > 1 else 1
        st.caption(f"{(page_no - 1) * size + 1:,}–{min(page_no * size, len(ids)):,} of {len(ids):,}")
    shown = ids[(page_no - 1) * size : page_no * size]
    grid = st.grid(GRID_COLUMNS, gap="small", border=True, min_column_width=150)
    for i in shown:
        with grid.cell():
            card(d, int(i), page, metric=metric, tags=tags, extra=extra, skip=skip)
    return shown


def similar_panel(d: D.ExplorerData, page: str, metric: str | None = None) -> None:
    """The nearest neighbours (arrays/neighbors.npy) of the image whose Similar was clicked."""
    key = f"{page}_similar"
    anchor = st.session_state.get(key)
    if anchor is None or not (0 <= int(anchor) < d.n):
        return
    anchor = int(anchor)
    nbrs = d.similar(anchor)
    with st.container(border=True):
        with st.container(horizontal=True, vertical_alignment="center"):
            st.markdown(f"**Most similar to #{anchor}** · {len(nbrs)} nearest neighbours in embedding space")
            if st.button("Close", key=f"{page}_similar_close", icon=":material/close:"):
                st.session_state.pop(key, None)
                st.rerun()
        tags = tags_by_item(d)
        cards = [card_html(d, anchor, metric=metric, tags=tags, caption="query image", css="cur-query")]
        cards += [card_html(d, int(j), metric=metric, tags=tags, caption=f"neighbour {r}") for r, j in enumerate(nbrs, 1)]
        st.html('<div style="display:grid;grid-template-columns:repeat(auto-fill,minmax(120px,1fr));gap:10px">'
                + "".join(cards) + "</div>")


def duplicate_groups_view(d: D.ExplorerData, page: str, ids: np.ndarray, groups_per_page: int = 8) -> None:
    """Duplicate groups touching the view, members side by side, the keeper marked."""
    groups = d.duplicate_groups(ids)
    if not groups:
        st.info("No duplicate groups among the images in view.")
        return
    pages = max(1, math.ceil(len(groups) / groups_per_page))
    with st.container(horizontal=True, vertical_alignment="center"):
        st.markdown(f"**{len(groups):,} duplicate groups** ({sum(len(g.item_ids) for g in groups):,} images) — "
                    "the image marked **keep** is the one to retain; the others can go.")
        page_no = st.pagination(pages, key=f"{page}_dup_pg_{len(groups)}") if pages > 1 else 1
    tags = tags_by_item(d)
    for g in groups[(page_no - 1) * groups_per_page : page_no * groups_per_page]:
        with st.container(border=True):
            st.markdown(f"**Group {g.group_id}** · {g.issue.replace('_', ' ')} · {len(g.item_ids)} images")
            grid = st.grid(GRID_COLUMNS, gap="small", min_column_width=120)
            for i, keep, score in zip(g.item_ids, g.keep, g.scores):
                with grid.cell():
                    flag = ('<span class="cur-b keep">&#10003; keep</span>' if keep else '<span class="cur-b dup">duplicate</span>')
                    flag += f'<span class="cur-muted"> score {score:.3f}</span>'
                    card(d, i, page, tags=tags, extra=lambda _i, f=flag: f"<div>{f}</div>",
                         skip=D.DUPLICATE_ISSUES, ns=f"{page}_dup{g.group_id}")


# ---------------------------------------------------------------------------------- tags & export
def tag_panel(d: D.ExplorerData, page: str, view_ids: np.ndarray, *, view_name: str = "in view",
              extra: Callable[[list[int], list[int]], None] | None = None) -> None:
    """Tag the picked images or everything in the current view (stored with Project.add_tag)."""
    picked = [i for i in st.session_state.get("picked", []) if 0 <= i < d.n]
    with st.container(border=True):
        cols = st.columns([3, 4, 4], vertical_alignment="bottom")
        tag = cols[0].text_input("Tag", key=f"{page}_tag", placeholder="remove, relabel:7, review…",
                                 help="free text; `curator export PROJECT --tag TAG` lists the tagged images")
        # constant label and options: Streamlit treats changed ones as a new widget (value reset)
        scope = cols[1].radio("Apply to", ["picked", "view"], horizontal=True, key=f"{page}_tag_scope",
                              format_func={"picked": "picked images", "view": f"everything {view_name}"}.get)
        with cols[2].container(horizontal=True, vertical_alignment="bottom"):
            add = st.button("Add tag", key=f"{page}_tag_add", type="primary", icon=":material/sell:")
            rm = st.button("Remove tag", key=f"{page}_tag_rm")
            if picked and st.button("Clear picks", key=f"{page}_clear_picks", type="tertiary"):
                st.session_state["picked"] = []
                st.rerun()
        st.caption(f"{len(picked):,} picked · {len(view_ids):,} {view_name} — tick **Pick** under an image to tag it alone")
        if add or rm:
            target = picked if scope == "picked" else [int(i) for i in view_ids]
            if not (tag or "").strip():
                st.warning("Type a tag first (e.g. `remove` or `relabel:7`).")
            elif not target:
                st.warning("Nothing to tag: tick **Pick** on some images, or apply to the whole view.")
            else:
                n = D.write_tags(d.root, target, tag, remove=bool(rm))
                bump_tags()
                verb = "Removed tag" if rm else "Added tag"
                st.success(f"{verb} **{md(tag.strip())}** {'from' if rm else 'to'} {n:,} image{'s' if n != 1 else ''}.")
        if extra is not None:
            extra(picked, [int(i) for i in view_ids])


def download_rows(label: str, make: Callable[[], pd.DataFrame], file_name: str, key: str, help: str | None = None) -> None:
    """A CSV download made only when clicked (export schema)."""
    st.download_button(label, data=lambda: make().to_csv(index=False), file_name=file_name, mime="text/csv", key=key,
                       icon=":material/download:", on_click="ignore", help=help)


def download_view(d: D.ExplorerData, ids: np.ndarray, page: str, *, issues: Sequence[str] = (), what: str = "view") -> None:
    ids = np.asarray(ids, dtype=np.int64).copy()
    download_rows(
        f"Download {what} as CSV ({len(ids):,} images)", lambda: d.export_rows(ids, issues),
        f"{d.name}-{page}-{what.replace(' ', '_')}.csv", key=f"{page}_download",
        help="export schema: item_id, path, label, issue, score, severity, suggested_label, group_id, keep",
    )


# ---------------------------------------------------------------------------------- filters & chrome
def sidebar_filters(d: D.ExplorerData, page: str, *, issues: bool = True) -> dict:
    """Class / issue / tag / path filters in the sidebar (kept across page switches)."""
    with st.sidebar:
        st.markdown("### Filters")
        out = {}
        out["classes"] = st.multiselect("Class", d.label_values, key=f"{page}_classes", persist_state="session",
                                        placeholder="all classes")
        out["issues"] = []
        if issues:
            opts = [t for t in D.ISSUE_TYPES if d.issue_counts.get(t)] + [D.NO_ISSUE]
            opts += [t for t in (st.session_state.get(f"{page}_issues") or []) if t not in opts]
            out["issues"] = st.multiselect(
                "Issue", opts, key=f"{page}_issues", persist_state="session", placeholder="any (or none)",
                format_func=lambda t: t if t == D.NO_ISSUE else f"{t} ({d.issue_counts.get(t, 0):,})",
            )
        tag_names = sorted(tags_frame(d)["tag"].unique().tolist())
        tag_names += [t for t in (st.session_state.get(f"{page}_tags") or []) if t not in tag_names]
        out["tags"] = st.multiselect("Tag", tag_names, key=f"{page}_tags", persist_state="session", placeholder="any")
        out["path"] = st.text_input("Path contains", key=f"{page}_path", persist_state="session")
    return out


NO_LABELS = ("No image in this project has a label{what}. Labels come from class folders "
             "(`SOURCE/<class>/<image>`) or a labels file with `path,label` columns: "
             "`curator import SOURCE --out PROJECT --labels FILE`, then `curator analyze PROJECT`.")


def no_labels_note(d: D.ExplorerData, what: str = "") -> bool:
    """Say so (and return True) when no image has a label: class and label charts would be empty."""
    if d.labelled.any():
        return False
    st.info(NO_LABELS.format(what=what), icon=":material/label_off:")
    return True


def selection_bar(page: str, n_view: int, n_total: int, selection: np.ndarray | None, what: str = "images") -> None:
    with st.container(horizontal=True, vertical_alignment="center"):
        text = f"**{n_view:,}** of {n_total:,} {what} in view"
        if selection is not None:
            text += f" · **{len(selection):,}** selected in the 2D map"
        st.markdown(text)
        if selection is not None and st.button("Clear map selection", key=f"{page}_clear_sel", icon=":material/deselect:"):
            clear_selection(page)
            st.rerun()


def chrome(d: D.ExplorerData) -> None:
    """Styles and the project line in the sidebar (every page)."""
    st.html(CSS)
    with st.sidebar:
        a = d.analysis
        st.markdown(f"**{md(d.name)}** · {d.n:,} images")
        st.caption(f"{md(d.root)}  \nanalysed {md(a.get('finished', '?'))} · {md(a.get('backbone', '?'))} · "
                   f"{md(a.get('projection', '?'))}")
