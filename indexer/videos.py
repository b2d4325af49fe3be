"""Videos in an indexed folder: one row per shot keyframe, a changed video replaced as a whole.

A video is split into shots (:func:`cbir.films.stills.film_shots`, one pass over its
frames); each shot's keyframe gets the index's own histogram, as a still of it
would, and is stored as ``video#t=SECONDS`` with the shot's times
(:meth:`cbir.store.Store.replace_video`), so ``cbir search still.jpg`` names the
film and the time. A video whose size or mtime changed has all its rows replaced
in one transaction; one that cannot be decoded, or is truncated, is a failure by
name like a bad image, and its old rows go. Videos are decoded one at a time in
this process (decoding is the cost, and OpenCV's decoder uses its own threads).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from cbir.descriptor import Descriptor
from cbir.errors import BadImageError
from cbir.films.stills import film_shots
from cbir.films.video import VideoReader, downscale, frame_path
from cbir.perceptual import perceptual_hash
from cbir.store import Failure, ImageRecord, Store

#: Frames of each video that join the sample a new codebook is learned from.
CODEBOOK_FRAMES = 8


@dataclass
class VideoReport:
    """What a sync did to the videos of a folder."""

    videos: int = 0
    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    shots: int = 0


def video_samples(paths: list[str], *, n: int, seed: int) -> Iterator[np.ndarray]:
    """Pixel samples of a few frames of each video, for learning a codebook (unreadable videos left out)."""
    from cbir.codebook import sample_pixels

    for index, path in enumerate(paths):
        try:
            with VideoReader(path) as reader:
                frames = [rgb for _, rgb in reader.sample(CODEBOOK_FRAMES, max_side=256)]
        except BadImageError:
            continue
        yield np.concatenate([sample_pixels(rgb, max(1, n // len(frames)), seed=seed, index=index) for rgb in frames])


def _keyframe_hash(path: str, size: int, mtime: float, frame: int) -> str:
    return hashlib.blake2b(f"{path}\0{size}\0{mtime!r}\0{frame}".encode(), digest_size=16).hexdigest()


def sync_videos(
    videos: list,
    store: Store,
    *,
    codebook_id: int,
    descriptor: Descriptor,
    failed: list[Failure],
    under: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> VideoReport:
    """Index new and changed videos, replace their rows, remove the rows of videos gone from the folder.

    Parameters
    ----------
    videos : list of FoundFile
        Every video file under the folder.
    store : Store
    codebook_id : int
    descriptor : Descriptor
        The index's descriptor (codebook, layout, resolution).
    failed : list of Failure
        Videos that cannot be decoded are appended here (and recorded in the store).
    under : str, optional
        The root being synced: only videos inside it are removed when gone.
    progress : callable(path), optional
        Called before each video is decoded.

    Returns
    -------
    VideoReport
    """
    report = VideoReport(videos=len(videos))
    states = store.video_states(under=under)
    old_failures = store.failure_states(under=under)
    for found in videos:
        state = states.pop(found.path, None)
        if state is not None and (state.size, state.mtime) == (found.size, found.mtime):
            report.unchanged += 1
            continue
        if state is None and old_failures.get(found.path) == (found.size, found.mtime):
            report.unchanged += 1
            failed.append(Failure(found.path, found.size, found.mtime, "unchanged since it last failed"))
            continue
        if progress is not None:
            progress(found.path)
        try:
            shots = film_shots(found.path, palette_k=0)  # keyframes only: the index keeps histograms
        except BadImageError as exc:
            failure = Failure(found.path, found.size, found.mtime, exc.reason)
            failed.append(failure)
            report.removed += store.replace_video(found.path, codebook_id=codebook_id, failure=failure)
            continue
        rows = []
        for shot in shots.shots:
            image = downscale(shot.image, descriptor.max_side)
            seconds = shots.seconds(shot.keyframe)
            record = ImageRecord(
                frame_path(found.path, seconds), found.size, found.mtime,
                _keyframe_hash(found.path, found.size, found.mtime, shot.keyframe),
                shots.info.width, shots.info.height, descriptor.of_rgb(image), phash=perceptual_hash(image),
            )
            rows.append((record, seconds, shots.seconds(shot.start), shots.seconds(shot.end)))
        report.removed += store.replace_video(found.path, codebook_id=codebook_id, shots=rows)
        report.shots += len(rows)
        if state is None:
            report.added += 1
        else:
            report.updated += 1
    for gone in states.values():  # videos no longer in the folder
        report.removed += store.replace_video(gone.path, codebook_id=codebook_id)
    return report


__all__ = ["VideoReport", "sync_videos", "video_samples"]
