"""The HTTP API's write route: ``POST /api/sync`` re-syncs the folders the index already covers.

Only recorded roots can be synced (a request names no new folder, so no URL ever
points the indexer at a path), one at a time, in-process (``workers=1``: a server's
threads make forking unsafe). The library's rule holds here as everywhere: a sync
that would empty a root or remove more than half of it writes nothing and answers
409 unless the request says ``prune=true``.

The read path never imports the write path: the sync itself (``indexer.index_folder``) is
passed in by whoever composes the app (``cbir serve``, or ``create_app(db, sync=index_folder)``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Annotated, Any, Protocol

from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from cbir.errors import BadInputError, MassRemovalError
from cbir.store import Store


class FolderSync(Protocol):
    """What syncs one root into the store and reports on it: ``indexer.index_folder`` has this shape."""

    def __call__(self, folder: str, store: Store, *, workers: int, prune: bool, max_removal_share: float = ...) -> Any: ...


def default_removal_share(sync_folder: FolderSync) -> float:
    """The sync's own ``max_removal_share`` default, which the route shows and applies: the rule has one home."""
    parameter = inspect.signature(sync_folder).parameters.get("max_removal_share")
    default = parameter.default if parameter is not None else None
    if isinstance(default, bool) or not isinstance(default, (int, float)):
        raise BadInputError(f"{sync_folder!r} has no numeric max_removal_share default to serve POST /api/sync with")
    return float(default)


class RootSync(BaseModel):
    root: str
    scanned: int
    added: int
    updated: int
    moved: int
    removed: int
    unchanged: int
    failed: int
    seconds: float


class SyncResponse(BaseModel):
    synced: list[RootSync] = Field(description="One report per root, in path order.")


def add_sync_route(app: FastAPI, store_of: Callable[[Request], Store], sync_folder: FolderSync) -> None:
    """Register ``POST /api/sync`` on ``app``; ``store_of(request)`` gives the served index's store,
    ``sync_folder(folder, store, workers=1, prune=..., max_removal_share=...)`` syncs one root.

    Raises
    ------
    BadInputError
        If ``sync_folder`` has no numeric ``max_removal_share`` default (the route's own).
    """

    share_default = default_removal_share(sync_folder)

    async def refused(_: Request, exc: Exception) -> Response:
        return JSONResponse({"error": str(exc)}, status_code=409)

    app.add_exception_handler(MassRemovalError, refused)

    @app.post("/api/sync", response_model=SyncResponse, summary="Re-sync the indexed folders (roots)",
              responses={409: {"description": "The sync would remove too many rows; nothing was written"}})
    def sync(
        request: Request,
        root: Annotated[str | None, Query(description="One recorded root (default: every root).")] = None,
        prune: Annotated[bool, Query(description="Confirm removing the rows of files that are gone.")] = False,
        max_removal_share: Annotated[float, Query(ge=0, le=1, description="Share removable without prune.")]
        = share_default,
    ) -> dict[str, Any]:
        store = store_of(request)
        roots = store.root_paths()
        if root is not None:
            if root not in roots:
                raise BadInputError(f"{root} is not a root of this index (roots: {', '.join(roots) or 'none recorded'})")
            roots = [root]
        synced = []
        for folder in roots:
            report = sync_folder(folder, store, workers=1, prune=prune, max_removal_share=max_removal_share)
            synced.append({
                "root": folder, "scanned": report.scanned, "added": report.added, "updated": report.updated,
                "moved": report.moved, "removed": report.removed, "unchanged": report.unchanged + report.touched,
                "failed": len(report.failed), "seconds": round(report.seconds, 3),
            })
        return {"synced": synced}
