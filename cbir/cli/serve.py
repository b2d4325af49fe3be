"""``cbir serve``: the web page and the HTTP API, composed here with the indexer for ``POST /api/sync``."""

from __future__ import annotations

import click

from cbir.cli.common import CbirFailure, db_option, handle_errors


@click.command()
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
    from indexer import index_folder
    from search import Searcher
    from search.http import create_app

    # Each request is one query, and requests already run side by side: OpenMP threads per query
    # only spin (a 1,000-image search took 8-11 ms with two of them, 5 ms with one).
    use_threads(1)
    Searcher.open(db).store.close()  # no index, or not a cbir database: one line now, not a traceback at startup
    # The composition root: the read path's app gets the write path's sync for POST /api/sync.
    app = create_app(db, sync=index_folder, max_upload_bytes=max(1, int(max_upload_mb * 1_000_000)))
    log_config = copy.deepcopy(LOGGING_CONFIG)
    log_config["handlers"]["access"]["stream"] = "ext://sys.stderr"  # stdout stays clean
    click.echo(f"serving {db} on http://{host}:{port}/ (Ctrl+C stops)", err=True)
    uvicorn.run(app, host=host, port=port, log_config=log_config)
