"""Routes that show the collection itself: a paged listing and the near-duplicate groups.

Installed by :func:`search.http.create_app` with :func:`install`:

* ``GET /api/images?before=&limit=``: images newest first. Keyset paging: a page ends
  with ``next``, the cursor to pass as ``before`` for the following page, so every page
  is one primary-key range read (an offset would scan all rows before it).
* ``GET /api/duplicates?threshold=&k=&hamming=&veto=&offset=&limit=``: the near-duplicate groups of
  :meth:`search.Searcher.duplicates`, computed once per (store generation, threshold, k,
  hamming, veto) and kept, then paged in memory.
"""

from __future__ import annotations

import collections
import os
import threading
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from pydantic import BaseModel

from search.duplicates import (DEFAULT_HAMMING, DEFAULT_K, DEFAULT_THRESHOLD, DEFAULT_VETO, DUPLICATE_METRIC, MAX_K, Duplicates,
                               check_veto)

MAX_PAGE = 500
DEFAULT_PAGE = 60
#: Groups listed per page of the duplicates view at most.
MAX_GROUPS_PAGE = 200
#: Largest threshold the API accepts (chi2-soft distances lie in [0, 1]).
MAX_THRESHOLD = 1.0
#: Duplicate reports kept (by store generation, threshold and k).
_KEPT = 4


class ImageItem(BaseModel):
    id: int
    name: str
    path: str
    width: int
    height: int
    size: int
    thumbnail: str
    image: str


class ImagePage(BaseModel):
    total: int
    images: list[ImageItem]
    next: int | None


class DuplicateImage(ImageItem):
    distance: float


class DuplicateGroup(BaseModel):
    images: list[DuplicateImage]


class DuplicatePage(BaseModel):
    threshold: float
    hamming: int | None
    veto: int | None
    k: int
    metric: str
    total_groups: int
    pairs: int
    offset: int
    groups: list[DuplicateGroup]


def _item(image_id: int, path: str, width: int, height: int, size: int) -> dict[str, Any]:
    return {"id": image_id, "name": os.path.basename(path), "path": path, "width": width, "height": height,
            "size": size, "thumbnail": f"/api/images/{image_id}/thumbnail", "image": f"/api/images/{image_id}"}


class _DuplicateCache:
    """Reports by (generation, threshold, k, hamming, veto); one computation at a time per app."""

    def __init__(self) -> None:
        self.reports: collections.OrderedDict[tuple[int, float, int, int, int], Duplicates] = collections.OrderedDict()
        self.lock = threading.Lock()

    def get(self, service: Any, threshold: float, k: int, hamming: int, veto: int) -> Duplicates:
        searcher = service.searcher
        with self.lock:
            key = (searcher.store.generation(), threshold, k, hamming, veto)
            if key not in self.reports:
                with service.lock:  # the Searcher's caches are shared with the search routes
                    self.reports[key] = searcher.duplicates(threshold=threshold, k=k, hamming=hamming, veto=veto)
                while len(self.reports) > _KEPT:
                    self.reports.popitem(last=False)
            self.reports.move_to_end(key)
            return self.reports[key]


def install(app: FastAPI) -> None:
    """Add the collection routes to an app made by :func:`search.http.create_app`."""
    cache = _DuplicateCache()

    def service_of(request: Request) -> Any:
        return request.app.state.service

    @app.get("/api/images", response_model=ImagePage, summary="The collection, newest first (keyset-paged)")
    def images(
        request: Request,
        before: Annotated[int | None, Query(ge=0, description="The `next` of the previous page; omit for the first page.")] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Images per page.")] = DEFAULT_PAGE,
    ) -> dict[str, Any]:
        store = service_of(request).searcher.store
        rows = store.image_page(before=before, limit=limit + 1)  # one more tells whether a next page exists
        page = rows[:limit]
        return {
            "total": store.count(),
            "images": [_item(r.id, r.path, r.width, r.height, r.size) for r in page],
            "next": page[-1].id if len(rows) > limit else None,
        }

    @app.get("/api/duplicates", response_model=DuplicatePage, summary="Near-duplicate groups, largest first")
    def duplicates(
        request: Request,
        threshold: Annotated[float, Query(ge=0, le=MAX_THRESHOLD, description=f"Largest {DUPLICATE_METRIC} distance within a group.")] = DEFAULT_THRESHOLD,
        k: Annotated[int, Query(ge=1, le=MAX_K, description="Neighbours looked up per image.")] = DEFAULT_K,
        hamming: Annotated[int, Query(ge=-1, le=64, description="Also pair images whose perceptual hashes differ in at most "
                                      "this many of 64 bits; -1: colour only.")] = DEFAULT_HAMMING if DEFAULT_HAMMING is not None else -1,
        veto: Annotated[str, Query(description="Rule out pairs whose hashes differ in more than this many bits, whatever "
                                   "their colours; `off` (or -1): no veto, keeping flipped and cropped copies that hash apart.")
                        ] = str(DEFAULT_VETO) if DEFAULT_VETO is not None else "off",
        offset: Annotated[int, Query(ge=0, description="Groups to skip.")] = 0,
        limit: Annotated[int, Query(ge=1, le=MAX_GROUPS_PAGE, description="Groups per page.")] = 50,
    ) -> dict[str, Any]:
        bits = check_veto(veto)  # a BadInputError: 422 with the one-line message
        found = cache.get(service_of(request), threshold, k, hamming, -1 if bits is None else bits)
        groups = [
            {"images": [_item(m.id, m.path, m.width, m.height, m.size) | {"distance": m.distance} for m in group.members]}
            for group in found.groups[offset : offset + limit]
        ]
        return {"threshold": found.threshold, "hamming": found.hamming, "veto": found.veto, "k": found.k, "metric": found.metric,
                "total_groups": len(found.groups),
                "pairs": found.pairs, "offset": offset, "groups": groups}
