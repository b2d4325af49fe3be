"""What the store hands out and takes in: plain frozen records, no SQL."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FileState:
    """What the store knows of a file, for change detection."""

    id: int
    path: str
    size: int
    mtime: float
    content_hash: str
    #: The row has a perceptual hash (rows of an index made before hashes get one at the next sync).
    hashed: bool = True


@dataclass(frozen=True)
class ImageFacts:
    """What a listing shows of an image (no histogram)."""

    id: int
    path: str
    size: int
    mtime: float
    width: int
    height: int


@dataclass(frozen=True)
class ImageRecord:
    """One extracted image, ready to be written."""

    path: str
    size: int
    mtime: float
    content_hash: str
    width: int
    height: int
    histogram: np.ndarray
    #: Compact vector (m,) under the projection named in :meth:`Store.write_batch`, or None.
    vector: np.ndarray | None = None
    #: Perceptual hash (:func:`cbir.perceptual.perceptual_hash`), or None.
    phash: int | None = None


@dataclass(frozen=True)
class VideoFrame:
    """One shot of an indexed video: its keyframe's row and times in seconds."""

    image_id: int
    video: str
    seconds: float
    shot_start: float
    shot_end: float

    def to_dict(self) -> dict:
        """``{"path", "time", "shot_start", "shot_end"}``: the video and the times in seconds."""
        return {"path": self.video, "time": self.seconds, "shot_start": self.shot_start, "shot_end": self.shot_end}


@dataclass(frozen=True)
class VideoState:
    """What the store knows of an indexed video: size and mtime when its shots were indexed, and their rows."""

    path: str
    size: int
    mtime: float
    ids: tuple[int, ...]


@dataclass(frozen=True)
class Failure:
    """A file that could not be indexed, and why."""

    path: str
    size: int
    mtime: float
    reason: str
