"""The HTTP API and the web page: a FastAPI app over one :class:`~search.searcher.Searcher`.

``create_app(db)`` builds the app; ``cbir serve`` runs it under uvicorn.

Routes: ``GET /`` (the page, from ``search/static/``), ``POST /api/search``
(multipart ``image``), ``POST /api/search/colors`` (JSON colors),
``GET /api/images/{id}/similar``, ``GET /api/images/{id}/thumbnail``,
``GET /api/images/{id}``, ``GET /api/info``; ``POST /api/sync`` (:mod:`search.sync_api`)
when the app is given the indexer's sync (``create_app(db, sync=index_folder)``, as ``cbir serve`` does);
the collection listing and the near-duplicate groups (``GET /api/images``,
``GET /api/duplicates``, in :mod:`search.http_collection`);
the OpenAPI schema at ``/docs``. The JSON shapes are in :mod:`search.http_schema`, the
state behind the routes (searcher, palettes, rows by id) in :mod:`search.http_service`.

Images are served only by store id: the id is parsed as an integer and the path
comes from the store row, so no part of a URL is ever joined to a filesystem
path. Request bodies over ``max_upload_bytes`` get 413 while they stream in
(FastAPI's ``max_body_size`` checks Content-Length first, then counts bytes).
Errors are JSON ``{"error": "..."}``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import mimetypes
import os
import time
from collections.abc import AsyncIterator
from importlib import resources
from typing import Annotated, Any, cast

from fastapi import Depends, FastAPI, File, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.exceptions import HTTPException

from cbir.color_query import MAX_QUERY_COLORS, parse_hex, to_hex
from cbir.distances import COMPACT, SEARCH_METRICS
from cbir.errors import BadImageError, BadInputError, CbirError, StoreError
from cbir.films.video import split_frame_path
from cbir.store import histogram_from_bytes
from search import http_collection
from search.http_schema import ColorQuery, Info, Metric, SearchResponse
from search.http_service import Service, service_of
from search.searcher import Searcher
from search.sync_api import FolderSync, add_sync_route
from search.thumbnails import DEFAULT_CACHE_BYTES, DEFAULT_THUMBNAIL_SIZE, Thumbnails, make_thumbnail

DEFAULT_MAX_UPLOAD_BYTES = 20_000_000
#: Uploads with more pixels are refused before decoding (a 20 MB PNG can hold far more).
DEFAULT_MAX_UPLOAD_PIXELS = 50_000_000
DEFAULT_K = 10
MAX_K = 200

_STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/static/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/static/style.css": ("style.css", "text/css; charset=utf-8"),
}

ServiceDep = Annotated[Service, Depends(service_of)]
_DEFAULT_METRIC = Metric(COMPACT)
K = Annotated[int, Query(ge=1, le=MAX_K, description="Number of results.")]
MetricQuery = Annotated[Metric, Query(description="Distance between histograms.")]  # type: ignore[valid-type]


# --- errors as JSON -------------------------------------------------------------------
def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


def _install_error_handlers(app: FastAPI) -> None:
    async def http_error(_: Request, exc: Exception) -> Response:
        error = cast(HTTPException, exc)
        return JSONResponse({"error": str(error.detail)}, status_code=error.status_code, headers=error.headers)

    async def validation_error(_: Request, exc: Exception) -> Response:
        errors = [
            {"loc": [str(part) for part in e.get("loc", ())], "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
            for e in cast(RequestValidationError, exc).errors()
        ]
        summary = "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors)
        return _error(422, summary or "invalid request", detail=errors)

    async def bad_image(_: Request, exc: Exception) -> Response:
        return _error(400, str(exc))

    async def bad_input(_: Request, exc: Exception) -> Response:
        return _error(422, str(exc))

    async def store_error(_: Request, exc: Exception) -> Response:
        return _error(503, str(exc))

    async def cbir_error(_: Request, exc: Exception) -> Response:
        return _error(400, str(exc))

    async def internal_error(_: Request, exc: Exception) -> Response:
        return _error(500, f"internal error: {type(exc).__name__}")

    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(BadImageError, bad_image)
    app.add_exception_handler(BadInputError, bad_input)
    app.add_exception_handler(StoreError, store_error)
    app.add_exception_handler(CbirError, cbir_error)
    app.add_exception_handler(Exception, internal_error)


# --- the app --------------------------------------------------------------------------
def create_app(
    db: str | os.PathLike[str],
    *,
    sync: FolderSync | None = None,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    max_upload_pixels: int = DEFAULT_MAX_UPLOAD_PIXELS,
    thumbnail_size: int = DEFAULT_THUMBNAIL_SIZE,
    thumbnail_cache_bytes: int = DEFAULT_CACHE_BYTES,
) -> FastAPI:
    """The web page and HTTP API over the index at ``db``.

    The index is opened when the app starts (its lifespan), so an app can be made
    before the index exists; starting it then fails with :class:`StoreError`.

    Parameters
    ----------
    db : str or path
        A SQLite file or a database URL, as for ``cbir index``.
    sync : callable, optional
        Syncs one root into the store (``indexer.index_folder``): given, the app answers
        ``POST /api/sync``; without it there is no such route (the read path does not import the indexer).
    max_upload_bytes : int
        Larger request bodies get 413 (checked while they stream in).
    max_upload_pixels : int
        Uploaded images with more pixels get 400 before they are decoded.
    thumbnail_size : int
        Longer side of thumbnails, in pixels.
    thumbnail_cache_bytes : int
        Memory for cached thumbnails.

    Returns
    -------
    FastAPI

    Raises
    ------
    BadInputError
        If a limit is not a positive integer.
    """
    for name, value in (("max_upload_bytes", max_upload_bytes), ("max_upload_pixels", max_upload_pixels),
                        ("thumbnail_size", thumbnail_size), ("thumbnail_cache_bytes", thumbnail_cache_bytes)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise BadInputError(f"{name} must be a positive integer, got {value!r}")
    pages = {route: (resources.files("search").joinpath("static", name).read_bytes(), media) for route, (name, media) in _STATIC.items()}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        searcher = Searcher.open(db)
        descriptor = searcher.descriptor
        app.state.service = Service(
            searcher=searcher,
            upload_descriptor=dataclasses.replace(descriptor, max_pixels=min(descriptor.max_pixels, max_upload_pixels)),
            thumbnails=Thumbnails(size=thumbnail_size, max_bytes=thumbnail_cache_bytes),
        )
        try:
            yield
        finally:
            searcher.store.close()

    app = FastAPI(
        title="cbir",
        summary="Content-based image search by color",
        description="Search an index made by `cbir index` by example image or by colors.",
        lifespan=lifespan,
        max_body_size=max_upload_bytes,
    )
    _install_error_handlers(app)
    if sync is not None:
        add_sync_route(app, lambda request: service_of(request).searcher.store, sync)

    def static_page(route: str) -> None:
        content, media_type = pages[route]

        def page() -> Response:
            return Response(content, media_type=media_type, headers={"Cache-Control": "no-cache"})

        app.add_api_route(route, page, methods=["GET"], include_in_schema=False)

    for route in pages:
        static_page(route)
    http_collection.install(app)

    @app.get("/api/info", response_model=Info, summary="Index statistics")
    def info(service: ServiceDep) -> dict[str, Any]:
        store = service.searcher.store
        return {
            "images": store.count(),
            "failures": store.failure_count(),
            "generation": store.generation(),
            "codebook_size": service.codebook.n_colors,
            "layout": service.searcher.descriptor.layout,
            "codebook_fingerprint": service.codebook.fingerprint,
            "metrics": list(SEARCH_METRICS),
            "default_metric": COMPACT,
            "max_k": MAX_K,
            "max_colors": MAX_QUERY_COLORS,
            "max_upload_bytes": max_upload_bytes,
            "thumbnail_size": thumbnail_size,
        }

    @app.post("/api/search", response_model=SearchResponse, summary="Search by an uploaded image")
    def search_upload(
        service: ServiceDep,
        image: Annotated[UploadFile, File(description="The query image (JPEG, PNG, WebP, TIFF, BMP, GIF).")],
        k: K = DEFAULT_K,
        metric: MetricQuery = _DEFAULT_METRIC,
    ) -> dict[str, Any]:
        started = time.perf_counter()
        name = image.filename or "upload"
        data = image.file.read()
        found = service.upload_descriptor.of_bytes(data, path=f"upload {name!r}", shares=True)
        return service.search(
            found.histogram, kind="image", label=name, k=k, metric=metric.value, started=started, shares=found.shares
        )

    @app.post("/api/search/colors", response_model=SearchResponse, summary="Search by colors with weights (QBIC-style)")
    def search_colors(
        service: ServiceDep,
        query: ColorQuery,
        k: K = DEFAULT_K,
        metric: MetricQuery = _DEFAULT_METRIC,
    ) -> dict[str, Any]:
        started = time.perf_counter()
        colors = [(parse_hex(color.hex), color.weight) for color in query.colors]
        histogram = service.searcher.descriptor.of_colors(colors)
        total = sum(weight for _, weight in colors)
        label = ", ".join(f"{to_hex(rgb)} {100 * weight / total:.0f}%" for rgb, weight in colors)
        return service.search(histogram, kind="colors", label=label, k=k, metric=metric.value, started=started)

    @app.get("/api/images/{image_id}/similar", response_model=SearchResponse, summary="Search by an indexed image")
    def search_similar(
        service: ServiceDep,
        image_id: str,
        k: K = DEFAULT_K,
        metric: MetricQuery = _DEFAULT_METRIC,
    ) -> dict[str, Any]:
        started = time.perf_counter()
        row = service.row(image_id)
        histogram = histogram_from_bytes(row.histogram)
        label = os.path.basename(row.path)
        return service.search(histogram, kind="similar", label=label, k=k, metric=metric.value, started=started, path=row.path)

    @app.get("/api/images/{image_id}/thumbnail", summary="A JPEG thumbnail of an indexed image",
             response_class=Response, responses={200: {"content": {"image/jpeg": {}}}, 404: {}})
    def thumbnail(service: ServiceDep, image_id: str, request: Request) -> Response:
        row = service.row(image_id)
        etag = f'"{row.content_hash}-{service.thumbnails.size}"'
        headers = {"ETag": etag, "Cache-Control": "private, max-age=3600"}
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        try:
            data = service.thumbnails.get(row.id, row.content_hash, row.path)
        except BadImageError as exc:
            raise HTTPException(404, f"image {row.id} is indexed but its file cannot be read: {exc.reason}") from None
        return Response(data, media_type="image/jpeg", headers=headers)

    @app.get("/api/images/{image_id}", summary="The original file of an indexed image",
             response_class=FileResponse, responses={200: {"content": {"image/*": {}}}, 404: {}})
    def original(service: ServiceDep, image_id: str) -> Response:
        row = service.row(image_id)
        if split_frame_path(row.path) is not None:  # a video's keyframe: that frame, as a JPEG
            try:
                return Response(make_thumbnail(row.path, size=100_000, quality=90), media_type="image/jpeg")
            except BadImageError as exc:
                raise HTTPException(404, f"image {row.id} is a frame of a video that cannot be read: {exc.reason}") from None
        if not os.path.isfile(row.path):
            raise HTTPException(404, f"image {row.id} is indexed but its file is gone")
        media_type = mimetypes.guess_type(row.path)[0] or "application/octet-stream"
        return FileResponse(row.path, media_type=media_type, filename=os.path.basename(row.path),
                            content_disposition_type="inline")

    return app
