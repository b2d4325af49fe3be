"""``cbir search``: rank the indexed images by color similarity to an image or to colors."""

from __future__ import annotations

import os

import click

from cbir.cli.common import check_expand, db_option, emit_json, handle_errors
from cbir.distances import COMPACT, SEARCH_METRICS


@click.command()
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
    check_expand(expand, metric)
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
