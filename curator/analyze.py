"""``curator analyze``: images -> metrics, thumbnails and embeddings (batched, resumable) ->
issues, neighbours and the 2D projection (one transaction at the end).

Resumability: every batch first flushes its rows of the memory-mapped array files, then
commits its metrics together with the keys saying which file version and which backbone
they came from. A killed run loses at most the batch in flight; the next run redoes only
items whose keys do not match (new, changed, or never finished).

Safety: one analyze per project at a time (the project lock); the manifest says "incomplete"
from the first change until the final write, so readers can warn that results are stale;
array files are checked (shape, size, checksum) before being trusted and rebuilt when not;
a full disk or a read-only project ends in one line, with the database intact.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import time
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import __version__
from .backbones import DEFAULT_BACKBONE, NATIVE_RESOLUTION, auto_resolution
from .arrays import checksum, open_array, problem
from .checks.align import SCRATCH_PREFIX
from .checks.labels import label_margin_note
from .errors import CuratorError, InterruptedRun
from .imaging import THUMB_SHAPE
from .per_image import ENGINES, open_engine
from .project import DATABASE, INCOMPLETE, Project
from .projector import MapSpec, clear_cache, load_user_embeddings, parse_methods, save_map
from .shell import command
from .stage_status import StageStatus
from .stages import DatasetInputs, run_stages
from .store import METRIC_COLUMNS, atomic_save_npy, reporting_damage, transaction, write_failure

ANALYSIS_VERSION = "17"  # bump when check logic changes so stored issues are recomputed (10: IVF-SQ8 / sampled stages beyond 20k items; 11: blur before tone, strongly blurred; 12: flat paint, transparent pairs on their own ground, dark grey ink; 13: defective but foreign outliers; 14: label margin per suggested class; 15: outliers far out in both the embedding and the pixel thumbnails; 16: a transparent picture whose shape shows is never faint; 17: gain-fitted search difference of possible crops)
# bump when what one decode produces changes (metrics, thumbnails, model input), so stored
# per-image results are redone: 2 = alpha-weighted metrics, colour thumbnails, grey background;
# 3 = EXIF orientation applied, 16-bit images scaled to 8 bits, large images decoded reduced;
# 4 = a flat-filled transparent shape's edges measured against the background;
# 5 = outline_contrast / outline_entropy (the picture as shown, on the neutral grey);
# 6 = max_channel_high / min_channel_low (how far the colours are from black and white);
# 7 = colour_contrast; 8 = native_detail (a large image's fine detail at its own resolution); 9 = only above 320 px
SCAN_VERSION = "9"


@dataclass
class AnalyzeOptions:
    backbone: str = DEFAULT_BACKBONE
    resolution: int | None = None
    device: str = "auto"
    batch_size: int = 32
    workers: int | None = None  # None: per_image.plan_threads's default (onnxruntime: a lane per core); 0 = inline
    projection: str = "umap"  # comma-separated methods; the first draws arrays/projection.npy
    runtime: str = "auto"  # auto (onnxruntime for the default backbone on CPU, else torch), onnx, torch
    embeddings: str | None = None  # the user's own embeddings file (.npy, CSV or Parquet)
    progress: bool = True
    stop_after_batches: int | None = None  # testing hook: simulate an interruption
    engine: str = "local"  # what runs the per-image stage: local (this process) or ray
    ray_address: str | None = None  # an existing Ray cluster; None = start a local Ray
    ray_cpus: int | None = None  # CPUs of the local Ray started here (None = this machine's)
    ignore_colour: bool = False  # near duplicates compared in luminance only: a recoloured copy is a copy


@dataclass
class AnalyzeReport:
    items: int
    processed: int
    reused: int
    issues: dict
    timings: dict = field(default_factory=dict)
    up_to_date: bool = False
    notes: list = field(default_factory=list)  # one-line remarks for the user, e.g. checks skipped
    rebuilt: list = field(default_factory=list)  # "arrays/<file> (why)" for each damaged file redone


def label_check_note(classes) -> str | None:
    """Why the label check cannot run on a project with these classes (None when it can):
    it needs at least two labelled classes to tell a wrong label from a right one."""
    if not classes:
        return "no labels: label checks skipped"
    if len(classes) < 2:
        return f"only one class ({classes[0]!r}): label checks skipped"
    return None


def _file_key(path: Path) -> str:
    try:
        st = os.stat(path)
    except OSError:
        return "missing"
    return f"{st.st_size}:{st.st_mtime_ns}"


def _safe(key: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in key)


# the arrays find_issues writes whole (np.save): (name, shape, dtype), None = any size
OUTPUT_ARRAYS = (("projection.npy", 2, np.float32), ("neighbors.npy", None, np.int32), ("label_proba.npy", None, np.float32))


def _trusted_checksums(project: Project) -> dict:
    """Checksums of the array files as the last complete analysis left them. None after an
    unfinished run: it changed the files legitimately, so only their structure is checked."""
    if project.analysis_incomplete or not project.analysis:
        return {}
    sums = project.analysis.get("array_checksums")
    return dict(sums) if isinstance(sums, dict) else {}


def _progress(total, desc, enabled):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="img", disable=not enabled, dynamic_ncols=True, leave=True)


def scan_and_embed(
    project: Project, opts: AnalyzeOptions, timings: dict, trusted: dict | None = None, rebuilt: list | None = None,
    notes: list | None = None,
) -> tuple[str, str, int, int]:
    """Stage 1. Returns (backbone key, embeddings file name, processed count, reused count).

    ``trusted`` maps array file names to the checksums they must have; a damaged thumbnail
    or embedding file is rebuilt (all items redone) and named in ``rebuilt``."""
    trusted = trusted or {}
    rebuilt = rebuilt if rebuilt is not None else []
    items = project.items()
    n = len(items)
    locations = [project.resolve(loc) for loc in items["location"]]
    previous = str((project.analysis or {}).get("backbone_key") or "")
    if opts.resolution:
        resolution = int(opts.resolution)
    elif previous.startswith(f"{opts.backbone}@"):
        # the project keeps its input size: images added later (which may move the median
        # size past a step of auto_resolution) must not re-embed the ones already done
        resolution = int(previous.rsplit("@", 1)[1])
    elif opts.backbone == DEFAULT_BACKBONE:
        resolution = auto_resolution(locations)
    else:
        resolution = NATIVE_RESOLUTION
    backbone_key = f"{opts.backbone}@{resolution}"
    file_keys = [_file_key(p) for p in locations]
    wanted = [f"{backbone_key}|s{SCAN_VERSION}|{k}" for k in file_keys]

    stored = dict(project.db.execute("SELECT item_id, embed_key FROM metrics").fetchall())
    thumbs_path = project.array_path("thumbnails.npy")
    thumbs_problem = problem(thumbs_path, (n, *THUMB_SHAPE), np.uint8, trusted.get(thumbs_path.name))
    emb_file = f"embeddings-{_safe(backbone_key)}.npy"
    emb_path = project.array_path(emb_file)
    analysis = project.analysis or {}
    dim = analysis.get("embedding_dim") if analysis.get("embeddings_file") == emb_file else None
    emb_problem = problem(emb_path, (n, dim), np.float32, trusted.get(emb_file))
    # a missing file is only news when earlier runs had filled it
    if thumbs_problem and (thumbs_problem != "missing" or stored):
        rebuilt.append(f"arrays/{thumbs_path.name} ({thumbs_problem})")
    if emb_problem and (emb_problem != "missing" or any(stored.get(i) == wanted[i] for i in range(n))):
        rebuilt.append(f"arrays/{emb_file} ({emb_problem})")
    pending = [i for i in range(n) if thumbs_problem or emb_problem or stored.get(i) != wanted[i]]
    reused = n - len(pending)

    t0 = time.perf_counter()
    if pending:
        # made (or its free space checked) before the mark: a refusal up front changes nothing
        thumbs, _ = open_array(thumbs_path, (n, *THUMB_SHAPE), np.uint8, recreate=thumbs_problem is not None)
        project.mark_analysis_started()
        with open_engine(opts, resolution, notes, StageStatus(timings, enabled=opts.progress)) as engine:
            timings["model_load"] = round(
                time.perf_counter() - t0 - timings.get("onnx_export", 0.0) - timings.get("ray_start", 0.0), 3)
            emb, emb_new = open_array(emb_path, (n, engine.dim), np.float32, recreate=emb_problem is not None)
            if emb_new and reused:  # a fresh embedding file: everything must be embedded again
                pending, reused = list(range(n)), 0
            paths = [str(locations[i]) for i in pending]
            _write_results(project, engine, pending, paths, emb, thumbs, file_keys, wanted, opts, timings)
        del emb
        del thumbs
    if not emb_path.exists():
        raise CuratorError("embeddings are missing; run analyze again")
    return backbone_key, emb_file, len(pending), reused


def _write_results(project: Project, engine, pending: list, paths: list, emb, thumbs, scan_keys: list,
                   embed_keys: list, opts: AnalyzeOptions, timings: dict) -> None:
    """Write each batch the engine returns: array rows flushed first, then its metrics rows
    with the keys that tell the next run what to redo (file version; file + backbone + scan
    version), in one transaction, so a killed run loses at most the batches in flight."""
    cols = list(METRIC_COLUMNS)
    sql = f"INSERT OR REPLACE INTO metrics(item_id, {', '.join(cols)}) VALUES ({', '.join('?' * (len(cols) + 1))})"
    forward_s = 0.0
    t_loop = time.perf_counter()
    bar = _progress(len(pending), f"embedding + metrics ({engine.describe()})", opts.progress)
    try:
        # closed on the way out, before the engine is: an engine's iteration may hold threads
        # (Ray Data's) that must stop before the engine shuts down what they use
        with closing(engine.results(pending, paths)) as results:
            for batch_no, res in enumerate(results):
                ids = res.ids
                forward_s += res.forward_s
                emb[ids] = res.embeddings
                thumbs[ids] = res.thumbnails
                emb.flush()
                thumbs.flush()
                rows = []
                for item_id, metrics in zip(ids, res.metrics):
                    m = dict(metrics)
                    m["scan_key"] = scan_keys[item_id]
                    m["embed_key"] = embed_keys[item_id]
                    rows.append((int(item_id), *[m.get(c) for c in cols]))
                with transaction(project.db) as c:
                    c.executemany(sql, rows)
                bar.update(len(ids))
                if opts.stop_after_batches is not None and batch_no + 1 >= opts.stop_after_batches:
                    raise KeyboardInterrupt
    except KeyboardInterrupt:
        bar.close()
        stored = project.db.execute("SELECT item_id, embed_key FROM metrics").fetchall()
        done = sum(1 for item_id, key in stored if 0 <= item_id < len(embed_keys) and key == embed_keys[item_id])
        raise InterruptedRun(
            f"interrupted: {done} of {len(embed_keys)} images are done and saved; run "
            f"`{command('curator', 'analyze', project.root)}` again to resume"
        ) from None
    bar.close()
    timings["embed_total"] = round(time.perf_counter() - t_loop, 3)
    timings["cnn_forward"] = round(forward_s, 3)  # summed over lanes, and over workers on Ray


def _fingerprint(project: Project, backbone_key: str, opts: AnalyzeOptions) -> str:
    h = hashlib.sha256()
    user = project.manifest.get("user_embeddings") or {}
    h.update(f"{ANALYSIS_VERSION}|{__version__}|{backbone_key}|{opts.projection}|{user.get('checksum')}".encode())
    if opts.ignore_colour:  # (only then, so projects analysed before the option keep their fingerprint)
        h.update(b"|ignore-colour")
    for row in project.db.execute("SELECT i.item_id, i.label, m.embed_key FROM items i LEFT JOIN metrics m USING(item_id) ORDER BY i.item_id"):
        h.update(repr(row).encode())
    return h.hexdigest()


def find_issues(project: Project, emb_file: str, opts: AnalyzeOptions, timings: dict) -> tuple[dict, str, dict]:
    """Stage 2: the dataset-level stages (curator/stages: neighbours, checks, labels,
    outliers, projection) on the project's arrays; one write at the end. Returns the issue
    counts, the feature space the label check used, the map's space with its agreement and
    the label check's fit (out-of-fold error, margin needed)."""
    for stale in project.array_path("").glob(SCRATCH_PREFIX + "*"):  # left by a killed run (the lock is ours)
        shutil.rmtree(stale, ignore_errors=True)
    inputs = DatasetInputs(project.metrics(), np.load(project.array_path(emb_file), mmap_mode="r"),
                           np.asarray(project.thumbnails()), project.classes, user=load_user_embeddings(project),
                           methods=parse_methods(opts.projection), ignore_colour=bool(opts.ignore_colour),
                           scratch_dir=project.array_path(""))
    result = run_stages(inputs, timings, progress=opts.progress)
    clear_cache(project.root)  # maps of the previous analysis
    for method, coords in result.maps.items():
        save_map(project.root, MapSpec(method=method, space=result.map_choice["space"]), coords)
    rows = [
        (int(r.item_id), r.issue, float(r.score), r.severity, r.suggested_label,
         None if pd.isna(r.group_id) else int(r.group_id), None if pd.isna(r.keep) else int(bool(r.keep)))
        for r in result.findings.itertuples(index=False)
    ]
    atomic_save_npy(project.array_path("projection.npy"), result.maps[inputs.methods[0]])
    atomic_save_npy(project.array_path("neighbors.npy"), result.neighbours)
    atomic_save_npy(project.array_path("label_proba.npy"), result.label_proba)
    with transaction(project.db) as c:
        c.execute("DELETE FROM issues")
        c.executemany(
            "INSERT INTO issues(item_id, issue, score, severity, suggested_label, group_id, keep) VALUES (?,?,?,?,?,?,?)",
            rows,
        )
    return result.findings["issue"].value_counts().to_dict(), result.label_space, result.map_choice, result.label_fit


def analyze(project: Project | str | os.PathLike, options: AnalyzeOptions | None = None) -> AnalyzeReport:
    """Analyze a project end to end; cheap when nothing changed since the last run.

    Holds the project's lock throughout (a second analyze on the project fails at once with
    one line); a full disk or a read-only project is one line too, the database intact."""
    opts = options or AnalyzeOptions()
    if opts.batch_size < 1:
        raise CuratorError("--batch-size must be at least 1")
    if opts.engine not in ENGINES:
        raise CuratorError(f"unknown engine {opts.engine!r}: use {' or '.join(ENGINES)}")
    if opts.engine == "ray":
        from .ray_engine import check_options

        check_options(opts)  # Ray installed, cluster reachable: before the project is touched
    project = project if isinstance(project, Project) else Project(project)
    with _explained_write_errors(project), project.analyze_lock():
        project.reload_manifest()  # as the previous holder of the lock left it
        return _analyze_locked(project, opts)


@contextmanager
def _explained_write_errors(project: Project):
    """A full disk, a read-only project or a damaged database: one line, not a traceback."""
    try:
        with reporting_damage(project.root / DATABASE):
            yield
    except CuratorError:
        raise
    except (OSError, sqlite3.Error) as exc:
        explained = write_failure(exc, project.root)
        if explained is None:
            raise
        raise explained from None


def _outputs_problem(project: Project, n: int, trusted: dict) -> str | None:
    for name, width, dtype in OUTPUT_ARRAYS:
        why = problem(project.array_path(name), (n, width), dtype, trusted.get(name))
        if why:
            return f"arrays/{name} ({why})"
    return None


def _analyze_locked(project: Project, opts: AnalyzeOptions) -> AnalyzeReport:
    timings: dict = {}
    rebuilt: list[str] = []
    t_all = time.perf_counter()
    unfinished_before = project.analysis_incomplete
    trusted = _trusted_checksums(project)
    notes: list[str] = []
    backbone_key, emb_file, processed, reused = scan_and_embed(project, opts, timings, trusted, rebuilt, notes)
    if opts.embeddings:
        from .user_embeddings import store_user_embeddings

        store_user_embeddings(project, opts.embeddings)
    n = len(project)
    notes += [n for n in [label_check_note(project.classes)] if n]
    fingerprint = _fingerprint(project, backbone_key, opts)
    stored = project.db.execute("SELECT fingerprint FROM stages WHERE name='issues'").fetchone()
    outputs_problem = _outputs_problem(project, n, trusted) if project.is_analyzed else "not analyzed yet"
    if outputs_problem and project.is_analyzed:
        rebuilt.append(outputs_problem)
    issues_current = bool(stored and stored[0] == fingerprint and not outputs_problem and not unfinished_before)
    if issues_current and not processed and not rebuilt:
        counts = dict(project.db.execute("SELECT issue, COUNT(*) FROM issues GROUP BY issue").fetchall())
        if not trusted:  # analyzed by a curator that kept no checksums: record them now
            _save_analysis(project, dict(project.analysis), emb_file)
        notes += [n for n in [label_margin_note(project.analysis)] if n]
        return AnalyzeReport(n, processed, reused, counts, timings, up_to_date=True, notes=notes)
    project.mark_analysis_started()
    if issues_current:
        # same images, labels and backbone: only damaged array files were redone from them,
        # so the stored issues still hold; refresh the checksums below
        counts = dict(project.db.execute("SELECT issue, COUNT(*) FROM issues GROUP BY issue").fetchall())
        analysis = dict(project.analysis)
    else:
        counts, label_space, map_choice, label_fit = find_issues(project, emb_file, opts, timings)
        timings["total"] = round(time.perf_counter() - t_all, 3)
        with transaction(project.db) as c:
            c.execute("INSERT OR REPLACE INTO stages(name, fingerprint) VALUES ('issues', ?)", (fingerprint,))
        dim = int(np.load(project.array_path(emb_file), mmap_mode="r").shape[1])
        analysis = {
            "backbone": opts.backbone,
            "backbone_key": backbone_key,
            "embeddings_file": emb_file,
            "embedding_dim": dim,
            "projection": parse_methods(opts.projection)[0],
            "projections": parse_methods(opts.projection),
            "map_space": map_choice["space"],
            "map_space_agreement": map_choice["agreement"],
            "user_embeddings": project.manifest.get("user_embeddings"),
            "label_features": label_space,
            "label_error": label_fit.get("error"),
            "label_margin": label_fit.get("margin"),
            "ignore_colour": bool(opts.ignore_colour),
            "items": n,
            "issues": {k: int(v) for k, v in counts.items()},
            "timings": timings,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "curator_version": __version__,
            "analysis_version": ANALYSIS_VERSION,
            "label_proba_classes": project.classes,
        }
    _save_analysis(project, analysis, emb_file)
    notes += [n for n in [label_margin_note(analysis)] if n]
    return AnalyzeReport(n, processed, reused, counts, timings, rebuilt=rebuilt, notes=notes)


def _save_analysis(project: Project, analysis: dict, emb_file: str) -> None:
    """Record the analysis with the checksums of its array files, clearing the "incomplete"
    mark in the same atomic manifest write."""
    names = ["thumbnails.npy", emb_file] + [name for name, _, _ in OUTPUT_ARRAYS]
    analysis["array_checksums"] = {name: checksum(project.array_path(name)) for name in names}
    project.manifest["analysis"] = analysis
    project.manifest.pop(INCOMPLETE, None)
    project.save_manifest()
