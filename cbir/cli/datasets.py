"""``cbir datasets list|fetch``: the standard benchmark sets (a shell over :mod:`cbir.fetch`)."""

from __future__ import annotations

import sys
from typing import Any

import click

from cbir.cli.common import emit_json, handle_errors, tqdm_class


@click.group()
def datasets() -> None:
    """The standard benchmark sets: list them, fetch one."""


def _row(spec: Any) -> dict[str, Any]:
    from cbir.fetch.catalog import find_dataset, read_manifest

    folder = find_dataset(spec.name)
    manifest = read_manifest(folder) if folder is not None else None
    return {
        "name": spec.name,
        "title": spec.title,
        "images": manifest.get("images") if manifest else spec.images,
        "archive_size": spec.archive_size,
        "source": spec.source(),
        "source_note": spec.source_note,
        "page": spec.page,
        "licence": spec.licence,
        "protocol": spec.protocol,
        "present": folder is not None,
        "path": str(folder) if folder is not None else None,
        "sha256": {a["file"]: a["sha256"] for a in manifest.get("archives", [])} if manifest else {},
    }


@datasets.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@handle_errors
def list_datasets(as_json: bool) -> None:
    """Every known set: images, archive size, source, licence, protocol, and where it is if fetched."""
    from cbir.fetch.catalog import DATASETS, default_dir

    rows = [_row(spec) for spec in DATASETS.values()]
    if as_json:
        emit_json({"datasets": rows})
        return
    for row in rows:
        where = f"fetched: {row['path']}" if row["present"] else f"not fetched (would go to {default_dir(row['name'])})"
        images = f"{row['images']:,} images" if row["images"] else "images: depends on the build"
        click.echo(f"{row['name']:<12} {row['title']}")
        click.echo(f"{'':12} {images}, archive {row['archive_size']}, protocol {row['protocol']}")
        click.echo(f"{'':12} source: {row['source']}")
        click.echo(f"{'':12}   ({row['source_note']})")
        click.echo(f"{'':12} licence: {row['licence']}")
        click.echo(f"{'':12} {where}")


class _Bars:
    """One tqdm bar per stage on stderr (bytes for downloads, files otherwise)."""

    def __init__(self, quiet: bool) -> None:
        self.tqdm = tqdm_class()
        self.quiet = quiet
        self.stage: str | None = None
        self.bar: Any = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage != self.stage:
            self.close()
            self.stage = stage
            byte_stage = stage.startswith("download")
            self.bar = self.tqdm(
                total=total or None, initial=done, desc=stage, file=sys.stderr, disable=self.quiet or None,
                unit="B" if byte_stage else "file", unit_scale=byte_stage, unit_divisor=1024 if byte_stage else 1000,
            )
        if total and self.bar.total != total:
            self.bar.total = total
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


@datasets.command("fetch")
@click.argument("name")
@click.option("--dir", "folder", type=click.Path(file_okay=False), default=None,
              help="The set's folder [default: $CBIR_DATASETS/NAME when that is set, else ./datasets/NAME "
                   "inside a cbir checkout, else the per-user data folder].")
@click.option("--from", "sources", multiple=True, metavar="URL_OR_FILE",
              help="Take an archive from a mirror URL (a URL ending in / is a mirror folder) or a file "
                   "already on disk instead of the official source. Repeat for a set of several archives.")
@click.option("--force", is_flag=True, help="Fetch again and replace a set already there.")
@click.option("--retries", type=click.IntRange(0, 100), default=3, show_default=True,
              help="Times to resume a dropped download within this run.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON document.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
@handle_errors
def fetch(name: str, folder: str | None, sources: tuple[str, ...], force: bool, retries: int,
          as_json: bool, quiet: bool) -> None:
    """Download NAME, check it, unpack it and lay it out for `cbir evaluate NAME`."""
    from cbir.fetch import fetch_dataset

    bars = _Bars(quiet)
    try:
        report = fetch_dataset(name, folder=folder, sources=sources, force=force, retries=retries, on_progress=bars)
    finally:
        bars.close()
    if as_json:
        emit_json(report.to_dict())
        return
    if report.already_present:
        click.echo(f"{name} is already fetched in {report.folder} ({report.images:,} images); --force fetches it again")
        return
    click.echo(f"{name}: {report.images:,} images in {report.folder} (protocol {report.protocol})")
    for archive in report.archives:
        checked = "matches the published checksum" if archive["checksum_verified"] else "no published checksum to check"
        click.echo(f"  {archive['file']}: {archive['bytes']:,} bytes, SHA-256 {archive['sha256']} ({checked})")
    click.echo(f"measure with: cbir evaluate {name} --db {name}.db")
