"""The ``curator`` command line. Every failure the user can cause ends in one line on stderr
and a non-zero exit code, never a traceback."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from . import __version__
from .errors import CuratorError
from .issue_types import ISSUE_TYPES, validate_issue_types
from .shell import command

if TYPE_CHECKING:  # the annotation only: importing Project here would slow `curator --help`
    from .project import Project


def _fail(message: str, code: int = 1):
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


class _Group(click.Group):
    """Turns CuratorError (and Ctrl-C) into one line instead of a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except CuratorError as exc:
            _fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            _fail("interrupted", 130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="curator")
def main():
    """curator: find duplicates, bad images and label errors in an image-classification dataset."""


@main.command("import")
@click.argument("source", type=click.Path(path_type=Path))
@click.option("--out", "-o", required=True, type=click.Path(path_type=Path), help="Project folder to create.")
@click.option("--labels", "labels_file", type=click.Path(path_type=Path), help="CSV or Parquet with path,label columns.")
@click.option("--copy", is_flag=True, help="Copy the images into the project instead of referencing them in place.")
@click.option("--force", is_flag=True, help="Replace an existing project folder.")
@click.option("--allow-outside-source", is_flag=True,
              help="Also import files outside SOURCE: labels-file paths that lead out of it and symlinks in it "
                   "that point out (refused by default, so a labels file cannot pull in any file of the machine).")
@click.option("--embeddings", "embeddings_file", type=click.Path(path_type=Path), default=None,
              help="Your own embeddings, used by analyze instead of the CNN's: .npy (one row per item, import order) "
                   "or CSV/Parquet with path plus a list column or numeric columns.")
def import_cmd(source, out, labels_file, copy, force, allow_outside_source, embeddings_file):
    """Make a project from a class-per-folder tree, or a folder plus a labels file.

    The labels file is a Parquet file or a CSV (separated by commas, semicolons, tabs or |,
    found from the header) with columns path,label; relative paths are read from SOURCE. A file
    listed twice (also as ./a.png and a.png) is one item if both rows give one label, an error
    otherwise. Listed files that do not exist are imported with a note (analyze reports them
    unreadable); if none of them exists, the import stops.
    """
    from .analyze import label_check_note
    from .importers import import_project

    def note(message):
        click.echo(f"note: {message}", err=True)

    project = import_project(source, out, labels_file, copy=copy, overwrite=force,
                             allow_outside_source=allow_outside_source, note=note)
    if embeddings_file is not None:
        from .user_embeddings import store_user_embeddings

        try:
            dim = store_user_embeddings(project, embeddings_file)
        except CuratorError:
            import shutil

            project.close()
            shutil.rmtree(project.root, ignore_errors=True)  # no half-made project: import again once fixed
            raise
        click.echo(f"stored your {dim}-dimensional embeddings (used by analyze instead of the CNN's)")
    n = len(project)
    labelled = int(project.items()["label"].notna().sum())
    click.echo(f"created project {project.root} with {n} images ({labelled} labelled, {len(project.classes)} classes)")
    if label_check_note(project.classes):
        note(label_check_note(project.classes))
    click.echo(f"next: {command('curator', 'analyze', project.root)}")


def _is_terminal() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()


@main.command()
@click.argument("names", nargs=-1)
@click.option("--dir", "target_dir", type=click.Path(path_type=Path), default=Path("."), show_default=True,
              help="Where the project folders are written.")
@click.option("--list", "list_only", is_flag=True, help="List the sandbox datasets (size, source, licence) and exit.")
@click.option("--force", is_flag=True, help="Download again (ignoring the cache) and rebuild the projects.")
def download(names, target_dir, list_only, force):
    """Fetch sandbox datasets into project folders under DIR.

    NAME is one of: digits (offline, bundled), mnist, fashion-mnist, cifar10, caltech101; each
    makes <name>-train and <name>-test projects (caltech101: stratified 60/40 split, seed fixed).
    Without NAME, a terminal gets an interactive picker. Downloads are checksummed and cached in
    DIR/.curator-cache (or $CURATOR_CACHE), so a second download does not fetch again.
    $CURATOR_MIRROR=URL fetches URL/<name>/<file> instead of the upstream hosts.
    """
    from sandbox_datasets import listing_lines, lookup, registry

    recipes = registry()
    if list_only:
        for line in listing_lines(recipes):
            click.echo(line)
        return
    if not names:
        if not _is_terminal():
            for line in listing_lines(recipes):
                click.echo(line)
            click.echo("hint: curator download NAME [NAME ...]   (e.g. curator download digits), "
                       "or run it on a terminal to pick interactively", err=True)
            sys.exit(2)
        from sandbox_datasets.picker import pick

        names = pick(list(recipes.values()))
        if not names:
            raise CuratorError("no dataset selected")
    chosen = []
    for name in names:
        recipe = lookup(name, recipes)
        if recipe is None:
            raise CuratorError(f"unknown dataset {name!r}; available: {', '.join(recipes)}")
        if recipe not in chosen:
            chosen.append(recipe)
    for recipe in chosen:
        recipe.remove_leftovers(Path(target_dir))  # what a killed earlier run left behind
        existing = [Path(target_dir) / p for p in recipe.projects]
        if not force and all((p / "curator.json").exists() for p in existing):
            click.echo(f"{recipe.name}: already there ({', '.join(str(p) for p in existing)}); use --force to redo")
            continue
        for root in recipe.build(Path(target_dir), force):
            click.echo(f"created project {root}")
        click.echo(f"next: {command('curator', 'analyze', existing[0])}")


@main.command()
@click.argument("project", type=click.Path(path_type=Path))
@click.option("--backbone", default="efficientnet-lite0", show_default=True,
              help="Feature extractor: efficientnet-lite0 (offline) or a torchvision model name, e.g. resnet50.")
@click.option("--resolution", type=int, default=None, help="Model input size in pixels (default: 96 for images of <= 64 px, else 224).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@click.option("--batch-size", type=int, default=32, show_default=True)
@click.option("--workers", type=click.IntRange(min=0), default=None,
              help="Threads of the per-image stage. onnxruntime (the default on CPU): N lanes, each decoding and "
                   "embedding its share of the batch (default: one per core, at most one per 8 images of the batch); "
                   "torch: N decode threads ahead of the CNN "
                   "(default 1). 0 = everything inline, one batch at a time.")
@click.option("--projection", default="umap", show_default=True, metavar="METHODS",
              help="2D maps to precompute, comma-separated: umap, tsne, pca (the first is the default map; "
                   "the explorer computes the others on demand).")
@click.option("--embeddings", "embeddings_file", type=click.Path(path_type=Path), default=None,
              help="Your own embeddings instead of the CNN's for neighbours, duplicates, label check, outliers and the map: "
                   ".npy (one row per item, import order) or CSV/Parquet with path plus a list column or numeric columns.")
@click.option("--runtime", type=click.Choice(["auto", "onnx", "torch"]), default="auto", show_default=True,
              help="What runs the CNN: auto = onnxruntime for the default backbone on the CPU (exported once "
                   "into the user cache), torch otherwise.")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="What runs the per-image stage (decode, metrics, thumbnails, embeddings): this process, or Ray Data "
                   "workers (pip install 'curator[ray]'); the rest of analyze runs here either way.")
@click.option("--address", "ray_address", default=None, metavar="ADDR",
              help="With --engine ray: an existing Ray cluster (HOST:PORT, ray://HOST:PORT or auto); without it a "
                   "private Ray is started on this machine and stopped afterwards.")
@click.option("--ray-cpus", type=int, default=None, metavar="N",
              help="With --engine ray and no --address: CPUs (one worker each) of the Ray started here "
                   "(default: all of this machine's).")
@click.option("--ignore-colour", "--ignore-color", "ignore_colour", is_flag=True,
              help="Compare near duplicates in grey levels only, so copies that differ only in colour (a recoloured "
                   "or greyscale version) are grouped too; by default a colour change makes another picture.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
def analyze(project, backbone, resolution, device, batch_size, workers, projection, embeddings_file, runtime, engine,
            ray_address, ray_cpus, ignore_colour, quiet):
    """Embed every image, compute quality metrics and issues, and the 2D projection."""
    from .analyze import AnalyzeOptions
    from .analyze import analyze as run
    from .project import Project
    from .projector import parse_methods

    if engine != "ray" and (ray_address or ray_cpus is not None):
        raise CuratorError("--address and --ray-cpus go with --engine ray")
    proj = Project(project)
    opts = AnalyzeOptions(backbone=backbone, resolution=resolution, device=device, batch_size=batch_size,
                          workers=workers, projection=",".join(parse_methods(projection)), runtime=runtime,
                          progress=not quiet, embeddings=str(embeddings_file) if embeddings_file else None,
                          engine=engine, ray_address=ray_address, ray_cpus=ray_cpus, ignore_colour=ignore_colour)
    report = run(proj, opts)
    if report.up_to_date:
        click.echo(f"{proj.name}: up to date ({report.items} images, nothing changed)")
    else:
        click.echo(f"{proj.name}: analyzed {report.items} images ({report.processed} processed, {report.reused} reused)")
    for what in report.rebuilt:
        click.echo(f"rebuilt damaged or missing {what}")
    for message in report.notes:
        click.echo(f"note: {message}", err=True)
    _print_counts({t: report.issues.get(t, 0) for t in ISSUE_TYPES})
    if not report.up_to_date:
        from .stage_status import summary_lines

        for line in summary_lines(report.timings):
            click.echo(line)
    click.echo(f"next: {command('curator', 'summary', proj.root)}  |  "
               f"{command('curator', 'export', proj.root, '-o', 'issues.csv')}")


def _open_for_reading(path) -> "Project":
    """A project opened read-only (works on read-only folders), warning on stderr when an
    unfinished analyze may have made its stored results stale."""
    from .project import Project

    proj = Project(path, readonly=True)
    warning = proj.stale_warning()
    if warning:
        click.echo(f"warning: {warning}", err=True)
    return proj


def _print_counts(counts: dict):
    width = max(len(k) for k in counts)
    for name, count in counts.items():
        click.echo(f"  {name:<{width}}  {count:>7}")


@main.command()
@click.argument("project", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def summary(project, as_json):
    """Issue counts per type and per class."""
    proj = _open_for_reading(project)
    info = proj.summary()
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    click.echo(f"project {info['project']}: {info['items']} images, {info['flagged_items']} flagged"
               + ("" if info["analyzed"] else " (not analyzed yet)"))
    click.echo("issues:")
    _print_counts(info["issues"])
    click.echo("classes (images / flagged):")
    width = max([len(c) for c in info["classes"]] + [5])
    for name, c in info["classes"].items():
        click.echo(f"  {name:<{width}}  {c['items']:>7}  {c['flagged']:>7}")


@main.command()
@click.argument("project", type=click.Path(path_type=Path))
@click.option("--issue", "issues", multiple=True, help=f"Keep only this issue type (repeatable): {', '.join(ISSUE_TYPES)}.")
@click.option("--tag", "tags", multiple=True, help="Keep only items with this tag (repeatable).")
@click.option("--format", "fmt", type=click.Choice(["csv", "json", "parquet"]), default=None,
              help="Output format (default: from the -o extension, else csv).")
@click.option("--output", "-o", type=click.Path(path_type=Path), default=None, help="Output file (default: stdout for csv/json).")
def export(project, issues, tags, fmt, output):
    """Write the flagged-item list: item_id, path, label, issue, score, severity, suggested_label, group_id, keep."""
    from .export import format_for, write_export

    validate_issue_types(issues)
    fmt = format_for(output, fmt)
    proj = _open_for_reading(project)
    proj.require_analyzed()
    frame = proj.export_frame(issues, tags)
    written = write_export(frame, output, fmt)
    if output is not None:
        click.echo(f"wrote {len(frame)} rows to {written}", err=True)


@main.command()
@click.argument("a", type=click.Path(path_type=Path))
@click.argument("b", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (the contract for scripts) instead of the report.")
@click.option("--output", "-o", type=click.Path(path_type=Path), default=None,
              help="Write the leaked pairs (one row per pair) to this file, for cleaning.")
@click.option("--format", "fmt", type=click.Choice(["csv", "json", "parquet"]), default=None,
              help="Format of -o (default: from its extension, else csv).")
@click.option("--k", "k", type=click.IntRange(1, 100), default=5, show_default=True,
              help="Neighbours defining each image's k-NN ball (PRDC, outside support).")
@click.option("--top", type=click.IntRange(0), default=100, show_default=True,
              help="Rows of outside_support in the JSON (0 = every image of B).")
def compare(a, b, as_json, output, fmt, k, top):
    """Compare split B (candidate, e.g. test) against A (reference, e.g. train).

    Finds B images that are exact or near copies of A images (leaks; pairs whose labels differ
    first), PRDC precision/recall/density/coverage of B against A, the class shift (chi-square),
    per-metric drift (two-sample KS; shifted = p < 0.01 and KS statistic >= 0.1) and the B
    images least like anything in A. Both projects must be analyzed with the same backbone.
    """
    from .compare import compare as run
    from .compare_report import report_lines
    from .export import format_for, write_export
    from .leaks import LEAK_COLUMNS

    if fmt is not None and output is None:
        raise CuratorError("--format applies to the leak file: add -o FILE")
    fmt = format_for(output, fmt) if output is not None else None
    if output is not None and not Path(output).parent.exists():
        raise CuratorError(f"output folder does not exist: {Path(output).parent}")
    pa, pb = _open_for_reading(a), _open_for_reading(b)
    result = run(pa, pb, k=k)
    if output is not None:
        written = write_export(result.leaks.reindex(columns=list(LEAK_COLUMNS)), output, fmt)
        click.echo(f"wrote {len(result.leaks)} leaked pairs to {written}", err=True)
    if as_json:
        click.echo(json.dumps(result.to_dict(top=top), indent=1, allow_nan=False, default=str))
        return
    for line in report_lines(result):
        click.echo(line)
    click.echo(f"next: {command('curator', 'visualize', pa.root, '--compare', pb.root)}")


@main.command()
@click.argument("project", type=click.Path(path_type=Path))
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help="Port on 127.0.0.1 (default: 8501, or the next free one).")
@click.option("--compare", "compare_with", type=click.Path(path_type=Path), default=None,
              help="A second analyzed project (e.g. the test split): adds the Compare page.")
def visualize(project, port, compare_with):
    """Open the explorer (Overview, Data Quality, Label Quality, Tags & Export; Compare with --compare) on 127.0.0.1; Ctrl-C stops it."""
    from .explorer.server import serve
    from .project import Project

    proj = Project(project)
    proj.require_analyzed()
    proj.close()
    other = None
    if compare_with is not None:
        from .compare import check_compatible

        other = Project(compare_with, readonly=True)
        check_compatible(Project(proj.root, readonly=True), other)
        other.close()
        other = other.root
    code = serve(proj.root, port, echo=click.echo, name=proj.name, compare=other)
    if code:
        raise CuratorError(f"the explorer stopped unexpectedly (exit code {code})")


if __name__ == "__main__":  # pragma: no cover
    main()
