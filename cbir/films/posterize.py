"""The "A Scanner Darkly" effect on a video: every frame posterized with one palette, so colors do not flicker.

The palette is learned once, from frames sampled across the whole video (or once
per shot, from the frames :func:`cbir.films.stills.film_shots` keeps of it), then every
frame is streamed through: each pixel takes the color of its nearest palette color
in L*a*b*, found through a 24-bit table filled as colors are met
(:class:`cbir.color.QuantizationTable`), so a frame costs about one lookup per
pixel. The audio track is not copied.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cbir.color import QuantizationTable, pack_rgb
from cbir.errors import BadInputError
from cbir.films.stills import film_palette, film_shots
from cbir.films.video import LOSSLESS_FOURCCS, VideoReader, VideoWriter, writer_fourcc
from cbir.palette import DEFAULT_METHOD, Palette, check_k

#: Frames sampled across the video to learn its palette.
PALETTE_SAMPLES = 64
#: Longer side of those frames.
PALETTE_SIDE = 256

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class PosterizedVideo:
    """What :func:`posterize_video` wrote.

    Attributes
    ----------
    path : str
        The output file.
    frames : int
        Frames written (as many as were read).
    seconds : float
        Wall time of the whole run, palette learning included.
    palettes : tuple of Palette
        One for the whole video, or one per shot.
    fourcc : str
        The output codec; lossless ones keep at most k colors per frame exactly.
    """

    path: str
    frames: int
    seconds: float
    palettes: tuple[Palette, ...]
    fourcc: str

    @property
    def lossless(self) -> bool:
        return self.fourcc in LOSSLESS_FOURCCS

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


class _Painter:
    """Maps a frame to the colors of one palette (nearest in Lab), through a lazily filled 24-bit table."""

    def __init__(self, palette: Palette) -> None:
        self._table = QuantizationTable(palette.lab)
        self._bgr = np.ascontiguousarray(palette.rgb[:, ::-1])

    def paint_bgr(self, rgb: np.ndarray) -> np.ndarray:
        codes = self._table.quantize(rgb)
        return self._bgr[codes]


def posterize_video(
    source: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    k: int = 8,
    per_shot: bool = False,
    method: str = DEFAULT_METHOD,
    seed: int = 0,
    codec: str | None = None,
    progress: Progress | None = None,
) -> PosterizedVideo:
    """Write ``source`` posterized to ``out``: the same frames, each in at most ``k`` colors.

    Parameters
    ----------
    source : path
        A video file.
    out : path
        ``.avi`` or ``.mkv`` (FFV1, lossless), ``.mp4`` (mp4v, lossy: more colors after decoding).
    k : int
        Colors of the palette, 1..256.
    per_shot : bool
        Learn a palette per shot (one pass more) instead of one for the whole video.
    method : str
        Clustering of the palette (see :func:`cbir.palette.extract_palette`).
    seed : int
    codec : str, optional
        FourCC overriding the one chosen by the suffix.
    progress : callable(done, total), optional
        Called every few frames while writing.

    Returns
    -------
    PosterizedVideo

    Raises
    ------
    BadVideoError
        If the source cannot be decoded or is truncated.
    BadInputError
        If ``k`` is out of range, or the output cannot be written.
    """
    started = time.perf_counter()
    k = check_k(k)
    fourcc = writer_fourcc(out, codec)
    if os.path.abspath(source) == os.path.abspath(out):
        raise BadInputError(f"{out}: the output would overwrite the source video")
    if per_shot:
        shots = film_shots(source, palette_k=k, seed=seed).shots
        palettes = tuple(shot.palette for shot in shots)
        starts = [shot.start for shot in shots]
    else:
        with VideoReader(source) as reader:
            sampled = [rgb for _, rgb in reader.sample(PALETTE_SAMPLES, max_side=PALETTE_SIDE)]
        palettes = (film_palette(sampled, k=k, method=method, seed=seed),)
        starts = [0]
    try:
        written = _write(source, out, palettes, starts, fourcc, progress)
    except BaseException:
        Path(out).unlink(missing_ok=True)  # no half-written video left behind
        raise
    return PosterizedVideo(os.fspath(out), written, time.perf_counter() - started, palettes, fourcc)


def _write(source: str | os.PathLike[str], out: str | os.PathLike[str], palettes: tuple[Palette, ...], starts: list[int],
           fourcc: str, progress: Progress | None) -> int:
    written = 0
    with VideoReader(source) as reader:
        size = (reader.info.width, reader.info.height)
        with VideoWriter(out, fps=reader.info.fps, size=size, codec=fourcc) as writer:
            shot = 0
            painter = _Painter(palettes[0])
            for index, rgb in reader.frames():
                if shot + 1 < len(starts) and index >= starts[shot + 1]:
                    shot += 1
                    painter = _Painter(palettes[shot])  # one table at a time: memory stays bounded
                if rgb.shape[1::-1] != size:
                    raise BadInputError(f"{source}: frame {index} is {rgb.shape[1]}x{rgb.shape[0]}, not {size[0]}x{size[1]}")
                writer.write_bgr(painter.paint_bgr(rgb))
                written += 1
                if progress is not None and index % 8 == 0:
                    progress(written, reader.info.frames)
    if progress is not None:
        progress(written, written)
    return written


def distinct_colors(rgb: np.ndarray) -> int:
    """Number of distinct colors in a uint8 RGB frame (H, W, 3)."""
    return len(np.unique(pack_rgb(rgb)))


def decode_encode_seconds(source: str | os.PathLike[str], out: str | os.PathLike[str], *, codec: str | None = None) -> tuple[int, float]:
    """Frames and wall seconds of a plain decode and re-encode of ``source`` (the baseline of posterizing).

    Raises
    ------
    BadVideoError
        If the source cannot be decoded.
    """
    started = time.perf_counter()
    frames = 0
    with VideoReader(source) as reader:
        size = (reader.info.width, reader.info.height)
        with VideoWriter(out, fps=reader.info.fps, size=size, codec=writer_fourcc(out, codec)) as writer:
            for bgr in reader.bgr_frames():
                writer.write_bgr(bgr)
                frames += 1
    return frames, time.perf_counter() - started


