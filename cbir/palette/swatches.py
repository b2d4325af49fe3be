"""Pictures of palettes: a swatch strip or proportional bar, set under an image or beside another.

All functions take and return uint8 RGB arrays (the background is white), except
:func:`save_image`, which writes one to a file. Strips
are as wide as the image they go under. Geometry, for a strip of width W:

* margin ``m = max(1, round(0.01 * W))`` above and below the colors;
* ``"swatches"`` (colorpalette.cinema style): n equal swatches with a margin ``m``
  before, between and after them;
* ``"bar"``: one bar across the full width whose segment i spans
  ``round(W * cumsum(p)[i-1]) .. round(W * cumsum(p)[i])`` columns.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from cbir.errors import BadInputError

STYLES = ("swatches", "bar")
#: Output formats that keep every pixel exactly (a posterized image keeps at most k colors).
LOSSLESS_SUFFIXES = frozenset({".png", ".bmp", ".tif", ".tiff", ".ppm"})
DEFAULT_STYLE = "swatches"
BACKGROUND = 255


def strip_margin(width: int) -> int:
    """Margin, in pixels, around the colors of a strip ``width`` pixels wide."""
    return max(1, round(0.01 * width))


def _check_colors(colors: np.ndarray, proportions: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    colors = np.asarray(colors)
    if colors.ndim != 2 or colors.shape[1] != 3 or len(colors) == 0 or colors.dtype != np.uint8:
        raise BadInputError(f"expected uint8 colors of shape (n, 3), n >= 1, got {colors.dtype} {colors.shape}")
    if proportions is None:
        shares = np.full(len(colors), 1.0 / len(colors))
    else:
        shares = np.asarray(proportions, dtype=np.float64)
        if shares.shape != (len(colors),) or (shares < 0).any() or shares.sum() <= 0:
            raise BadInputError(f"expected {len(colors)} non-negative proportions, got {shares.tolist()}")
        shares = shares / shares.sum()
    return colors, shares


def palette_strip(
    colors: np.ndarray,
    proportions: np.ndarray | None = None,
    *,
    width: int,
    style: str = DEFAULT_STYLE,
    height: int | None = None,
) -> np.ndarray:
    """A strip showing palette colors, left to right in the given order.

    Parameters
    ----------
    colors : ndarray, shape (n, 3), uint8
        sRGB colors.
    proportions : ndarray, shape (n,), optional
        Shares of the colors (used by ``style="bar"``; equal when omitted).
    width : int
        Width of the strip in pixels (the width of the image it goes under).
    style : {"swatches", "bar"}
        Equal swatches with margins, or a bar whose segments are proportional to the shares.
    height : int, optional
        Height of the colored band; by default about one swatch width for swatches
        (so they are near square) and 8% of the width for a bar.

    Returns
    -------
    ndarray, shape (height + 2 * margin, width, 3), uint8

    Raises
    ------
    BadInputError
        If the colors, proportions, width, height or style are invalid.
    """
    colors, shares = _check_colors(colors, proportions)
    if style not in STYLES:
        raise BadInputError(f"unknown strip style {style!r}; choose from {', '.join(STYLES)}")
    if isinstance(width, bool) or not isinstance(width, (int, np.integer)) or width < 1:
        raise BadInputError(f"strip width must be a positive integer, got {width!r}")
    if height is not None and (isinstance(height, bool) or not isinstance(height, (int, np.integer)) or height < 1):
        raise BadInputError(f"strip height must be a positive integer, got {height!r}")
    n = len(colors)
    margin = strip_margin(width)
    if style == "bar":
        edges = np.round(np.concatenate([[0.0], np.cumsum(shares)]) * width).astype(np.int64)
        edges[-1] = width
        band = height or max(4, round(0.08 * width))
    else:
        gaps = margin if width - (n + 1) * margin >= n else 0  # too narrow for margins: none
        available = width - (n + 1) * gaps
        inner = np.round(np.arange(n + 1) * available / n).astype(np.int64)
        starts = gaps + np.arange(n) * gaps + inner[:-1]
        stops = gaps + np.arange(n) * gaps + inner[1:]
        edges = np.empty(2 * n, dtype=np.int64)
        edges[0::2], edges[1::2] = starts, stops
        band = height or int(np.clip(round(available / n), max(4, round(0.04 * width)), max(4, round(0.25 * width))))
    strip = np.full((band + 2 * margin, width, 3), BACKGROUND, dtype=np.uint8)
    for i in range(n):
        if style == "bar":
            left, right = edges[i], edges[i + 1]
        else:
            left, right = edges[2 * i], edges[2 * i + 1]
        strip[margin : margin + band, left:right] = colors[i]
    return strip


def _check_image(image: np.ndarray, name: str) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or image.size == 0:
        raise BadInputError(f"expected a uint8 RGB {name} of shape (H, W, 3), got {image.dtype} {image.shape}")
    return image


def with_strip(image: np.ndarray, strip: np.ndarray) -> np.ndarray:
    """``image`` with ``strip`` under it, shape (H + h, W, 3).

    Raises
    ------
    BadInputError
        If the widths differ or either is not uint8 RGB.
    """
    image, strip = _check_image(image, "image"), _check_image(strip, "strip")
    if image.shape[1] != strip.shape[1]:
        raise BadInputError(f"the strip is {strip.shape[1]} pixels wide, the image {image.shape[1]}")
    return np.concatenate([image, strip], axis=0)


def palette_picture(
    image: np.ndarray,
    colors: np.ndarray,
    proportions: np.ndarray | None = None,
    *,
    style: str = DEFAULT_STYLE,
    strip_only: bool = False,
) -> np.ndarray:
    """``image`` with a :func:`palette_strip` of its width under it, or that strip alone.

    Parameters
    ----------
    image : ndarray, shape (H, W, 3), uint8
    colors : ndarray, shape (n, 3), uint8
    proportions : ndarray, shape (n,), optional
    style : {"swatches", "bar"}
    strip_only : bool
        Return only the strip, shape (h, W, 3).

    Returns
    -------
    ndarray, shape (H + h, W, 3) or (h, W, 3), uint8

    Raises
    ------
    BadInputError
        If the image, colors, proportions or style are invalid.
    """
    image = _check_image(image, "image")
    strip = palette_strip(colors, proportions, width=image.shape[1], style=style)
    return strip if strip_only else with_strip(image, strip)


def side_by_side(left: np.ndarray, right: np.ndarray, *, gap: int | None = None) -> np.ndarray:
    """Two images next to each other on white, top-aligned, with a ``gap`` (default: a strip margin).

    Returns
    -------
    ndarray, shape (max(H1, H2), W1 + gap + W2, 3), uint8

    Raises
    ------
    BadInputError
        If either is not uint8 RGB or the gap is negative.
    """
    left, right = _check_image(left, "image"), _check_image(right, "image")
    gap = strip_margin(left.shape[1]) if gap is None else gap
    if gap < 0:
        raise BadInputError(f"gap must be >= 0, got {gap}")
    height = max(left.shape[0], right.shape[0])
    out = np.full((height, left.shape[1] + gap + right.shape[1], 3), BACKGROUND, dtype=np.uint8)
    out[: left.shape[0], : left.shape[1]] = left
    out[: right.shape[0], left.shape[1] + gap :] = right
    return out


def save_image(path: str | os.PathLike[str], rgb: np.ndarray) -> Path:
    """Write a uint8 RGB image; the format follows the extension (JPEG at quality 95).

    Parameters
    ----------
    path : str or path
        Output file, e.g. ``out.png``; an existing file is replaced.
    rgb : ndarray, shape (H, W, 3), uint8

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    BadInputError
        If the extension names no image format Pillow writes, or the file cannot be written.
    """
    from PIL import Image

    rgb = _check_image(rgb, "image")
    path = Path(path)
    quality = 95 if path.suffix.lower() in (".jpg", ".jpeg") else None
    image = Image.fromarray(np.ascontiguousarray(rgb))
    try:
        if quality is None:
            image.save(path)
        else:
            image.save(path, quality=quality)
    except ValueError as exc:
        raise BadInputError(f"{path}: cannot write this image format ({exc})") from None
    except OSError as exc:
        raise BadInputError(f"{path}: cannot write file ({exc.strerror or exc})") from None
    return path
