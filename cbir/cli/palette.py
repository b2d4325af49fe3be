"""``cbir palette``, ``cbir quantize`` and ``cbir plot-pixels`` on one image (videos and folders: :mod:`cbir.cli.films`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from cbir.cli.common import emit_json, handle_errors, note

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


@click.command()
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
    from cbir.cli.films import film_palette_command, is_film_source
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
    note(found.note)
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


@click.command()
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

    from cbir.cli.films import film_quantize_command, is_film_source

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
        note(result.palette.note)
        posterized = result.rgb
        colors = f"{len(result.palette)} colors"
    if Path(out).suffix.lower() not in LOSSLESS_SUFFIXES:
        note(f"{Path(out).suffix or 'this format'} is not lossless: the file will hold more colors; use .png")
    save_image(out, beside(rgb, posterized) if side_by_side else posterized)
    click.echo(f"wrote {out} ({rgb.shape[1]}x{rgb.shape[0]}, {colors})", err=True)


@click.command("plot-pixels")
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
    note(cloud.palette.note)
    save_pixel_plot(cloud, out, space=space)
    click.echo(f"wrote {out} ({len(cloud.rgb):,} pixels, {len(cloud.palette)} clusters)", err=True)
