"""Films: the shots of a video with a keyframe and palette each, and the palette of a whole film or folder of stills.

:func:`film_shots` reads a video once, front to back: every frame goes through
shot detection (:mod:`cbir.films.shots`), and each shot keeps at most
:data:`SHOT_SAMPLES` evenly spaced small frames (the spacing doubles when the
shot grows), from which its keyframe (the one nearest the shot's middle) and its
palette are taken. Memory is a few megabytes whatever the length.

:func:`film_stills` samples a film or a folder of stills evenly for the palette
of the whole (:func:`film_palette`) and for the movie barcode.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from cbir.errors import BadImageError, BadInputError
from cbir.films.shots import ANALYSIS_SIDE, ShotDetector, frame_signature
from cbir.films.video import VideoInfo, VideoReader, bgr_to_rgb, downscale, is_video_path
from cbir.images import is_image_path, load_image
from cbir.palette import DEFAULT_METHOD, Palette, extract_palette, grid_subsample

#: Longer side of the frames kept for keyframes, palettes and contact sheets.
KEYFRAME_SIDE = 320
#: Frames kept per shot (evenly spaced) for its keyframe and palette.
SHOT_SAMPLES = 32
#: Pixels of a shot's kept frames (a regular grid over them) its palette is clustered from.
SHOT_PALETTE_PIXELS = 16_384
#: Colors in a shot's palette.
SHOT_PALETTE_K = 5
#: Frames (or stills) sampled for the palette of a whole film and for its barcode.
DEFAULT_SAMPLES = 400

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Shot:
    """One shot: frames ``start`` .. ``end - 1``, a keyframe and a palette.

    Attributes
    ----------
    start, end : int
        First frame and one past the last.
    keyframe : int
        Frame number of the keyframe.
    image : ndarray, shape (h, w, 3), uint8
        The keyframe, longer side at most :data:`KEYFRAME_SIDE`.
    palette : Palette
        Dominant colors of the shot's sampled frames.
    """

    start: int
    end: int
    keyframe: int
    image: np.ndarray
    palette: Palette


@dataclass(frozen=True)
class FilmShots:
    """The shots of a video: what ``cbir shots --json`` prints."""

    info: VideoInfo
    frames: int
    shots: tuple[Shot, ...]

    def seconds(self, frame: int) -> float:
        """Time in seconds at which ``frame`` starts."""
        return frame / self.info.fps

    def to_dict(self) -> dict:
        """``{"fps", "frames", "shots": [{"start", "end", "keyframe", "palette": [{"hex", "proportion"}]}]}``, seconds."""
        return {
            "fps": self.info.fps,
            "frames": self.frames,
            "shots": [
                {
                    "start": round(self.seconds(shot.start), 3),
                    "end": round(self.seconds(shot.end), 3),
                    "keyframe": round(self.seconds(shot.keyframe), 3),
                    "palette": [{"hex": c.hex, "proportion": round(c.proportion, 4)} for c in shot.palette.colors],
                }
                for shot in self.shots
            ],
        }


class _ShotFrames:
    """At most SHOT_SAMPLES evenly spaced small frames of the shot in progress."""

    def __init__(self, start: int, items: list[tuple[int, np.ndarray]] | None = None) -> None:
        self.start = start
        self.stride = 1
        self.items = items or []

    def wants(self, index: int) -> bool:
        return (index - self.start) % self.stride == 0

    def add(self, index: int, rgb: np.ndarray) -> None:
        self.items.append((index, rgb))
        if len(self.items) > SHOT_SAMPLES:
            self.stride *= 2
            self.items = [(i, f) for i, f in self.items if (i - self.start) % self.stride == 0]

    def split(self, boundary: int) -> _ShotFrames:
        """Hand the frames from ``boundary`` on (read before the boundary was decided) to the next shot."""
        later = [(i, f) for i, f in self.items if i >= boundary]
        self.items = [(i, f) for i, f in self.items if i < boundary]
        return _ShotFrames(boundary, later)

    def shot(self, end: int, *, palette_k: int, seed: int) -> Shot:
        middle = (self.start + end - 1) / 2
        if not self.items:
            raise BadInputError(f"shot {self.start}..{end} kept no frame")
        keyframe, image = min(self.items, key=lambda item: abs(item[0] - middle))
        if palette_k == 0:
            return Shot(self.start, end, keyframe, image, Palette(colors=()))
        pixels = grid_subsample(np.concatenate([f for _, f in self.items], axis=0), SHOT_PALETTE_PIXELS)
        # One thread: BLAS/OpenMP threads for a clustering this small only contend with the decoder.
        with threadpool_limits(limits=1):
            palette = extract_palette(pixels[:, None, :], k=palette_k, method=DEFAULT_METHOD, seed=seed)
        return Shot(self.start, end, keyframe, image, palette)


def film_shots(
    path: str | os.PathLike[str],
    *,
    palette_k: int = SHOT_PALETTE_K,
    seed: int = 0,
    progress: Progress | None = None,
    detector: ShotDetector | None = None,
) -> FilmShots:
    """Split a video into shots, each with its keyframe and palette, reading it once.

    Parameters
    ----------
    path : path
        A video file.
    palette_k : int
        Colors per shot palette; 0 for none (an empty palette).
    seed : int
        Seeds the palettes' clustering.
    progress : callable(done, total), optional
        Called every few frames with the frames read and the declared count.
    detector : ShotDetector, optional
        With other thresholds than the defaults.

    Returns
    -------
    FilmShots

    Raises
    ------
    BadVideoError
        If the file is not a decodable video or is truncated.
    """
    detector = detector or ShotDetector()
    with VideoReader(path) as reader:
        info = reader.info
        shots: list[Shot] = []
        current = _ShotFrames(0)
        for index, bgr in enumerate(reader.bgr_frames()):
            # Detection looks at the frame's own pixels on a grid (no averaging: cheap at 1080p); only
            # the frames a shot keeps are scaled down properly.
            found = detector.push(frame_signature(bgr_to_rgb(downscale(bgr, ANALYSIS_SIDE, sample=True))))
            if found is not None:
                following = current.split(found)
                shots.append(current.shot(found, palette_k=palette_k, seed=seed))
                current = following
            if current.wants(index) or not current.items:
                current.add(index, bgr_to_rgb(downscale(bgr, KEYFRAME_SIDE)))
            if progress is not None and index % 16 == 0:
                progress(index + 1, info.frames)
        reader.check_complete()
        frames = reader.frames_read
        found = detector.finish()
        if found is not None:
            following = current.split(found)
            shots.append(current.shot(found, palette_k=palette_k, seed=seed))
            current = following
        if current.items:
            shots.append(current.shot(frames, palette_k=palette_k, seed=seed))
    if progress is not None:
        progress(frames, frames)
    return FilmShots(info, frames, tuple(shots))


def _folder_stills(folder: Path) -> list[Path]:
    stills = sorted(p for p in folder.rglob("*") if p.is_file() and is_image_path(p))
    if not stills:
        raise BadInputError(f"{folder}: no image files found")
    return stills


def film_stills(source: str | os.PathLike[str], *, n: int = DEFAULT_SAMPLES, max_side: int = 96) -> list[np.ndarray]:
    """About ``n`` frames spread evenly over a video, or ``n`` stills of a folder (sorted by path), small.

    Parameters
    ----------
    source : path
        A video file, or a folder of stills (searched recursively; unreadable images are skipped).
    n : int
        Frames wanted.
    max_side : int
        Longer side of the returned frames.

    Returns
    -------
    list of ndarray (h, w, 3) uint8, in film order

    Raises
    ------
    BadVideoError
        If the video cannot be decoded.
    BadInputError
        If ``source`` is neither a video nor a folder with images, or ``n`` < 1.
    """
    if n < 1:
        raise BadInputError(f"the number of sampled frames must be at least 1, got {n}")
    path = Path(source)
    if path.is_dir():
        stills = _folder_stills(path)
        chosen = [stills[i] for i in np.unique(np.linspace(0, len(stills) - 1, min(n, len(stills))).round().astype(int))]
        out = []
        for still in chosen:
            try:
                out.append(load_image(still, max_side=max_side))
            except BadImageError:  # one unreadable still does not spoil a folder's palette
                pass
        if not out:
            raise BadInputError(f"{source}: none of its images could be read")
        return out
    if not is_video_path(path):
        raise BadInputError(f"{source}: not a video ({', '.join(sorted({'.mp4', '.avi', '.mkv', '.mov'}))}, ...) or a folder")
    with VideoReader(path) as reader:
        return [rgb for _, rgb in reader.sample(n, max_side=max_side)]


def film_palette(frames: list[np.ndarray], *, k: int = 10, method: str = DEFAULT_METHOD, sort: str = "proportion",
                 seed: int = 0) -> Palette:
    """The palette of a film from its sampled frames: their pixels clustered together.

    Parameters
    ----------
    frames : list of ndarray (h, w, 3) uint8
        From :func:`film_stills` (sizes may differ).
    k, method, sort, seed
        As in :func:`cbir.palette.extract_palette`.

    Raises
    ------
    BadInputError
        If there are no frames or an option is invalid.
    """
    if not frames:
        raise BadInputError("no frames to take a palette from")
    pixels = np.concatenate([np.asarray(f).reshape(-1, 3) for f in frames])[:, None, :]
    with threadpool_limits(limits=1):
        return extract_palette(pixels, k=k, method=method, sort=sort, seed=seed)
