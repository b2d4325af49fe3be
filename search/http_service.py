"""The service behind the HTTP routes: one shared Searcher, result palettes and their cache, rows by URL id."""

from __future__ import annotations

import collections
import dataclasses
import os
import re
import threading
import time
from typing import Any

import numpy as np
from fastapi import Request
from starlette.exceptions import HTTPException

from cbir.codebook import Codebook
from cbir.descriptor import Descriptor
from cbir.errors import StoreError
from cbir.films.filmstrips import timestamp
from cbir.palette import area_shares, palette_from_histogram
from cbir.store import VideoFrame, histogram_from_bytes
from search.searcher import Searcher
from search.thumbnails import Thumbnails

#: Images whose color shares (read from their files for palettes) are kept in memory.
SHARES_CACHE_SIZE = 4096
#: Colors shown in a palette strip.
PALETTE_SIZE = 8

_ID = re.compile(r"[0-9]{1,18}")


@dataclasses.dataclass
class Service:
    """One Searcher shared by the worker threads, with what the routes need besides."""

    searcher: Searcher
    upload_descriptor: Descriptor
    thumbnails: Thumbnails
    # The Searcher caches matrices and FAISS indexes and rebuilds (and saves) them when the store
    # changes; two threads doing that at once would build twice and write the same temporary file.
    # One search at a time; decoding uploads, reading rows and making palettes happen outside the lock.
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)
    # Color shares read from result files (layouts without area blocks), by (path, size, mtime):
    # a page of results costs a decode per image the first time only.
    shares_cache: collections.OrderedDict[tuple[str, int, int], np.ndarray | None] = dataclasses.field(
        default_factory=collections.OrderedDict
    )
    shares_lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    @property
    def codebook(self) -> Codebook:
        return self.searcher.codebook

    def palette(self, histogram: np.ndarray, *, shares: np.ndarray | None = None, path: str | None = None) -> list[dict[str, Any]]:
        """The dominant codewords of an image, largest share first, shares summing to 1: from its
        color shares when given, or read again from ``path`` when the layout does not keep them."""
        layout = self.searcher.descriptor.layout
        if shares is None and path is not None:
            shares = self._file_shares(path, layout)
        if shares is not None:
            return palette_from_histogram(shares, self.codebook, k=PALETTE_SIZE, sort="proportion")
        return palette_from_histogram(histogram, self.codebook, k=PALETTE_SIZE, sort="proportion", layout=layout)

    def _file_shares(self, path: str, layout: str) -> np.ndarray | None:
        try:
            stat = os.stat(path)
        except OSError:
            return None  # gone: the stored blocks give an estimate
        key = (path, stat.st_size, stat.st_mtime_ns)
        with self.shares_lock:  # routes run on several threads
            if key in self.shares_cache:
                self.shares_cache.move_to_end(key)
                return self.shares_cache[key]
        shares = area_shares(path, self.codebook, layout)  # decoded outside the lock
        with self.shares_lock:
            self.shares_cache[key] = shares
            while len(self.shares_cache) > SHARES_CACHE_SIZE:
                self.shares_cache.popitem(last=False)
        return shares

    def search(
        self, histogram: np.ndarray, *, kind: str, label: str, k: int, metric: str, started: float,
        shares: np.ndarray | None = None, path: str | None = None,
    ) -> dict[str, Any]:
        with self.lock:
            results = self.searcher.search_histogram(histogram, k=k, metric=metric)
        stored = self._histograms([r.id for r in results])
        frames = self.searcher.store.video_frames(r.id for r in results)  # shots of indexed videos
        return {
            "query": {"kind": kind, "label": label, "palette": self.palette(histogram, shares=shares, path=path)},
            "metric": metric,
            "k": k,
            "milliseconds": round((time.perf_counter() - started) * 1000.0, 2),
            "results": [
                {
                    "rank": result.rank,
                    "id": result.id,
                    "name": display_name(result.path, frames.get(result.id)),
                    "path": result.path,
                    "distance": result.distance,
                    "thumbnail": f"/api/images/{result.id}/thumbnail",
                    "image": f"/api/images/{result.id}",
                    "palette": self.palette(stored[result.id], path=result.path),
                    **({"video": frames[result.id].to_dict()} if result.id in frames else {}),
                }
                for result in results
                if result.id in stored  # else removed by an index run since the search
            ],
        }

    def _histograms(self, ids: list[int]) -> dict[int, np.ndarray]:
        store = self.searcher.store
        try:
            return dict(zip(ids, store.histograms(ids), strict=True))
        except StoreError:  # a row went away since the search: fetch what is left one by one
            rows = {image_id: store.image(image_id) for image_id in ids}
            return {i: histogram_from_bytes(row.histogram) for i, row in rows.items() if row is not None}

    def row(self, image_id: str):  # type: ignore[no-untyped-def]
        """The store row of an id given in a URL, or 404. The id is only ever parsed as an integer."""
        row = self.searcher.store.image(int(image_id)) if _ID.fullmatch(image_id) else None
        if row is None:
            raise HTTPException(404, f"no indexed image with id {image_id!r}")
        return row


def service_of(request: Request) -> Service:
    """The app's service (set by ``create_app``'s lifespan)."""
    return request.app.state.service  # type: ignore[no-any-return]


def display_name(path: str, frame: VideoFrame | None) -> str:
    """A result's file name; for a video's shot, the video's name and the keyframe's time."""
    if frame is None:
        return os.path.basename(path)
    return f"{os.path.basename(frame.video)} at {timestamp(frame.seconds)}"
