"""``cbir info``: an index's counts, codebook, projection, roots and failures."""

from __future__ import annotations

from typing import Any

import click

from cbir.cli.common import db_option, emit_json, handle_errors


@click.command()
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
