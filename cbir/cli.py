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
from collections.abc import Callable
from typing import Any

import click

from cbir.distances import DEFAULT_METRIC, METRICS
from cbir.errors import CbirError
from cbir.store import DEFAULT_DB

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
            raise CbirFailure(str(exc)) from None
        except KeyboardInterrupt:
            raise click.Abort() from None
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:
            if os.environ.get("CBIR_DEBUG"):
                raise
            raise click.ClickException(
                f"internal error: {type(exc).__name__}: {exc} (set CBIR_DEBUG=1 for a traceback)"
            ) from None

    return wrapper


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


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cbir")
def main() -> None:
    """Content-based image search by color."""


@main.command()
@click.argument("folder", type=click.Path(file_okay=False, path_type=str))
@db_option
@click.option("--colors", "n_colors", type=click.IntRange(16, 1024), default=None, help="Codebook size of a new index [default: 128].")
@click.option("--layout", default=None, help="Spatial layout of a new index, e.g. global, grid2, global+grid2.")
@click.option("--workers", type=click.IntRange(1, 256), default=None, help="Extraction processes [default: number of cores].")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of codebook learning.")
@click.option("--max-pixels", type=click.IntRange(1), default=None, help="Refuse images with more pixels [default: 90,000,000].")
@click.option("--batch-size", type=click.IntRange(1), default=500, show_default=True,
              help="Rows per transaction: a crash loses at most this many (or 2 s of work).")
@click.option("--json", "as_json", is_flag=True, help="Print the run's report as JSON.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@handle_errors
def index(folder: str, db: str, n_colors: int | None, layout: str | None, workers: int | None, seed: int,
          max_pixels: int | None, batch_size: int, as_json: bool, quiet: bool) -> None:
    """Build or sync the index of every image under FOLDER."""
    from tqdm import tqdm

    from cbir.images import DEFAULT_MAX_PIXELS
    from cbir.store import Store
    from indexer import index_folder

    bar = tqdm(total=0, unit="img", file=sys.stderr, disable=quiet or None, desc="indexing")

    def progress(done: int, total: int) -> None:
        if bar.total != total:
            bar.reset(total=total)
        bar.n = done
        bar.refresh() if done == total else bar.update(0)

    with Store(db, create=True) as store:
        try:
            report = index_folder(
                folder, store, n_colors=n_colors, layout=layout, workers=workers, seed=seed,
                max_pixels=max_pixels or DEFAULT_MAX_PIXELS, batch_size=batch_size, progress=progress,
            )
        finally:
            bar.close()
    if report.codebook_note:
        click.echo(f"note: {report.codebook_note}", err=True)
    if as_json:
        emit_json(report.to_dict())
        return
    click.echo(
        f"{report.scanned} images found: {report.added} added, {report.updated} updated, {report.moved} moved, "
        f"{report.removed} removed, {report.unchanged + report.touched} unchanged, {len(report.failed)} skipped "
        f"({report.seconds:.1f} s; {report.n_colors} colors, {report.layout} layout)",
        err=True,
    )
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
@click.option("--metric", type=click.Choice(METRICS), default=DEFAULT_METRIC, show_default=True)
@click.option("--exact", "mode", flag_value="exact",
              help="Exact search even on large indexes (default: exact below 100,000 images, approximate above).")
@click.option("--approximate", "mode", flag_value="ann", help="IVF candidates re-ranked exactly, whatever the size.")
@click.option("--brute", "mode", flag_value="brute", help="Compare with every stored histogram (same ranking as --exact).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@handle_errors
def search(image: str | None, db: str, colors_text: str | None, k: int, metric: str, mode: str | None, as_json: bool) -> None:
    """Rank the indexed images by color similarity to IMAGE (or to --colors)."""
    from cbir.color_query import format_colors, parse_colors
    from search import Searcher

    if (image is None) == (colors_text is None):
        raise click.UsageError("give exactly one of IMAGE or --colors")
    colors = parse_colors(colors_text) if colors_text is not None else None
    method = mode or "auto"
    searcher = Searcher.open(db)
    try:
        if colors is not None:
            results = searcher.search_colors(colors, k=k, metric=metric, method=method)
        else:
            results = searcher.search_image(image, k=k, metric=metric, method=method)
    finally:
        searcher.store.close()
    if as_json:
        query = f"colors:{format_colors(colors)}" if colors is not None else os.path.abspath(str(image))
        emit_json({"query": query, "metric": metric, "results": [r.to_dict() for r in results]})
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
        }
        if failures:
            document["failed"] = [{"path": f.path, "reason": f.reason} for f in store.failures()]
    if as_json:
        emit_json(document)
        return
    for key in ("db", "images", "codebook_size", "layout", "codebook_fingerprint", "failures"):
        click.echo(f"{key:>20}: {document[key]}")
    for failure in document.get("failed", []):
        click.echo(f"  {failure['path']}: {failure['reason']}")


# --- palettes and posterized images ---

# Light imports (numpy only, sklearn is imported on use): the option choices need them.
from cbir.palette import DEFAULT_METHOD, METHODS, SORT_ORDERS
from cbir.swatches import STYLES


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
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@handle_errors
def palette(image: str, k: int, method: str, sort: str, seed: int, out: str | None, style: str, strip_only: bool,
            as_json: bool) -> None:
    """The K dominant colors of IMAGE and their shares."""
    from cbir.images import load_image
    from cbir.palette import extract_palette
    from cbir.swatches import palette_picture, save_image

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
@click.option("-k", "k", type=click.IntRange(1, 256), default=None, help="Number of colors [default: 16].")
@click.option("--out", type=click.Path(dir_okay=False), required=True, help="Output file; PNG keeps it exact.")
@click.option("--codebook", "codebook_db", default=None, metavar="DB",
              help="Use the global codebook of this index (what the search engine sees) instead of the image's colors.")
@click.option("--side-by-side", is_flag=True, help="Write the original and the posterized image next to each other.")
@_method_option
@_seed_option
@handle_errors
def quantize(image: str, k: int | None, out: str, codebook_db: str | None, side_by_side: bool, method: str,
             seed: int) -> None:
    """Posterize IMAGE: every pixel replaced by the color of its cluster (in L*a*b*)."""
    from pathlib import Path

    from cbir.images import load_image
    from cbir.posterize import DEFAULT_K, index_codebook, posterize, posterize_with_codebook
    from cbir.store import Store
    from cbir.swatches import LOSSLESS_SUFFIXES, save_image
    from cbir.swatches import side_by_side as beside

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
              help="FILE.png (matplotlib; also .svg, .pdf) or FILE.html (interactive; needs plotly: pip install 'cbir[plot]').")
@click.option("--space", type=click.Choice(["rgb", "lab"]), default="rgb", show_default=True, help="Axes of the plot.")
@click.option("--points", "n_points", type=click.IntRange(1, 100_000), default=5000, show_default=True,
              help="Pixels plotted (a random sample).")
@_method_option
@_seed_option
@handle_errors
def plot_pixels(image: str, k: int, out: str, space: str, n_points: int, method: str, seed: int) -> None:
    """3-D scatter of IMAGE's pixels colored by cluster, with the cluster centers marked."""
    from cbir.images import load_image
    from cbir.pixelplot import check_plot_path, pixel_cloud, save_pixel_plot

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

    from search import Searcher
    from search.http import create_app

    Searcher.open(db).store.close()  # no index, or not a cbir database: one line now, not a traceback at startup
    app = create_app(db, max_upload_bytes=max(1, int(max_upload_mb * 1_000_000)))
    log_config = copy.deepcopy(LOGGING_CONFIG)
    log_config["handlers"]["access"]["stream"] = "ext://sys.stderr"  # stdout stays clean
    click.echo(f"serving {db} on http://{host}:{port}/ (Ctrl+C stops)", err=True)
    uvicorn.run(app, host=host, port=port, log_config=log_config)
