"""``cbir duplicates``: near-duplicate groups of an index, as text, JSON or CSV. Nothing is deleted or moved."""

from __future__ import annotations

import csv
import os
import sys

import click

from cbir.cli.common import db_option, emit_json, handle_errors
from cbir.distances import METRICS


@click.command("duplicates")
@db_option
@click.option("--threshold", type=float, default=None,
              help="Largest distance between two images of a group [default: measured, see README].")
@click.option("--k", "k", type=click.IntRange(1, 100), default=None,
              help="Neighbours looked up per image [default: 10].")
@click.option("--metric", type=click.Choice(METRICS), default=None, help="Distance that confirms pairs [default: chi2-soft].")
@click.option("--hamming", type=click.IntRange(-1, 64), default=None,
              help="Also pair images whose perceptual hashes differ in at most this many of 64 bits; -1: colour only "
                   "[default: measured, see README].")
@click.option("--hash-veto", "veto", metavar="BITS|off", default=None,
              help="Rule out a pair whose perceptual hashes differ in more than BITS of 64, whatever its colours; "
                   "'off' keeps flipped and cropped copies that hash apart [default: measured, see README].")
@click.option("--keep", type=click.Choice(["largest", "newest", "oldest"]), default=None,
              help="Mark which image of each group to keep (largest: most pixels, then bytes; newest/oldest: mtime).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV: one line per (group, image).")
@handle_errors
def duplicates(db: str, threshold: float | None, k: int | None, metric: str | None, hamming: int | None,
               veto: str | None, keep: str | None, as_json: bool, as_csv: bool) -> None:
    """Find every group of near-duplicate images in the index (it only lists them)."""
    from cbir.vectors import use_threads
    from search import Searcher

    if as_json and as_csv:
        raise click.UsageError("give at most one of --json and --csv")
    # A batch job over the whole index, not one query: FAISS's joins and BLAS's softening use every core
    # (100,000 images: cold 48.8-52.1 s on 2 cores against 55.8-60.8 s on one; README, "Near-duplicates").
    use_threads(os.cpu_count() or 1)
    searcher = Searcher.open(db)
    try:
        found = searcher.duplicates(threshold=threshold, k=k, metric=metric, hamming=hamming, veto=veto)
    finally:
        searcher.store.close()
    document = found.to_dict(keep=keep)
    if as_json:
        emit_json(document)
        return
    if as_csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(["group", "id", "path", "distance", "width", "height", "size", "keep"])
        for number, group in enumerate(document["groups"], 1):
            for image in group["images"]:
                keep_cell = "" if keep is None else int(image["keep"])
                writer.writerow([number, image["id"], image["path"], f"{image['distance']:.6f}",
                                 image["width"], image["height"], image["size"], keep_cell])
        return
    for number, group in enumerate(document["groups"], 1):
        click.echo(f"group {number} ({len(group['images'])} images)")
        for image in group["images"]:
            mark = ("keep " if image["keep"] else "     ") if keep else ""
            click.echo(f"  {mark}{image['distance']:.4f}  {image['width']}x{image['height']}  {image['path']}")
    groups = document["groups"]
    hashes = "colour only" if found.hamming is None else f"or hashes within {found.hamming} bits" + (
        ", no hash veto" if found.veto is None else f", hash veto above {found.veto} bits")
    click.echo(f"{len(groups)} groups, {sum(len(g['images']) for g in groups)} images of {found.images} "
               f"(threshold {found.threshold:g} on {found.metric} {hashes}, k={found.k}); {found.seconds:.1f} s", err=True)
    if found.unhashed:
        click.echo(f"{found.unhashed} images have no perceptual hash (indexed by an older cbir) and are paired by colour "
                   "alone: run 'cbir index FOLDER' again to add them", err=True)
