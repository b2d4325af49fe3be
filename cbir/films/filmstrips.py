"""Pictures of films: the movie barcode and the contact sheet of shots with their palettes.

Arrays in, arrays out (uint8 RGB on white); write them with :func:`cbir.palette.swatches.save_image`.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from cbir.errors import BadInputError
from cbir.palette import Palette
from cbir.palette.swatches import BACKGROUND, palette_strip

BARCODE_MODES = ("average", "dominant")
#: Bits kept per channel when finding a frame's dominant color (4: a 4096-cell RGB grid).
DOMINANT_BITS = 4


def frame_color(rgb: np.ndarray, *, mode: str = "average") -> np.ndarray:
    """One color summing up a frame, shape (3,) uint8.

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3), uint8
    mode : {"average", "dominant"}
        The mean color, or the mean of the pixels in the most populated cell of a
        coarse RGB grid (the color that covers most of the frame).

    Raises
    ------
    BadInputError
        If the frame is not uint8 (H, W, 3) or the mode is unknown.
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8 or rgb.size == 0:
        raise BadInputError(f"expected a uint8 RGB frame of shape (H, W, 3), got {rgb.dtype} {rgb.shape}")
    if mode not in BARCODE_MODES:
        raise BadInputError(f"unknown barcode color {mode!r}; choose from {', '.join(BARCODE_MODES)}")
    pixels = rgb.reshape(-1, 3)
    if mode == "dominant":
        shift = 8 - DOMINANT_BITS
        cells = (pixels[:, 0].astype(np.int32) >> shift << 2 * DOMINANT_BITS) | (pixels[:, 1] >> shift << DOMINANT_BITS) | (pixels[:, 2] >> shift)
        pixels = pixels[cells == np.bincount(cells).argmax()]
    return np.round(pixels.mean(axis=0)).astype(np.uint8)


def barcode(colors: np.ndarray, *, height: int = 240, column_width: int = 1) -> np.ndarray:
    """The movie barcode: one column per sampled frame, left to right, in its color.

    Parameters
    ----------
    colors : ndarray, shape (n, 3), uint8
        One color per frame, in film order (see :func:`frame_color`).
    height : int
        Height in pixels.
    column_width : int
        Width of each frame's column.

    Returns
    -------
    ndarray, shape (height, n * column_width, 3), uint8

    Raises
    ------
    BadInputError
        If the colors are not (n, 3) uint8 with n >= 1, or a size is below 1.
    """
    colors = np.asarray(colors)
    if colors.ndim != 2 or colors.shape[1] != 3 or colors.dtype != np.uint8 or len(colors) == 0:
        raise BadInputError(f"expected uint8 colors of shape (n, 3), n >= 1, got {colors.dtype} {colors.shape}")
    if height < 1 or column_width < 1:
        raise BadInputError(f"barcode height and column width must be at least 1, got {height} and {column_width}")
    row = np.repeat(colors, column_width, axis=0)
    return np.ascontiguousarray(np.broadcast_to(row[None], (height, len(row), 3)))


def _fit(image: np.ndarray, width: int) -> np.ndarray:
    height = max(1, round(image.shape[0] * width / image.shape[1]))
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


def contact_sheet(
    frames: Sequence[np.ndarray],
    palettes: Sequence[Palette],
    labels: Sequence[str] | None = None,
    *,
    columns: int = 4,
    width: int = 320,
) -> np.ndarray:
    """A contact sheet: every keyframe with its palette strip under it (and a label), in rows.

    Parameters
    ----------
    frames : sequence of ndarray (h, w, 3) uint8
        One keyframe per shot.
    palettes : sequence of Palette
        The shots' palettes, in display order.
    labels : sequence of str, optional
        Written on each keyframe (e.g. the shot's start time).
    columns : int
        Tiles per row.
    width : int
        Width of a tile in pixels.

    Returns
    -------
    ndarray, shape (H, W, 3), uint8

    Raises
    ------
    BadInputError
        If the lengths differ, nothing is given, or a size is below 1.
    """
    if not frames or len(frames) != len(palettes) or (labels is not None and len(labels) != len(frames)):
        raise BadInputError(f"expected as many palettes and labels as keyframes (at least one), got "
                            f"{len(frames)}, {len(palettes)}, {len(labels) if labels is not None else '-'}")
    if columns < 1 or width < 16:
        raise BadInputError(f"expected at least 1 column and tiles at least 16 pixels wide, got {columns} and {width}")
    tiles = []
    for i, (frame, palette) in enumerate(zip(frames, palettes)):
        image = _fit(np.asarray(frame, dtype=np.uint8), width).copy()
        if labels is not None:
            scale = width / 640
            org = (max(2, round(6 * scale * 2)), image.shape[0] - max(3, round(8 * scale * 2)))
            cv2.putText(image, labels[i], org, cv2.FONT_HERSHEY_SIMPLEX, scale * 1.4, (0, 0, 0), 3, cv2.LINE_AA)
            cv2.putText(image, labels[i], org, cv2.FONT_HERSHEY_SIMPLEX, scale * 1.4, (255, 255, 255), 1, cv2.LINE_AA)
        strip = palette_strip(palette.rgb, palette.proportions, width=width, height=max(4, width // 8))
        tiles.append(np.concatenate([image, strip], axis=0))
    gap = max(2, width // 40)
    tile_height = max(t.shape[0] for t in tiles)
    rows = (len(tiles) + columns - 1) // columns
    used = min(columns, len(tiles))
    sheet = np.full((rows * (tile_height + gap) + gap, used * (width + gap) + gap, 3), BACKGROUND, dtype=np.uint8)
    for i, tile in enumerate(tiles):
        top, left = gap + (i // columns) * (tile_height + gap), gap + (i % columns) * (width + gap)
        sheet[top : top + tile.shape[0], left : left + width] = tile
    return sheet


def timestamp(seconds: float) -> str:
    """``h:mm:ss.s`` (or ``m:ss.s`` under an hour) for a time in seconds."""
    minutes, rest = divmod(max(0.0, seconds), 60.0)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}:{minutes:02d}:{rest:04.1f}" if hours else f"{minutes}:{rest:04.1f}"
