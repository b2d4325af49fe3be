"""Video files: the only place that opens them (OpenCV's FFmpeg backend), frames streamed in order.

A :class:`VideoReader` yields RGB frames one at a time, optionally downscaled
(``max_side``) and thinned (``step``: skipped frames are grabbed, not converted),
so memory stays one frame whatever the length. A video that cannot be opened,
has no frames, or stops well before the frame count its container declares is a
:class:`cbir.errors.BadVideoError` naming the file.

A frame of an indexed video is addressed as ``film.mp4#t=73.4`` (a media-fragment
time in seconds); :func:`frame_path` and :func:`split_frame_path` convert.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from cbir.errors import BadInputError, BadVideoError

VIDEO_EXTENSIONS = frozenset({".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".ogv"})
#: A video that decodes fewer frames than ``declared * (1 - TRUNCATION_SLACK) - 2`` is refused as truncated.
TRUNCATION_SLACK = 0.02
#: The writer's FourCC per output suffix: FFV1 is lossless (a posterized frame keeps exactly its colors).
FOURCC_BY_SUFFIX = {".avi": "FFV1", ".mkv": "FFV1", ".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v"}
LOSSLESS_FOURCCS = frozenset({"FFV1", "png ", "HFYU"})
_FRAGMENT = re.compile(r"^(?P<video>.+)#t=(?P<time>\d+(?:\.\d+)?)$")


def is_video_path(path: str | os.PathLike[str]) -> bool:
    """Whether a file name has a video extension (see :data:`VIDEO_EXTENSIONS`)."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def frame_path(video: str, seconds: float) -> str:
    """``video#t=SECONDS`` (one decimal): how a frame of an indexed video is named."""
    return f"{video}#t={seconds:.1f}"


def split_frame_path(path: str) -> tuple[str, float] | None:
    """``(video, seconds)`` of a ``video#t=SECONDS`` path whose video has a video extension, else None."""
    match = _FRAGMENT.match(path)
    if match is None or not is_video_path(match["video"]):
        return None
    return match["video"], float(match["time"])


def downscale(rgb: np.ndarray, max_side: int | None, *, sample: bool = False) -> np.ndarray:
    """``rgb`` resized so its longer side is at most ``max_side``; unchanged when smaller.

    Area averaging by default; with ``sample``, nearest-neighbour: the frame's own pixel
    colors on a regular grid, about a hundred times cheaper on a 1080p frame.
    """
    height, width = rgb.shape[:2]
    if max_side is None or max(height, width) <= max_side:
        return rgb
    scale = max_side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_NEAREST if sample else cv2.INTER_AREA)


def bgr_to_rgb(bgr: np.ndarray) -> np.ndarray:
    """An OpenCV BGR frame as RGB (a new array)."""
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


@dataclass(frozen=True)
class VideoInfo:
    """What a video's container declares.

    Attributes
    ----------
    path : str
    fps : float
        Frames per second.
    frames : int
        Declared frame count (0 when the container does not say).
    width, height : int
    """

    path: str
    fps: float
    frames: int
    width: int
    height: int

    @property
    def duration(self) -> float:
        """Declared length in seconds."""
        return self.frames / self.fps


class VideoReader:
    """Sequential RGB frames of a video file (use as a context manager).

    Parameters
    ----------
    path : path
        A video file OpenCV's FFmpeg backend decodes.

    Raises
    ------
    BadVideoError
        If the file is missing or is not a decodable video.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        if not os.path.isfile(self.path):
            raise BadVideoError(self.path, "no such file")
        capture = cv2.VideoCapture(self.path, cv2.CAP_FFMPEG)
        if not capture.isOpened():
            capture.release()
            raise BadVideoError(self.path, "not a video OpenCV can decode")
        fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
        width, height = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if not np.isfinite(fps) or fps <= 0 or width <= 0 or height <= 0:
            capture.release()
            raise BadVideoError(self.path, f"no usable video stream (fps {fps:g}, {width}x{height})")
        frames = capture.get(cv2.CAP_PROP_FRAME_COUNT)
        self.info = VideoInfo(self.path, fps, int(frames) if np.isfinite(frames) and frames > 0 else 0, width, height)
        self._capture = capture
        #: Frames decoded (or grabbed) so far.
        self.frames_read = 0

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the decoder."""
        self._capture.release()

    def frames(self, *, step: int = 1, max_side: int | None = None, check: bool = True) -> Iterator[tuple[int, np.ndarray]]:
        """``(index, rgb)`` of every ``step``-th frame from the current position, in order.

        Parameters
        ----------
        step : int
            Keep every ``step``-th frame; the others are grabbed without color conversion.
        max_side : int, optional
            Longer side of the yielded frames (area-averaged); full size when None.
        check : bool
            At the end, raise if the video stopped well short of its declared length.

        Yields
        ------
        index : int
            Frame number from the start of the file.
        rgb : ndarray, shape (H, W, 3), uint8

        Raises
        ------
        BadVideoError
            If no frame decodes, or (with ``check``) the file is truncated.
        """
        if step < 1:
            raise BadInputError(f"step must be at least 1, got {step}")
        capture = self._capture
        while True:
            index = self.frames_read
            if index % step:
                if not capture.grab():
                    break
                self.frames_read += 1
                continue
            ok, bgr = capture.read()
            if not ok or bgr is None:
                break
            self.frames_read += 1
            rgb = cv2.cvtColor(downscale(bgr, max_side), cv2.COLOR_BGR2RGB)
            yield index, rgb
        if check:
            self.check_complete()

    def bgr_frames(self) -> Iterator[np.ndarray]:
        """Every remaining frame as OpenCV decodes it (BGR, full size), without checks: a plain decode loop."""
        while True:
            ok, bgr = self._capture.read()
            if not ok or bgr is None:
                return
            self.frames_read += 1
            yield bgr

    def check_complete(self) -> None:
        """Raise unless the frames read so far cover the declared length (call after reading to the end).

        Raises
        ------
        BadVideoError
            If no frame was decoded, or far fewer than the container declares.
        """
        if self.frames_read == 0:
            raise BadVideoError(self.path, "no frame could be decoded")
        declared = self.info.frames
        if declared and self.frames_read < declared * (1 - TRUNCATION_SLACK) - 2:
            raise BadVideoError(
                self.path, f"truncated or damaged: decoded {self.frames_read} of the {declared} frames it declares"
            )

    def frame_at(self, seconds: float, *, max_side: int | None = None) -> np.ndarray:
        """The RGB frame shown at ``seconds`` (seeking), shape (H, W, 3) uint8.

        Raises
        ------
        BadVideoError
            If no frame decodes at that time.
        """
        index = max(0, round(seconds * self.info.fps))
        self._capture.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, bgr = self._capture.read()
        if not ok or bgr is None:
            raise BadVideoError(self.path, f"no frame at {seconds:.1f} s")
        return cv2.cvtColor(downscale(bgr, max_side), cv2.COLOR_BGR2RGB)

    def sample(self, n: int, *, max_side: int | None = None) -> list[tuple[int, np.ndarray]]:
        """About ``n`` frames spread evenly over the video, as ``(index, rgb)``, in order.

        Sparse samples of a long video are reached by seeking; otherwise (or when the
        container declares no length) the video is read through, keeping every k-th frame.

        Raises
        ------
        BadVideoError
            If no frame decodes, or the video is truncated (a sampled frame is missing).
        """
        if n < 1:
            raise BadInputError(f"the number of sampled frames must be at least 1, got {n}")
        declared = self.info.frames
        if declared and declared > 8 * n:
            out = []
            for index in np.unique(np.linspace(0, declared - 1, n).round().astype(int)):
                self._capture.set(cv2.CAP_PROP_POS_FRAMES, int(index))
                ok, bgr = self._capture.read()
                if not ok or bgr is None:
                    raise BadVideoError(self.path, f"truncated or damaged: no frame {index} of the {declared} frames it declares")
                out.append((int(index), cv2.cvtColor(downscale(bgr, max_side), cv2.COLOR_BGR2RGB)))
            return out
        step = max(1, declared // n) if declared else 1
        out = list(self.frames(step=step, max_side=max_side))
        if len(out) > n:  # keep n of them, evenly spread
            out = [out[i] for i in np.unique(np.linspace(0, len(out) - 1, n).round().astype(int))]
        return out


def writer_fourcc(path: str | os.PathLike[str], codec: str | None = None) -> str:
    """The FourCC a video written to ``path`` uses: ``codec`` if given, else by suffix.

    Raises
    ------
    BadInputError
        If the suffix is not a video container cbir writes, or ``codec`` is not 4 characters.
    """
    if codec is not None:
        if len(codec) != 4:
            raise BadInputError(f"a codec is a FourCC of 4 characters (e.g. FFV1, mp4v, MJPG), got {codec!r}")
        return codec
    suffix = Path(path).suffix.lower()
    if suffix not in FOURCC_BY_SUFFIX:
        raise BadInputError(f"{path}: write a video as {', '.join(sorted(FOURCC_BY_SUFFIX))}")
    return FOURCC_BY_SUFFIX[suffix]


class VideoWriter:
    """Writes RGB frames to a video file (use as a context manager).

    Raises
    ------
    BadInputError
        If the container or codec cannot be written here.
    """

    def __init__(self, path: str | os.PathLike[str], *, fps: float, size: tuple[int, int], codec: str | None = None) -> None:
        self.path = os.fspath(path)
        self.fourcc = writer_fourcc(self.path, codec)
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._writer = cv2.VideoWriter(self.path, cv2.VideoWriter.fourcc(*self.fourcc), fps, size)
        if not self._writer.isOpened():
            raise BadInputError(f"{self.path}: OpenCV cannot write {self.fourcc!r} video here; try .avi or .mkv (FFV1)")
        self.size = size

    def write(self, rgb: np.ndarray) -> None:
        """Append one frame, shape (H, W, 3) uint8 RGB of the writer's size."""
        self._writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))

    def write_bgr(self, bgr: np.ndarray) -> None:
        """Append one frame already in OpenCV's BGR order."""
        self._writer.write(np.ascontiguousarray(bgr))

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self._writer.release()
