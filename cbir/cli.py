"""The ``cbir`` command: a thin shell over the library (parse, call, print).

Library errors (:class:`cbir.errors.CbirError`) become a one-line message on
stderr and exit code 2 here and nowhere else. With ``--json`` stdout holds exactly
one JSON document; progress bars and notes go to stderr.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click

from cbir.distances import COMPACT, SEARCH_METRICS
from cbir.errors import CbirError

#: cbir.store.DEFAULT_DB, written out: importing the store (SQLAlchemy) took most of 'cbir --help'.
DEFAULT_DB = "cbir.db"

EXIT_ERROR = 2


class CbirFailure(click.ClickException):
    """A library error shown as ``Error: <message>`` with exit code 2."""

    exit_code = EXIT_ERROR


def handle_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn library errors into one-line messages; never show a traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except CbirError as exc:
            raise CbirFailure(_one_line(str(exc))) from None
        except KeyboardInterrupt:
            raise click.Abort() from None
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:
            if os.environ.get("CBIR_DEBUG"):
                raise
            raise internal_error(exc) from None

    return wrapper


def internal_error(exc: BaseException) -> CbirFailure:
    """An unexpected exception as one line and exit code 2: it is a bug, and says how to report it."""
    return CbirFailure(
        f"internal error (a bug in cbir; please report it): {type(exc).__name__}: {_one_line(str(exc))} "
        "(set CBIR_DEBUG=1 for a traceback)"
    )


def _one_line(message: str) -> str:
    return " ".join(message.split()) or "(no message)"


class UsageFailure(click.ClickException):
    """A usage error shown as one line, ``Error: <message> (see 'cbir CMD --help')``, exit code 2."""

    exit_code = EXIT_ERROR


class _Commands(click.Group):
    """The command group; its boundary catches what a command without ``handle_errors`` lets through,
    and shortens usage errors (click prints the usage and a hint around them) to one line."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.exceptions.NoArgsIsHelpError:
            raise  # plain 'cbir': the help page
        except click.UsageError as exc:
            raise UsageFailure(f"{_one_line(exc.format_message())} (see '{ctx.command_path} --help')") from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            where = exc.ctx.command_path if exc.ctx is not None else ctx.command_path
            raise UsageFailure(f"{_one_line(exc.format_message())} (see '{where} --help')") from None
        except CbirError as exc:
            raise CbirFailure(_one_line(str(exc))) from None
        except (click.ClickException, click.exceptions.Exit, click.Abort, KeyboardInterrupt):
            raise
        except Exception as exc:
            if os.environ.get("CBIR_DEBUG"):
                raise
            raise internal_error(exc) from None


def db_option(command: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--db",
        default=lambda: os.environ.get("CBIR_DB", DEFAULT_DB),
        show_default="cbir.db, or $CBIR_DB",
        help="SQLite file or database URL (postgresql://user@host/dbname).",
    )(command)


def emit_json(document: Any) -> None:
    """Print one JSON document on stdout."""
    click.echo(json.dumps(document, indent=2, ensure_ascii=False))


def _tqdm() -> Any:
    """tqdm's bar class, without its monitor thread: while another thread runs, ``cbir index`` cannot
    fork its workers (they would start as fresh interpreters, each with its own color table)."""
    from tqdm import tqdm

    tqdm.monitor_interval = 0
    return tqdm


@contextmanager
def progress_bar(description: str, *, quiet: bool) -> Iterator[Callable[[int, int], None]]:
    """A tqdm bar on stderr, as a ``progress(done, total)`` callback for library functions."""
    tqdm = _tqdm()
    with tqdm(total=0, unit="img", file=sys.stderr, disable=quiet or None, desc=description) as bar:

        def progress(done: int, total: int) -> None:
            if bar.total != total:
                bar.reset(total=total)
            bar.update(done - bar.n)

        yield progress


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cbir")
def main() -> None:
    """Content-based image search by color."""


@main.command()
@click.argument("folder", type=click.Path(file_okay=False, path_type=str), required=False)
@db_option
@click.option("--colors", "n_colors", type=click.IntRange(16, 1024), default=None, help="Codebook size of a new index [default: 128].")
@click.option("--layout", default=None, help="Spatial layout of a new index, e.g. global, grid2, global+grid2.")
@click.option("--workers", type=click.IntRange(1, 256), default=None, help="Extraction processes [default: number of cores].")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of codebook learning.")
@click.option("--max-pixels", type=click.IntRange(1), default=None, help="Refuse images with more pixels [default: 90,000,000].")
@click.option("--batch-size", type=click.IntRange(1), default=500, show_default=True,
              help="Rows per transaction: a crash loses at most this many (or 2 s of work).")
@click.option("--prune", is_flag=True, help="Confirm a sync that empties FOLDER's rows or removes most of them.")
@click.option("--max-removal-share", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="Without --prune, a sync removing more than this share of FOLDER's rows stops before writing.")
@click.option("--remove-root", "remove_root", metavar="DIR", default=None,
              help="Forget the root DIR and every row inside it (instead of indexing FOLDER).")
@click.option("--cluster", default=None, metavar="tcp://HOST:PORT|local:N",
              help="Extract on the workers of this Dask scheduler (files at the same paths on every worker), "
                   "or on a local Dask cluster of N processes. Needs: pip install 'cbir[distributed]'.")
@click.option("--refit", is_flag=True, help="Fit the compact projection again on a fresh sample and re-project every image.")
@click.option("--augment", type=click.IntRange(0), default=None, metavar="K",
              help="Search vectors averaged with their K nearest neighbours (DBA; 0: off); kept for later runs.")
@click.option("--json", "as_json", is_flag=True, help="Print the run's report as JSON.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@handle_errors
def index(folder: str | None, db: str, n_colors: int | None, layout: str | None, workers: int | None, seed: int,
          max_pixels: int | None, batch_size: int, prune: bool, max_removal_share: float, remove_root: str | None,
          cluster: str | None, refit: bool, augment: int | None, as_json: bool, quiet: bool) -> None:
    """Build or sync the index of every image under FOLDER (another folder adds a root to the index)."""

    from cbir.images import DEFAULT_MAX_PIXELS
    from cbir.store import Store
    from indexer import index_folder
    from indexer.roots import forget_root

    if folder is not None and remove_root is not None:
        raise click.UsageError("give exactly one of FOLDER or --remove-root DIR")
    if remove_root is not None:
        with Store(db) as store:
            root, dropped = forget_root(store, remove_root)
        if as_json:
            emit_json({"removed_root": root, "removed": dropped})
        else:
            click.echo(f"forgot root {root}: {dropped} image rows removed", err=True)
        return
    if folder is None:
        raise click.UsageError("give exactly one of FOLDER or --remove-root DIR")
    from indexer.cluster import extractors_for

    # The cluster first: when it cannot be reached, nothing is written.
    with extractors_for(cluster, workers=workers) as extractors, Store(db, create=True) as store, \
            progress_bar("indexing", quiet=quiet) as progress:
        report = index_folder(
            folder, store, n_colors=n_colors, layout=layout, workers=workers, seed=seed,
            max_pixels=max_pixels or DEFAULT_MAX_PIXELS, batch_size=batch_size, progress=progress,
            prune=prune, max_removal_share=max_removal_share, extractors=extractors, refit=refit,
            augment=augment,
        )
    if report.codebook_note:
        click.echo(f"note: {report.codebook_note}", err=True)
    if as_json:
        emit_json(report.to_dict())
        return
    vectors = report.vectors
    # The summary stays one line: the compact vectors' part only when the run projected or fitted.
    projected = (f"; {vectors['projected']} compact vectors{' (projection fitted)' if vectors['fitted'] else ''}"
                 if vectors.get("fitted") or vectors.get("projected") else "")
    click.echo(
        f"{report.scanned} images found: {report.added} added, {report.updated} updated, {report.moved} moved, "
        f"{report.removed} removed, {report.unchanged + report.touched} unchanged, {len(report.failed)} skipped "
        f"({report.seconds:.1f} s; {report.n_colors} colors, {report.layout} layout{projected})",
        err=True,
    )
    if report.videos:
        v = report.videos
        click.echo(f"{v['videos']} videos: {v['added']} added, {v['updated']} updated, {v['unchanged']} unchanged "
                   f"({v['shots']} shot keyframes written, {v['removed']} old rows removed)", err=True)
    if report.failed:
        click.echo("skipped:", err=True)
        for failure in report.failed[:20]:
            click.echo(f"  {failure.path}: {failure.reason}", err=True)
        if len(report.failed) > 20:
            click.echo(f"  ... and {len(report.failed) - 20} more (see 'cbir info --failures')", err=True)


@main.command()
@click.argument("image", type=str, required=False)
@db_option
@click.option("--colors", "colors_text", metavar="'#RRGGBB:W,...'", default=None,
              help="Query by up to 5 colors with weights instead of an image, e.g. '#e0c080:0.6,#3060c0:0.4'.")
@click.option("-k", "k", type=click.IntRange(1), default=10, show_default=True, help="Number of results.")
@click.option("--metric", type=click.Choice(SEARCH_METRICS), default=COMPACT, show_default=True,
              help="compact: the learned 128-number vectors; any other: the full histograms.")
@click.option("--exact", "mode", flag_value="exact",
              help="Exact search even on large indexes (default: exact below 50,000 images, approximate above).")
@click.option("--approximate", "mode", flag_value="ann", help="Compact candidates re-ranked by --metric, whatever the size.")
@click.option("--brute", "mode", flag_value="brute", help="Compare with every stored row (same ranking as --exact).")
@click.option("--expand", type=click.IntRange(0), default=None, metavar="N",
              help="Query expansion: average the compact query with its first N results, then search again.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@handle_errors
def search(image: str | None, db: str, colors_text: str | None, k: int, metric: str, mode: str | None,
           expand: int | None, as_json: bool) -> None:
    """Rank the indexed images by color similarity to IMAGE (or to --colors)."""
    from cbir.color_query import format_colors, parse_colors
    from cbir.vectors import use_threads
    from search import Searcher
    from search.searcher import APPROX_MIN_SIZE

    if (image is None) == (colors_text is None):
        raise click.UsageError("give exactly one of IMAGE or --colors")
    colors = parse_colors(colors_text) if colors_text is not None else None
    method = mode or "auto"
    _check_expand(expand, metric)
    use_threads(1)
    searcher = Searcher.open(db)
    if expand is not None:
        searcher.expand = expand
    try:
        if colors is not None:
            results = searcher.search_colors(colors, k=k, metric=metric, method=method)
        else:
            results = searcher.search_image(image, k=k, metric=metric, method=method)
        approximate = method == "ann" or (method == "auto" and searcher.store.count() >= APPROX_MIN_SIZE)
        frames = searcher.store.video_frames(r.id for r in results)  # results that are shots of a video
    finally:
        searcher.store.close()
    if searcher.note:
        click.echo(f"note: {searcher.note}", err=True)
    elif approximate:
        click.echo("note: approximate ranking (" + ("IVF lists of the compact vectors" if metric == COMPACT else
                   f"compact candidates re-ranked by {metric}") + "); --exact ranks exactly", err=True)
    if as_json:
        query = f"colors:{format_colors(colors)}" if colors is not None else os.path.abspath(str(image))
        documents = [r.to_dict() for r in results]
        for document in documents:
            if document["id"] in frames:
                document["video"] = frames[document["id"]].to_dict()
        emit_json({"query": query, "metric": metric, "approximate": approximate and not searcher.note,
                   "note": searcher.note, "results": documents})
        return
    width = len(str(len(results)))
    for result in results:
        click.echo(f"{result.rank:>{width}}  {result.distance:.6f}  {result.path}")


@main.command()
@db_option
@click.option("--failures", is_flag=True, help="List the files that could not be indexed, with reasons.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@handle_errors
def info(db: str, failures: bool, as_json: bool) -> None:
    """Statistics of an index."""
    from cbir.store import Store

    with Store(db) as store:
        found = store.codebook()
        document: dict[str, Any] = {
            "db": db,
            "images": store.count(),
            "codebook_size": found[1].n_colors if found else None,
            "layout": found[2] if found else None,
            "codebook_fingerprint": found[1].fingerprint if found else None,
            "codebook_params": found[1].params if found else None,
            "failures": store.failure_count(),
            "generation": store.generation(),
            "roots": [{"path": path, "images": n} for path, n in store.roots().items()],
        }
        if found:
            from cbir.projection import stored_projection
            from indexer.project import refit_advice

            projection = stored_projection(store, found[1].centers)
            document["projection"] = ({"fingerprint": projection[1].fingerprint, "dim": projection[1].dim,
                                       "projected": store.projected_count(projection[0]), **projection[1].params}
                                      if projection else None)
            document["advice"] = refit_advice(store, found[1])
        if failures:
            document["failed"] = [{"path": f.path, "reason": f.reason} for f in store.failures()]
    if as_json:
        emit_json(document)
        return
    for key in ("db", "images", "codebook_size", "layout", "codebook_fingerprint", "failures"):
        click.echo(f"{key:>20}: {document[key]}")
    for root in document["roots"]:
        click.echo(f"{'root':>20}: {root['path']} ({root['images']} images)")
    if document.get("projection"):
        p = document["projection"]
        click.echo(f"{'projection':>20}: {p['fingerprint']} ({p['dim']} dimensions, fitted on {p['fitted_on']} of "
                   f"{p['collection']} images, {p['projected']} projected)")
    if document.get("advice"):
        click.echo(f"note: {document['advice']}", err=True)
    for failure in document.get("failed", []):
        click.echo(f"  {failure['path']}: {failure['reason']}")


# --- palettes and posterized images ---

# Light imports (numpy only, sklearn is imported on use): the option choices need them.
from cbir.palette import DEFAULT_METHOD, METHODS, SORT_ORDERS
from cbir.palette.swatches import STYLES


def _method_option(command: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--method", type=click.Choice(METHODS), default=DEFAULT_METHOD, show_default=True,
        help="Clustering in L*a*b*: mini-batch k-means, k-means, or ward agglomerative (on a small sample).",
    )(command)


def _seed_option(command: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--seed", type=int, default=0, show_default=True, help="Seed of sampling and clustering.")(command)


def _note(message: str | None) -> None:
    if message:
        click.echo(f"note: {message}", err=True)


@main.command()
@click.argument("image", type=str)
@click.option("-k", "k", type=click.IntRange(1, 256), default=10, show_default=True, help="Number of colors.")
@_method_option
@click.option("--sort", "sort", type=click.Choice(SORT_ORDERS), default="proportion", show_default=True,
              help="proportion (largest first), lightness (dark to light), hue, red/green/blue, a/b (Lab channels), "
                   "spread (along the axis of largest spread), perceptual (similar colors side by side).")
@_seed_option
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Write the image with the palette strip under it (PNG, JPEG, ...).")
@click.option("--style", type=click.Choice(STYLES), default="swatches", show_default=True,
              help="Strip of equal swatches, or a bar with segments proportional to the shares.")
@click.option("--strip-only", is_flag=True, help="With --out: write the strip alone (as wide as the image).")
@click.option("--barcode", type=click.Path(dir_okay=False), default=None,
              help="VIDEO|FOLDER: write the movie barcode, one column per sampled frame (PNG).")
@click.option("--barcode-color", type=click.Choice(["average", "dominant"]), default="average", show_default=True,
              help="Color of a barcode column: the frame's mean or its dominant color.")
@click.option("--sheet", type=click.Path(dir_okay=False), default=None,
              help="VIDEO|FOLDER: write a contact sheet, one keyframe per shot (or still) with its palette strip.")
@click.option("--frames", type=click.IntRange(1, 10_000), default=400, show_default=True,
              help="VIDEO|FOLDER: frames (or stills) sampled evenly for the palette and the barcode.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@handle_errors
def palette(image: str, k: int, method: str, sort: str, seed: int, out: str | None, style: str, strip_only: bool,
            barcode: str | None, barcode_color: str, sheet: str | None, frames: int, as_json: bool) -> None:
    """The K dominant colors of IMAGE, or of a VIDEO or FOLDER of stills (sampled frames), and their shares."""
    from cbir.cli_films import film_palette_command, is_film_source
    from cbir.images import load_image
    from cbir.palette import extract_palette
    from cbir.palette.swatches import palette_picture, save_image

    if is_film_source(image):
        return film_palette_command(image, k=k, method=method, sort=sort, seed=seed, out=out, barcode=barcode,
                                    barcode_color=barcode_color, sheet=sheet, frames=frames, as_json=as_json)
    if barcode or sheet:
        raise click.UsageError("--barcode and --sheet take a video or a folder of stills")
    if strip_only and not out:
        raise click.UsageError("--strip-only needs --out FILE")
    rgb = load_image(image, max_side=None)
    found = extract_palette(rgb, k=k, method=method, sort=sort, seed=seed)
    _note(found.note)
    if out:
        save_image(out, palette_picture(rgb, found.rgb, found.proportions, style=style, strip_only=strip_only))
        click.echo(f"wrote {out}", err=True)
    if as_json:
        emit_json(found.to_dict())
        return
    for color in found.colors:
        lab = ", ".join(f"{v:6.1f}" for v in color.lab)
        click.echo(f"{color.hex}  rgb({color.rgb[0]:3d}, {color.rgb[1]:3d}, {color.rgb[2]:3d})  "
                   f"lab({lab})  {color.proportion:7.2%}")


@main.command()
@click.argument("image", type=str)
@click.option("-k", "k", type=click.IntRange(1, 256), default=None, help="Number of colors [default: 16; 8 for a video].")
@click.option("--out", type=click.Path(dir_okay=False), required=True, help="Output file; PNG keeps it exact.")
@click.option("--codebook", "codebook_db", default=None, metavar="DB",
              help="Use the global codebook of this index (what the search engine sees) instead of the image's colors.")
@click.option("--side-by-side", is_flag=True, help="Write the original and the posterized image next to each other.")
@click.option("--per-shot", is_flag=True, help="VIDEO: learn a palette per shot instead of one for the whole video.")
@click.option("--codec", default=None, metavar="FOURCC", help="VIDEO: output codec [default: FFV1 for .avi/.mkv, mp4v for .mp4].")
@click.option("--quiet", "-q", is_flag=True, help="VIDEO: no progress bar.")
@_method_option
@_seed_option
@handle_errors
def quantize(image: str, k: int | None, out: str, codebook_db: str | None, side_by_side: bool, per_shot: bool,
             codec: str | None, quiet: bool, method: str, seed: int) -> None:
    """Posterize IMAGE or VIDEO: every pixel replaced by the color of its cluster (in L*a*b*)."""
    from pathlib import Path

    from cbir.cli_films import film_quantize_command, is_film_source

    if is_film_source(image):
        if codebook_db or side_by_side:
            raise click.UsageError("--codebook and --side-by-side take an image, not a video")
        return film_quantize_command(image, k=k or 8, out=out, per_shot=per_shot, method=method, seed=seed, codec=codec,
                                     quiet=quiet)

    from cbir.images import load_image
    from cbir.palette.posterize import DEFAULT_K, index_codebook, posterize, posterize_with_codebook
    from cbir.palette.swatches import LOSSLESS_SUFFIXES, save_image
    from cbir.palette.swatches import side_by_side as beside
    from cbir.store import Store

    if codebook_db and k is not None:
        raise click.UsageError("-k and --codebook exclude each other: the codebook fixes the colors")
    rgb = load_image(image, max_side=None)
    if codebook_db:
        with Store(codebook_db) as store:
            codebook = index_codebook(store)
        posterized = posterize_with_codebook(rgb, codebook)
        colors = f"the {codebook.n_colors}-color codebook of {codebook_db}"
    else:
        result = posterize(rgb, k=k or DEFAULT_K, method=method, seed=seed)
        _note(result.palette.note)
        posterized = result.rgb
        colors = f"{len(result.palette)} colors"
    if Path(out).suffix.lower() not in LOSSLESS_SUFFIXES:
        _note(f"{Path(out).suffix or 'this format'} is not lossless: the file will hold more colors; use .png")
    save_image(out, beside(rgb, posterized) if side_by_side else posterized)
    click.echo(f"wrote {out} ({rgb.shape[1]}x{rgb.shape[0]}, {colors})", err=True)


@main.command("plot-pixels")
@click.argument("image", type=str)
@click.option("-k", "k", type=click.IntRange(1, 256), default=8, show_default=True, help="Number of clusters.")
@click.option("--out", type=click.Path(dir_okay=False), required=True,
              help="FILE.png (matplotlib; also .svg, .pdf) or FILE.html (interactive; needs plotly: pip install -e '.[plot]').")
@click.option("--space", type=click.Choice(["rgb", "lab"]), default="rgb", show_default=True, help="Axes of the plot.")
@click.option("--points", "n_points", type=click.IntRange(1, 100_000), default=5000, show_default=True,
              help="Pixels plotted (a random sample).")
@_method_option
@_seed_option
@handle_errors
def plot_pixels(image: str, k: int, out: str, space: str, n_points: int, method: str, seed: int) -> None:
    """3-D scatter of IMAGE's pixels colored by cluster, with the cluster centers marked."""
    from cbir.images import load_image
    from cbir.palette.pixelplot import check_plot_path, pixel_cloud, save_pixel_plot

    check_plot_path(out)  # before decoding: a missing plotly is reported at once
    cloud = pixel_cloud(load_image(image, max_side=None), k=k, n_points=n_points, method=method, seed=seed)
    _note(cloud.palette.note)
    save_pixel_plot(cloud, out, space=space)
    click.echo(f"wrote {out} ({len(cloud.rgb):,} pixels, {len(cloud.palette)} clusters)", err=True)


# --- web page and HTTP API ---


@main.command()
@db_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on (0.0.0.0: every interface).")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="TCP port.")
@click.option("--max-upload-mb", type=click.FloatRange(0, min_open=True), default=20.0, show_default=True,
              help="Larger uploads are refused with 413.")
@handle_errors
def serve(db: str, host: str, port: int, max_upload_mb: float) -> None:
    """Serve the search page and the HTTP API (its schema at /docs)."""
    try:
        import fastapi  # noqa: F401
        import python_multipart  # noqa: F401
        import uvicorn
    except ImportError:
        raise CbirFailure("install the web extra: pip install -e '.[web]'") from None
    import copy

    from uvicorn.config import LOGGING_CONFIG

    from cbir.vectors import use_threads
    from search import Searcher
    from search.http import create_app

    # Each request is one query, and requests already run side by side: OpenMP threads per query
    # only spin (a 1,000-image search took 8-11 ms with two of them, 5 ms with one).
    use_threads(1)
    Searcher.open(db).store.close()  # no index, or not a cbir database: one line now, not a traceback at startup
    app = create_app(db, max_upload_bytes=max(1, int(max_upload_mb * 1_000_000)))
    log_config = copy.deepcopy(LOGGING_CONFIG)
    log_config["handlers"]["access"]["stream"] = "ext://sys.stderr"  # stdout stays clean
    click.echo(f"serving {db} on http://{host}:{port}/ (Ctrl+C stops)", err=True)
    uvicorn.run(app, host=host, port=port, log_config=log_config)


# --- retrieval accuracy ---

#: Descriptors ``cbir evaluate`` can measure: the project's own, and the peer baselines of cbir.evaluation.peers.
DESCRIPTORS = ("cbir", "rgb-grid3", "hsv-regions")


def _check_expand(expand: int | None, metric: str | None) -> None:
    from cbir.errors import BadInputError

    if expand and metric not in (None, COMPACT):
        raise BadInputError(f"--expand {expand} expands compact queries; it does not apply to --metric {metric}")


def _benchmark_ranker(benchmark: Any, db: str, *, metric: str, n_colors: int | None, layout: str | None,
                      workers: int | None, quiet: bool, expand: int | None = None) -> tuple[Any, Callable[[Any], Any], dict]:
    """Index the benchmark into ``db`` (or sync it) and rank through Searcher.search_image, as 'cbir search' does."""

    from cbir.errors import BadInputError
    from cbir.store import Store
    from indexer import index_folder
    from search import Searcher

    store = Store(db, create=True)
    root = benchmark.root.rstrip(os.sep) + os.sep
    outside = [path for path in store.file_states() if not path.startswith(root)]
    if outside:
        store.close()
        raise BadInputError(
            f"{db} also indexes {len(outside)} image(s) outside {benchmark.root} (e.g. {outside[0]}); "
            "they would be ranked with the dataset's images: use another --db"
        )
    with progress_bar("indexing", quiet=quiet) as progress:
        report = index_folder(benchmark.root, store, n_colors=n_colors, layout=layout, workers=workers, progress=progress)
    wanted = {item.path for item in benchmark.items}
    failed = [f for f in report.failed if f.path in wanted]
    if failed:
        store.close()
        shown = "; ".join(f"{f.path}: {f.reason}" for f in failed[:3])
        raise BadInputError(f"{len(failed)} image(s) of the dataset could not be read ({shown}); remove or fix them")
    searcher = Searcher(store)
    if expand is not None:
        searcher.expand = expand
    n = store.count()

    def ranker(queries: Any) -> list[list[str]]:
        return [[r.path for r in results] for results in searcher.search_images(list(queries), k=n, metric=metric)]

    config = {
        "descriptor": "cbir",
        "db": db,
        "n_colors": searcher.codebook.n_colors,
        "layout": searcher.descriptor.layout,
        "max_side": searcher.descriptor.max_side,
        "codebook_fingerprint": searcher.codebook.fingerprint,
        "images": n,
    }
    if metric == COMPACT:
        config["expand"] = searcher.expand
        config["augment"] = store.meta("augment")
    return store, ranker, config


def _peer_ranker(benchmark: Any, name: str, *, quiet: bool) -> tuple[Callable[[Any], Any], dict]:
    """Describe every image with a peer baseline and rank by brute force."""
    from cbir.evaluation.peers import PeerIndex, peer

    tqdm = _tqdm()

    chosen = peer(name)
    with tqdm(total=len(benchmark.items), unit="img", file=sys.stderr, disable=quiet or None, desc=name) as bar:
        index = PeerIndex.build(chosen, [item.path for item in benchmark.items], progress=lambda done, total: bar.update(1))
    config = {"descriptor": name, "summary": chosen.summary, "images": len(index.paths)}
    return index.rank_paths, config


def _run_evaluation(benchmark: Any, *, descriptor: str, metric: str | None, db: str, n_colors: int | None,
                    layout: str | None, workers: int | None, quiet: bool, expand: int | None = None) -> Any:
    """One evaluation of DESCRIPTOR (and METRIC) on a benchmark: the report."""
    from cbir.distances import SIMPLE_METRICS
    from cbir.errors import BadInputError
    from cbir.evaluation import evaluate as run
    from cbir.evaluation.peers import peer

    store = None
    if descriptor == "cbir":
        metric = metric or COMPACT
        click.echo(f"evaluating with the index at {db}", err=True)
        store, ranker, config = _benchmark_ranker(
            benchmark, db, metric=metric, n_colors=n_colors, layout=layout, workers=workers, quiet=quiet,
            expand=expand,
        )
    else:
        metric = metric or peer(descriptor).metric
        if metric not in SIMPLE_METRICS:
            raise BadInputError(f"the {descriptor} baseline is not a codebook histogram; use one of {', '.join(SIMPLE_METRICS)}")
        ranker, config = _peer_ranker(benchmark, descriptor, quiet=quiet)
    try:
        with _tqdm()(total=benchmark.n_queries, unit="query", file=sys.stderr, disable=quiet or None, desc="queries") as bar:
            return run(
                benchmark.items, ranker, protocol=benchmark.protocol, metric=metric, config=config,
                with_ns=benchmark.with_ns, progress=lambda done, total: bar.update(done - bar.n),
            )
    finally:
        if store is not None:
            store.close()


def _print_report(document: dict) -> None:
    config = document["config"]
    what = config["descriptor"]
    if what == "cbir":
        what += f" ({config['n_colors']} colors, {config['layout']} layout)"
    click.echo(f"{document['protocol']} protocol, {document['queries']} queries, {what}, metric {document['metric']}")
    click.echo(f"  mAP    {_num(document['mAP'])}")
    click.echo("  " + "  ".join(f"P@{k} {_num(v)}" for k, v in document["precision_at"].items()))
    click.echo("  " + "  ".join(f"R@{k} {_num(v)}" for k, v in document["recall_at"].items()))
    if "ns_score" in document:
        click.echo(f"  N-S    {document['ns_score']:.3f} (of 4)")
    if document["queries_without_relevant"]:
        click.echo(f"  {document['queries_without_relevant']} queries have no relevant image (left out of mAP)")
    per_class = document["per_class"]
    shown = list(per_class.items())[:30]
    click.echo(f"  per-class AP ({len(per_class)} classes):")
    for group, ap in shown:
        click.echo(f"    {group:>12}  {_num(ap)}")
    if len(per_class) > len(shown):
        click.echo(f"    ... {len(per_class) - len(shown)} more (see --json)")
    click.echo(f"  {document['seconds']:.1f} s")


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _label(document: dict) -> str:
    config = document.get("config", {})
    name = config.get("descriptor", "?")
    if name == "cbir":
        name = f"cbir k={config.get('n_colors')} {config.get('layout')}"
    expanded = f" expand={config['expand']}" if config.get("expand") else ""
    return f"{name} / {document.get('metric', '?')}{expanded}"


@main.command()
@click.argument("dataset", type=str)
@db_option
@click.option("--protocol", default=None,
              help="classes (one sub-folder per class), wang, holidays, ukbench, or csv:FILE (columns path, group[, is_query]) "
                   "[default: a fetched set's own, else classes].")
@click.option("--metric", type=click.Choice(SEARCH_METRICS), default=None,
              help=f"Distance [default: {COMPACT}, as 'cbir search'; a peer baseline's own for --descriptor].")
@click.option("--descriptor", type=click.Choice(DESCRIPTORS), default="cbir", show_default=True,
              help="cbir's codebook histogram (through the index, as 'cbir search'), or a peer baseline: "
                   "rgb-grid3 (pochih/CBIR), hsv-regions (PyImageSearch 2014).")
@click.option("--colors", "n_colors", type=click.IntRange(16, 1024), default=None, help="Codebook size of a new index.")
@click.option("--layout", default=None, help="Spatial layout of a new index.")
@click.option("--workers", type=click.IntRange(1, 256), default=None, help="Extraction processes.")
@click.option("--compare", "compare", multiple=True, metavar="METRIC|DESCRIPTOR|expand=N|REPORT.json",
              help="Also evaluate another metric or descriptor, the compact search with query expansion N (expand=N), "
                   "or load an earlier --json report, and put it on the plot. Repeatable.")
@click.option("--expand", type=click.IntRange(0), default=None, metavar="N",
              help="Compact search with query expansion over the first N results (as 'cbir search --expand').")
@click.option("--plot", "plot_file", type=click.Path(dir_okay=False), default=None,
              help="Write a PNG: precision-recall curve and per-class AP bars.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
@handle_errors
def evaluate(dataset: str, db: str, protocol: str | None, metric: str | None, descriptor: str, n_colors: int | None,
             layout: str | None, workers: int | None, compare: tuple[str, ...], expand: int | None,
             plot_file: str | None, as_json: bool, quiet: bool) -> None:
    """Measure retrieval accuracy on a labelled DATASET (a folder, or a set fetched by 'cbir datasets fetch')."""
    from cbir.errors import BadInputError
    from cbir.evaluation.benchmarks import load_benchmark
    from cbir.fetch.catalog import resolve_dataset

    dataset, protocol = resolve_dataset(dataset, protocol)
    benchmark = load_benchmark(dataset, protocol)  # bad names or an empty folder: fail before writing anything
    _check_expand(expand, metric)
    others: list[tuple[str, str | None, dict | None, int | None]] = []
    for spec in compare:
        if spec in SEARCH_METRICS:
            others.append((descriptor, spec, None, None))
        elif spec in DESCRIPTORS:
            others.append((spec, None, None, None))
        elif spec.startswith("expand=") and spec[7:].isdigit():
            others.append(("cbir", COMPACT, None, int(spec[7:])))
        elif spec.endswith(".json"):
            try:
                with open(spec, encoding="utf-8") as handle:
                    others.append(("", None, json.load(handle), None))
            except (OSError, ValueError) as exc:
                raise BadInputError(f"--compare {spec}: cannot read the report ({exc})") from None
        else:
            raise BadInputError(f"--compare {spec!r}: not a metric ({', '.join(SEARCH_METRICS)}), a descriptor "
                                f"({', '.join(DESCRIPTORS)}), expand=N or a .json report")
    options = dict(db=db, n_colors=n_colors, layout=layout, workers=workers, quiet=quiet)
    document = _run_evaluation(benchmark, descriptor=descriptor, metric=metric, expand=expand, **options).to_dict()
    documents = [document]
    for other_descriptor, other_metric, loaded, other_expand in others:
        if loaded is None:
            loaded = _run_evaluation(benchmark, descriptor=other_descriptor, metric=other_metric, expand=other_expand,
                                     **options).to_dict()
        documents.append(loaded)
    if len(documents) > 1:
        document["compare"] = [
            {"label": _label(d), "mAP": d.get("mAP"), "precision_at": d.get("precision_at"), "config": d.get("config")}
            for d in documents[1:]
        ]
    if plot_file:
        from cbir.evaluation.plots import plot_reports

        plot_reports([(_label(d), d) for d in documents], plot_file,
                     title=f"{os.path.basename(benchmark.root)} ({benchmark.protocol} protocol)")
        click.echo(f"plot written to {plot_file}", err=True)
    if as_json:
        emit_json(document)
        return
    for d in documents:
        _print_report(d)


@main.command("make-benchmark")
@click.argument("source", type=str)
@click.argument("out", type=str)
@click.option("--copies", type=click.IntRange(1, 50), default=6, show_default=True, help="Edited copies per source image.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds the edits.")
@click.option("--max-side", type=click.IntRange(16), default=1024, show_default=True, help="Sources are read at up to this side.")
@click.option("--all-queries", is_flag=True, help="Make every image a query (default: only the originals).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@handle_errors
def make_benchmark(source: str, out: str, copies: int, seed: int, max_side: int, all_queries: bool,
                   as_json: bool, quiet: bool) -> None:
    """Make a near-duplicate benchmark in OUT from the images under SOURCE (with groundtruth.csv)."""

    from cbir.evaluation.transforms import make_benchmark as make

    with progress_bar("copies", quiet=quiet) as progress:
        summary = make(source, out, copies=copies, seed=seed, max_side=max_side, all_queries=all_queries, progress=progress)
    if as_json:
        emit_json(summary.to_dict())
        return
    click.echo(f"{summary.images} images in {summary.groups} groups ({summary.queries} queries) written to {summary.out}", err=True)
    for path, reason in summary.skipped:
        click.echo(f"  skipped {path}: {reason}", err=True)
    click.echo(f"measure with: cbir evaluate {summary.out} --protocol csv:{summary.ground_truth} --db {summary.out}.db", err=True)


from cbir.cli_datasets import datasets  # registered last: it imports this module's helpers

main.add_command(datasets)

from cbir.cli_duplicates import duplicates as _duplicates

main.add_command(_duplicates)

# Registered last: cbir.cli_films imports this module's helpers.
from cbir.cli_films import shots

main.add_command(shots)
