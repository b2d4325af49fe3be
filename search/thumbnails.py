"""Thumbnails of indexed images: small JPEGs decoded through :mod:`cbir.images`, kept in an LRU cache.

The cache is keyed by (image id, content hash), so a file that is re-indexed
with new content gets a new thumbnail, and bounded by the bytes it holds.
"""

from __future__ import annotations

import io
import os
import threading
from collections import OrderedDict

from PIL import Image

from cbir.errors import BadInputError
from cbir.films.video import VideoReader, split_frame_path
from cbir.images import load_image

DEFAULT_THUMBNAIL_SIZE = 256
DEFAULT_CACHE_BYTES = 64_000_000


def make_thumbnail(path: str | os.PathLike[str], *, size: int = DEFAULT_THUMBNAIL_SIZE, quality: int = 85) -> bytes:
    """A JPEG of the image at ``path`` whose longer side is at most ``size`` pixels.

    Parameters
    ----------
    path : path
        An image file, or ``video#t=SECONDS`` for a frame of an indexed video.
    size : int
        Longer side in pixels (smaller images keep their size).
    quality : int
        JPEG quality, 1..95.

    Returns
    -------
    bytes
        The encoded JPEG.

    Raises
    ------
    BadImageError
        If the file is gone or cannot be decoded.
    BadInputError
        If ``size`` or ``quality`` is out of range.
    """
    if size < 1:
        raise BadInputError(f"thumbnail size must be at least 1 pixel, got {size}")
    if not 1 <= quality <= 95:
        raise BadInputError(f"JPEG quality must be in 1..95, got {quality}")
    frame = split_frame_path(os.fspath(path))
    if frame is not None:  # the keyframe of a video's shot: that frame of the video
        with VideoReader(frame[0]) as reader:
            rgb = reader.frame_at(frame[1], max_side=size)
    else:
        rgb = load_image(path, max_side=size)
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


class Thumbnails:
    """A thread-safe LRU cache of thumbnails, bounded in bytes.

    Parameters
    ----------
    size : int
        Longer side of a thumbnail in pixels.
    max_bytes : int
        The least recently used thumbnails are dropped when the cache holds more.

    Attributes
    ----------
    hits, misses : int
        Counts of lookups served from the cache and made anew.
    """

    def __init__(self, *, size: int = DEFAULT_THUMBNAIL_SIZE, max_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        if size < 1:
            raise BadInputError(f"thumbnail size must be at least 1 pixel, got {size}")
        self.size = size
        self.max_bytes = max_bytes
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[tuple[int, str], bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, image_id: int, content_hash: str, path: str | os.PathLike[str]) -> bytes:
        """The thumbnail of an indexed image, from the cache or made from ``path``.

        Raises
        ------
        BadImageError
            If the file is gone or cannot be decoded (nothing is cached then).
        """
        key = (int(image_id), content_hash)
        with self._lock:
            cached = self._entries.get(key)
            if cached is not None:
                self._entries.move_to_end(key)
                self.hits += 1
                return cached
            self.misses += 1
        # Decoding happens outside the lock: two threads may both make one thumbnail, never wait on each other.
        data = make_thumbnail(path, size=self.size)
        with self._lock:
            if key not in self._entries:
                self._entries[key] = data
                self._bytes += len(data)
            while self._bytes > self.max_bytes and self._entries:
                _, dropped = self._entries.popitem(last=False)
                self._bytes -= len(dropped)
        return data

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
