"""``cbir index``: build or sync an index of a folder (a root), or forget a root."""

from __future__ import annotations

import click

from cbir.cli.common import db_option, emit_json, handle_errors, progress_bar


@click.command()
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
