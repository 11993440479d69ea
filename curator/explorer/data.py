"""The explorer's data layer, free of Streamlit so it can be tested and benchmarked directly.

Everything the pages show comes from one :class:`ExplorerData` per analysis, built once and
cached by :func:`version_key` (the manifest's analysis ``finished`` stamp plus file mtimes),
never by hashing arrays. Tags change while the explorer runs, so they are read separately,
keyed by :func:`tags_version` (the database and WAL file stamps).
"""

from __future__ import annotations

import io
import json
import os
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from ..issue_types import EXPORT_COLUMNS, IMAGE_ISSUES, ISSUE_TYPES
from ..project import DATABASE, MANIFEST, Project

UNLABELLED = "(unlabelled)"
NO_ISSUE = "(no issue)"
DUPLICATE_ISSUES = ("exact_duplicate", "near_duplicate")

ISSUE_HELP = {
    "unreadable": "the file cannot be decoded (empty, truncated, not an image)",
    "exact_duplicate": "identical pixels to another image; one per group is kept",
    "near_duplicate": "visually the same image as another (resized, re-encoded, noise)",
    "dark": "much darker than the rest of the dataset",
    "bright": "much brighter than the rest of the dataset",
    "blurry": "little fine detail (low Laplacian sharpness)",
    "low_information": "almost blank: very low entropy or contrast",
    "odd_aspect_ratio": "width/height far from the dataset's usual shape",
    "odd_size": "far smaller or larger than the dataset's usual size",
    "outlier": "far from every other image in embedding space",
    "label_issue": "the given label is probably wrong; a likely correct class is suggested",
}


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    help: str
    fmt: str = "{:.3f}"

    def format(self, value) -> str:
        if value is None or not np.isfinite(value):
            return "–"
        return self.fmt.format(value)


METRICS: dict[str, Metric] = {
    m.key: m
    for m in (
        Metric("brightness", "Brightness", "mean grey level, 0 (black) to 1 (white)"),
        Metric("contrast", "Contrast", "standard deviation of the grey levels"),
        Metric("sharpness", "Sharpness", "Laplacian energy relative to contrast; low = blurry"),
        Metric("entropy", "Entropy", "information in the grey-level histogram (bits); low = blank"),
        Metric("max_channel_high", "Brightest colour", "99th percentile of each pixel's largest of R, G, B; low = dark colours, not just dark grey levels"),
        Metric("colour_contrast", "Colour contrast", "spread of the colours (RMS of the R, G, B spreads); low with low contrast = faint"),
        Metric("area", "Size (pixels)", "width × height of the original image", "{:,.0f}"),
        Metric("width", "Width", "original width in pixels", "{:,.0f}"),
        Metric("height", "Height", "original height in pixels", "{:,.0f}"),
        Metric("aspect_ratio", "Aspect ratio", "width / height", "{:.2f}"),
        Metric("file_size", "File size (bytes)", "size of the image file", "{:,.0f}"),
        Metric("uniqueness", "Uniqueness", "1 − cosine similarity to the nearest neighbour; near 0 = (near) duplicate"),
        Metric("label_confidence", "Label confidence", "out-of-fold probability of the given label; low = suspicious label"),
        Metric("issue_score", "Worst issue score", "highest score among the image's issues (0 = none)"),
    )
}
STORED_METRICS = ("brightness", "contrast", "sharpness", "entropy", "max_channel_high", "colour_contrast", "area", "width",
                  "height", "aspect_ratio", "file_size")


# ---------------------------------------------------------------------------------- versions
def _stamp(path: Path) -> tuple[int, int]:
    try:
        st = os.stat(path)
    except OSError:
        return (0, 0)
    return (st.st_mtime_ns, st.st_size)


def version_key(root: str | os.PathLike) -> tuple:
    """Changes whenever a new analysis is complete: the manifest's ``finished`` stamp and the
    mtimes of the manifest and the array files. Cheap (a few ``stat`` calls and a tiny JSON)."""
    root = Path(root)
    try:
        finished = (json.loads((root / MANIFEST).read_text()).get("analysis") or {}).get("finished")
    except (OSError, ValueError):
        finished = None
    arrays = root / "arrays"
    return (
        str(root),
        finished,
        _stamp(root / MANIFEST),
        _stamp(arrays / "projection.npy"),
        _stamp(arrays / "neighbors.npy"),
        _stamp(arrays / "label_proba.npy"),
    )


def tags_version(root: str | os.PathLike) -> tuple:
    """Changes on every database write (tags are written in WAL mode, so the -wal file moves)."""
    root = Path(root)
    return (_stamp(root / DATABASE), _stamp(root / (DATABASE + "-wal")))


# ---------------------------------------------------------------------------------- the data
@dataclass
class Bands:
    """Interquartile-range outlier bands of one metric (Encord's rule: 1.5× moderate, 2.5× severe)."""

    q1: float
    q3: float
    iqr: float
    moderate_lo: float
    moderate_hi: float
    severe_lo: float
    severe_hi: float

    def level(self, values: np.ndarray) -> np.ndarray:
        """0 inside, 1 moderate outlier, 2 severe outlier, -1 no value."""
        v = np.asarray(values, dtype=np.float64)
        out = np.zeros(len(v), dtype=np.int8)
        with np.errstate(invalid="ignore"):
            out[(v < self.moderate_lo) | (v > self.moderate_hi)] = 1
            out[(v < self.severe_lo) | (v > self.severe_hi)] = 2
        out[~np.isfinite(v)] = -1
        return out


def iqr_bands(values: np.ndarray) -> Bands | None:
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if len(v) < 4:
        return None
    q1, q3 = (float(x) for x in np.percentile(v, [25, 75]))
    iqr = q3 - q1
    return Bands(q1, q3, iqr, q1 - 1.5 * iqr, q3 + 1.5 * iqr, q1 - 2.5 * iqr, q3 + 2.5 * iqr)


@dataclass
class IssueInfo:
    issue: str
    score: float
    severity: str
    suggested_label: str | None
    group_id: int | None
    keep: bool | None


@dataclass
class DuplicateGroup:
    group_id: int
    issue: str
    item_ids: list[int]  # the keeper first
    keep: list[bool]
    scores: list[float]


class ExplorerData:
    """Everything the pages read, loaded once per analysis (see module docstring)."""

    def __init__(self, root: str | os.PathLike):
        self._memo: dict = {}
        self._lock = threading.RLock()
        # read-only: browsing works on read-only folders; arrays are checked before use, so a
        # damaged file is one DamagedProject line, not "mmap length is greater than file size"
        with Project(root, readonly=True) as project:
            project.require_analyzed()
            self.root = project.root
            self.name = project.name
            self.analysis = dict(project.analysis or {})
            self.classes = [str(c) for c in project.classes]
            items = project.items()
            metrics = project.metrics()
            issues = project.issues()
            self.projection = np.asarray(project.projection(), dtype=np.float32)
            n = len(items)
            has = lambda name: project.array_path(name).exists()  # noqa: E731
            self.neighbors = (project.load_array("neighbors.npy", (n, None), np.int32) if has("neighbors.npy")
                              else np.full((n, 0), -1, np.int32))
            self.label_proba = (project.load_array("label_proba.npy", (n, None), np.float32)
                                if has("label_proba.npy") else None)
            self._embeddings = project.embeddings(mmap=True) if self.analysis.get("embeddings_file") else None
        self.n = len(items)
        if not np.array_equal(items["item_id"].to_numpy(), np.arange(self.n)):
            raise ValueError("item ids are expected to be 0..N-1")
        self.paths = items["path"].astype(str).to_numpy()
        self.locations = items["location"].astype(str).to_numpy()
        raw_labels = items["label"]
        self.labelled = raw_labels.notna().to_numpy()
        self.labels = raw_labels.astype(object).where(raw_labels.notna(), UNLABELLED).astype(str).to_numpy()
        present = set(self.labels)
        self.label_values = [c for c in self.classes if c in present] + sorted(present - set(self.classes))
        code_of = {c: i for i, c in enumerate(self.label_values)}
        self.label_codes = np.array([code_of[x] for x in self.labels], dtype=np.int32)

        metrics = metrics.set_index("item_id").reindex(np.arange(self.n))
        self.readable = metrics["readable"].fillna(0).to_numpy().astype(bool)
        self.errors = metrics["error"].to_numpy() if "error" in metrics else np.full(self.n, None)
        self._metric_values: dict[str, np.ndarray] = {
            k: pd.to_numeric(metrics[k], errors="coerce").to_numpy(dtype=np.float64) for k in STORED_METRICS if k in metrics
        }

        self.issues = issues.reset_index(drop=True)
        self.issue_ids: dict[str, np.ndarray] = {
            t: np.sort(self.issues.loc[self.issues["issue"] == t, "item_id"].to_numpy(dtype=np.int64)) for t in ISSUE_TYPES
        }
        self.issue_counts = {t: len(v) for t, v in self.issue_ids.items()}
        self.flagged = np.zeros(self.n, dtype=bool)
        self.flagged[self.issues["item_id"].to_numpy(dtype=np.int64)] = True
        worst = np.zeros(self.n)
        if len(self.issues):
            g = self.issues.groupby("item_id")["score"].max()
            worst[g.index.to_numpy(dtype=np.int64)] = g.to_numpy(dtype=np.float64)
        self._metric_values["issue_score"] = worst
        self.item_issues: dict[int, list[IssueInfo]] = {}
        for r in self.issues.itertuples(index=False):
            self.item_issues.setdefault(int(r.item_id), []).append(
                IssueInfo(
                    r.issue,
                    float(r.score),
                    r.severity,
                    None if pd.isna(r.suggested_label) else str(r.suggested_label),
                    None if pd.isna(r.group_id) else int(r.group_id),
                    None if pd.isna(r.keep) else bool(r.keep),
                )
            )
        lab = self.issues[self.issues["issue"] == "label_issue"]
        self.suggested = np.full(self.n, None, dtype=object)
        self.suggested[lab["item_id"].to_numpy(dtype=np.int64)] = lab["suggested_label"].to_numpy()
        self.label_issue_score = np.full(self.n, np.nan)
        self.label_issue_score[lab["item_id"].to_numpy(dtype=np.int64)] = lab["score"].to_numpy(dtype=np.float64)

    def memo(self, key, make):
        """Compute something derived from this analysis once (thread-safe)."""
        with self._lock:
            if key not in self._memo:
                self._memo[key] = make()
            return self._memo[key]

    # ------------------------------------------------------------------ metrics
    def metric(self, key: str) -> np.ndarray:
        """(N,) float64 values of a metric, NaN where it does not apply."""
        if key not in self._metric_values:
            if key not in ("uniqueness", "label_confidence"):
                raise KeyError(f"unknown metric {key!r}")
            with self._lock:
                if key not in self._metric_values:
                    self._metric_values[key] = self._uniqueness() if key == "uniqueness" else self._label_confidence()
        return self._metric_values[key]

    def available_metrics(self) -> list[str]:
        keys = [k for k in METRICS if k in self._metric_values or k in ("uniqueness", "label_confidence")]
        if self._embeddings is None or self.neighbors.shape[1] == 0:
            keys.remove("uniqueness")
        if self.label_proba is None or not len(self.classes):
            keys.remove("label_confidence")
        return keys

    def _uniqueness(self) -> np.ndarray:
        out = np.full(self.n, np.nan)
        if self._embeddings is None or self.neighbors.shape[1] == 0:
            return out
        emb = self._embeddings
        nn = self.neighbors[:, 0].astype(np.int64)
        rows = np.nonzero((nn >= 0) & self.readable)[0]
        for start in range(0, len(rows), 8192):
            idx = rows[start : start + 8192]
            a = np.asarray(emb[idx], dtype=np.float32)
            b = np.asarray(emb[np.sort(nn[idx])], dtype=np.float32)[np.argsort(np.argsort(nn[idx]))]
            na = np.linalg.norm(a, axis=1)
            nb = np.linalg.norm(b, axis=1)
            cos = (a * b).sum(axis=1) / np.maximum(na * nb, 1e-12)
            out[idx] = np.clip(1.0 - cos, 0.0, 2.0)
        return out

    def _label_confidence(self) -> np.ndarray:
        out = np.full(self.n, np.nan)
        if self.label_proba is None:
            return out
        classes = [str(c) for c in self.analysis.get("label_proba_classes", self.classes)]
        col = {c: i for i, c in enumerate(classes)}
        idx = np.array([col.get(x, -1) for x in self.labels])
        ok = (idx >= 0) & self.labelled
        rows = np.nonzero(ok)[0]
        out[rows] = self.label_proba[rows, idx[rows]]
        return out

    # ------------------------------------------------------------------ summaries
    def class_table(self) -> pd.DataFrame:
        """Per class: images, flagged images, label issues and their rates; undersampled marks
        classes with fewer than half the median class size."""
        df = pd.DataFrame({"class": self.labels, "flagged": self.flagged, "label_issue": np.isfinite(self.label_issue_score)})
        g = df.groupby("class", sort=False).agg(images=("flagged", "size"), flagged=("flagged", "sum"), label_issues=("label_issue", "sum"))
        g = g.reindex([c for c in self.label_values if c in g.index])
        g["flagged_rate"] = g["flagged"] / g["images"]
        g["label_issue_rate"] = g["label_issues"] / g["images"]
        labelled = g.drop(index=UNLABELLED, errors="ignore")
        median = float(labelled["images"].median()) if len(labelled) else 0.0
        g["undersampled"] = (g["images"] < 0.5 * median) & (g.index != UNLABELLED)
        return g.reset_index()

    def label_pairs(self) -> pd.DataFrame:
        """given × suggested label counts among label issues, most frequent first."""
        rows = np.nonzero(np.isfinite(self.label_issue_score))[0]
        df = pd.DataFrame({"given": self.labels[rows], "suggested": self.suggested[rows].astype(str)})
        if not len(df):
            return pd.DataFrame({"given": [], "suggested": [], "issues": []})
        out = df.value_counts().rename("issues").reset_index()
        return out.sort_values(["issues", "given", "suggested"], ascending=[False, True, True], ignore_index=True)

    def median_size(self) -> tuple[float, float] | None:
        w = self._metric_values.get("width")
        h = self._metric_values.get("height")
        if w is None or h is None or not np.isfinite(w).any():
            return None
        return float(np.nanmedian(w)), float(np.nanmedian(h))

    def similar(self, item_id: int) -> np.ndarray:
        if self.neighbors.shape[1] == 0:
            return np.zeros(0, dtype=np.int64)
        nb = self.neighbors[int(item_id)].astype(np.int64)
        return nb[(nb >= 0) & (nb != item_id)]

    def duplicate_groups(self, item_ids: np.ndarray | None = None, issues: Sequence[str] = DUPLICATE_ISSUES) -> list[DuplicateGroup]:
        """Duplicate groups (keeper first), optionally only groups touching ``item_ids``."""
        df = self.issues[self.issues["issue"].isin(list(issues)) & self.issues["group_id"].notna()]
        if item_ids is not None:
            touched = df.loc[df["item_id"].isin(np.asarray(item_ids)), "group_id"].unique()
            df = df[df["group_id"].isin(touched)]
        groups = []
        for (gid, issue), g in df.groupby(["group_id", "issue"], sort=True):
            g = g.assign(_k=g["keep"].fillna(False).astype(bool)).sort_values(["_k", "item_id"], ascending=[False, True])
            groups.append(
                DuplicateGroup(int(gid), str(issue), g["item_id"].astype(int).tolist(), g["_k"].tolist(), g["score"].astype(float).tolist())
            )
        groups.sort(key=lambda grp: (-max(grp.scores), grp.group_id))
        return groups

    # ------------------------------------------------------------------ filtering
    def view_mask(
        self,
        *,
        classes: Iterable[str] = (),
        issues: Iterable[str] = (),
        tagged_ids: np.ndarray | None = None,
        metric: str | None = None,
        lo: float | None = None,
        hi: float | None = None,
        outliers: str = "all",
        path_contains: str = "",
        selection: np.ndarray | None = None,
    ) -> np.ndarray:
        """Boolean mask of the items passing every filter (an empty filter passes everything).

        ``issues``: items with any of these issue types (``NO_ISSUE`` = items without issues).
        ``tagged_ids``: items carrying one of the chosen tags. ``outliers``: "all", "moderate"
        (moderate or severe IQR outliers of ``metric``) or "severe". ``selection``: item ids
        picked in the 2D plot.
        """
        mask = np.ones(self.n, dtype=bool)
        classes = list(classes)
        if classes:
            wanted = [self.label_values.index(c) for c in classes if c in self.label_values]
            mask &= np.isin(self.label_codes, wanted)
        issues = list(issues)
        if issues:
            m = np.zeros(self.n, dtype=bool)
            for t in issues:
                if t == NO_ISSUE:
                    m |= ~self.flagged
                elif t in self.issue_ids:
                    m[self.issue_ids[t]] = True
            mask &= m
        if tagged_ids is not None:
            m = np.zeros(self.n, dtype=bool)
            ids = np.asarray(tagged_ids, dtype=np.int64)
            m[ids[(ids >= 0) & (ids < self.n)]] = True
            mask &= m
        if metric is not None and (lo is not None or hi is not None or outliers != "all"):
            v = self.metric(metric)
            with np.errstate(invalid="ignore"):
                if lo is not None:
                    mask &= v >= lo
                if hi is not None:
                    mask &= v <= hi
            if outliers != "all":
                bands = iqr_bands(v)
                level = bands.level(v) if bands else np.zeros(self.n, np.int8)
                mask &= level >= (2 if outliers == "severe" else 1)
        if path_contains:
            mask &= pd.Series(self.paths).str.contains(path_contains, case=False, regex=False).to_numpy()
        if selection is not None:
            m = np.zeros(self.n, dtype=bool)
            sel = np.asarray(selection, dtype=np.int64)
            m[sel[(sel >= 0) & (sel < self.n)]] = True
            mask &= m
        return mask

    def sorted_ids(self, mask: np.ndarray, metric: str | None, descending: bool = False) -> np.ndarray:
        """Ids under ``mask`` ordered by a metric (values missing last), ties by id."""
        ids = np.nonzero(mask)[0]
        if metric is None:
            return ids
        v = self.metric(metric)[ids]
        key = np.where(np.isfinite(v), -v if descending else v, np.inf)
        return ids[np.lexsort((ids, key))]

    # ------------------------------------------------------------------ the projector
    def default_map_spec(self):
        """The spec of ``arrays/projection.npy``: the method and feature space analyze used."""
        from ..projector import METHODS, SPACE_LABELS, MapSpec

        method = str(self.analysis.get("projection") or "umap").split(",")[0]
        space = self.analysis.get("map_space") or "cnn"  # analyses before the projector drew on the CNN
        return MapSpec(method=method if method in METHODS else "umap", space=space if space in SPACE_LABELS else "cnn")

    def map_spaces(self) -> list[str]:
        """Feature spaces a map can be drawn from in this project (nothing computed yet)."""
        def names():  # from the analysis record: reading the arrays waits until a map is computed
            from ..projector import USER_EMBEDDINGS, space_names

            arrays = self.root / "arrays"
            return space_names(user=bool(self.analysis.get("user_embeddings")) and (arrays / USER_EMBEDDINGS).exists(),
                               cnn=bool(self.analysis.get("embeddings_file")), thumbs=(arrays / "thumbnails.npy").exists())

        return self.memo("map_space_names", names)

    def _spaces(self):
        from ..projector import FeatureSpaces

        def make():
            with Project(self.root, readonly=True) as project:
                return FeatureSpaces.of_project(project)

        return self.memo("map_spaces", make)

    def map_coords(self, spec) -> np.ndarray | None:
        """(N, 2) coordinates of ``spec`` when known without computing: the default map, one
        computed in this process, or one cached in ``arrays/``; else None."""
        from ..projector import cached_map

        if spec == self.default_map_spec():
            return self.projection
        with self._lock:
            if ("map", spec) in self._memo:
                return self._memo[("map", spec)]
        found = cached_map(self.root, spec, self.n)
        if found is not None:
            with self._lock:
                self._memo[("map", spec)] = found
        return found

    def compute_map(self, spec, progress=None) -> np.ndarray:
        """Compute ``spec``'s map, keep it in memory and cache it in the project when writable."""
        from ..projector import compute_map, full_map, save_map

        found = self.map_coords(spec)
        if found is not None:
            return found
        spaces = self._spaces()
        if progress:
            progress(0.0, "features")
        coords = full_map(self.n, spaces.readable, compute_map(spec, spaces[spec.space], progress=progress))
        save_map(self.root, spec, coords)  # read-only project: kept in memory only
        with self._lock:
            self._memo[("map", spec)] = coords
        return coords

    def worst_issue(self) -> np.ndarray:
        """(N,) the highest-scoring issue type of each item, ``NO_ISSUE`` where none."""
        def make():
            out = np.full(self.n, NO_ISSUE, dtype=object)
            if len(self.issues):
                top = self.issues.sort_values("score", kind="stable").drop_duplicates("item_id", keep="last")
                out[top["item_id"].to_numpy(dtype=np.int64)] = top["issue"].to_numpy()
            return out

        return self.memo("worst_issue", make)

    # ------------------------------------------------------------------ export
    def export_rows(self, item_ids: Sequence[int], issues: Sequence[str] = ()) -> pd.DataFrame:
        """The export schema for some items (one row per (item, issue)); items without a
        (matching) issue get one row with an empty issue unless ``issues`` is given — the same
        convention as ``Project.export_frame(tags=...)``. Rows follow the order of ``item_ids``."""
        ids = np.asarray(list(item_ids), dtype=np.int64)
        order = pd.Series(np.arange(len(ids)), index=ids)
        order = order[~order.index.duplicated()]
        rows = self.issues[self.issues["item_id"].isin(order.index)]
        if issues:
            rows = rows[rows["issue"].isin(list(issues))]
        else:
            missing = np.setdiff1d(order.index.to_numpy(), rows["item_id"].to_numpy())
            if len(missing):
                extra = pd.DataFrame(
                    {"item_id": missing, "path": self.paths[missing], "label": np.where(self.labelled[missing], self.labels[missing], None),
                     "issue": None, "score": np.nan, "severity": None}
                )
                rows = pd.concat([rows, extra], ignore_index=True) if len(rows) else extra
        rows = rows.assign(_o=order.reindex(rows["item_id"].to_numpy()).to_numpy()).sort_values(["_o", "issue"], kind="stable")
        rows = rows.drop(columns="_o").reindex(columns=list(EXPORT_COLUMNS))
        rows["group_id"] = rows["group_id"].astype("Int64")
        rows["keep"] = rows["keep"].astype("boolean")
        return rows.reset_index(drop=True)


# ---------------------------------------------------------------------------------- one per process
_LOADED: dict[str, tuple[tuple, ExplorerData]] = {}
_LOAD_LOCK = threading.Lock()


def is_loaded(root: str | os.PathLike) -> bool:
    entry = _LOADED.get(str(Path(root)))
    return entry is not None and entry[0] == version_key(root)


def load(root: str | os.PathLike) -> ExplorerData:
    """The project's data for its current analysis, loaded once per process and version.

    Concurrent callers (the server's preload thread, browser sessions) wait for one load."""
    root = str(Path(root))
    key = version_key(root)
    entry = _LOADED.get(root)
    if entry is not None and entry[0] == key:
        return entry[1]
    with _LOAD_LOCK:
        entry = _LOADED.get(root)
        if entry is None or entry[0] != key:
            entry = (key, ExplorerData(root))
            _LOADED[root] = entry
        return entry[1]


def preload(root: str | os.PathLike, first_pages: int = 48) -> None:
    """Warm everything the first page views need: data, both 2D maps, first thumbnails."""
    from . import figures

    d = load(root)
    figures.scatter(d, "class")
    figures.scatter(d, "label")
    for metric in ("brightness",):
        ids = d.sorted_ids(np.ones(d.n, bool), metric)[:first_pages]
        figures.histogram(d, metric, np.ones(d.n, bool))
        for i in ids:
            thumbnail(d, int(i))
    lab = np.nonzero(np.isfinite(d.label_issue_score))[0]
    for i in lab[np.argsort(-d.label_issue_score[lab], kind="stable")][:first_pages]:
        thumbnail(d, int(i))


# ---------------------------------------------------------------------------------- tags
def read_tags(root: str | os.PathLike) -> pd.DataFrame:
    with Project(root, readonly=True) as p:
        return p.tags()


def write_tags(root: str | os.PathLike, item_ids: Iterable[int], tag: str, *, remove: bool = False) -> int:
    ids = sorted({int(i) for i in item_ids})
    with Project(root) as p:
        if remove:
            p.remove_tag(ids, tag.strip())
        else:
            p.add_tag(ids, tag)
    return len(ids)


def export_frame(root: str | os.PathLike, issues: Sequence[str] = (), tags: Sequence[str] = ()) -> pd.DataFrame:
    """Exactly what ``curator export`` writes (same function)."""
    with Project(root, readonly=True) as p:
        return p.export_frame(issues, tags)


# ---------------------------------------------------------------------------------- thumbnails
THUMB_PX = 160


def thumbnail(d: ExplorerData, item_id: int, px: int = THUMB_PX) -> tuple[bytes, str]:
    """(image bytes, mime type) of an item's thumbnail, or a placeholder for unreadable files."""
    loc = d.locations[item_id]
    path = loc if os.path.isabs(loc) else str(d.root / loc)
    data = _thumbnail_cached(path, _stamp(Path(path)), px) if d.readable[item_id] else None
    if data is None:
        return placeholder_png("unreadable" if not d.readable[item_id] else "missing", px), "image/png"
    return data


@lru_cache(maxsize=8192)
def _thumbnail_cached(path: str, stamp: tuple, px: int) -> tuple[bytes, str] | None:
    return thumbnail_bytes(path, px)


def thumbnail_png(path: str | os.PathLike, px: int = THUMB_PX) -> bytes | None:
    out = thumbnail_bytes(path, px)
    return None if out is None else out[0]


def thumbnail_bytes(path: str | os.PathLike, px: int = THUMB_PX) -> tuple[bytes, str] | None:
    """A small image (longest side ``px``) made from the file: PNG for small images (tiny ones
    enlarged with nearest neighbour so pixels stay crisp), JPEG for photos; None when the file
    cannot be decoded. Decoded as analyze decodes it (upright, 8-bit, transparency on grey)."""
    from PIL import Image

    from ..imaging import decode

    try:
        im = decode(path, target=px).composite()
        w, h = im.size
        scale = px / max(w, h, 1)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        resample = Image.NEAREST if scale >= 2 else (Image.LANCZOS if scale < 1 else Image.BILINEAR)
        im = im.resize(size, resample)
        buf = io.BytesIO()
        if im.mode == "RGB" and max(w, h) > 64:
            im.save(buf, format="JPEG", quality=85)
            return buf.getvalue(), "image/jpeg"
        im.save(buf, format="PNG", compress_level=1)
        return buf.getvalue(), "image/png"
    except Exception:  # any decode problem: the caller shows a placeholder
        return None


@lru_cache(maxsize=4)
def placeholder_png(text: str = "unreadable", px: int = THUMB_PX) -> bytes:
    from PIL import Image, ImageDraw

    im = Image.new("RGB", (px, px), (236, 236, 236))
    d = ImageDraw.Draw(im)
    d.line([(0, 0), (px, px)], fill=(200, 80, 80), width=2)
    d.line([(0, px), (px, 0)], fill=(200, 80, 80), width=2)
    d.rectangle([(8, px // 2 - 9), (px - 8, px // 2 + 9)], fill=(236, 236, 236))
    d.text((px // 2, px // 2), text, fill=(120, 30, 30), anchor="mm")
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def file_stamp(path: str | os.PathLike) -> tuple[int, int]:
    return _stamp(Path(path))


__all__ = [
    "METRICS",
    "ISSUE_HELP",
    "IMAGE_ISSUES",
    "ISSUE_TYPES",
    "NO_ISSUE",
    "UNLABELLED",
    "Bands",
    "ExplorerData",
    "iqr_bands",
    "version_key",
    "tags_version",
    "read_tags",
    "write_tags",
    "export_frame",
    "thumbnail",
    "thumbnail_png",
    "placeholder_png",
    "load",
    "preload",
]
