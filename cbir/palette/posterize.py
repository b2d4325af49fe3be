"""Posterized images: every pixel replaced by the color of its cluster (nearest center in L*a*b*).

The clusters are an image's own palette (:func:`posterize`) or an index's global
codebook (:func:`posterize_with_codebook`, what the search engine "sees"). Either
way the assignment is exact nearest-center in Lab and costs about one table
lookup per pixel: only the 24-bit colors present in the image are converted to
Lab and assigned, then every pixel is looked up by its packed color.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from cbir.codebook import Codebook
from cbir.color import N_COLORS_24BIT, nearest_codewords, pack_rgb, rgb_to_lab
from cbir.errors import BadInputError, StoreError
from cbir.palette.extract import DEFAULT_METHOD, Palette, check_k, check_rgb, extract_palette

if TYPE_CHECKING:
    from cbir.store import Store

DEFAULT_K = 16


@dataclass(frozen=True)
class Posterized:
    """A posterized image and the palette it was drawn with.

    Attributes
    ----------
    rgb : ndarray, shape (H, W, 3), uint8
        Same size as the input, at most ``len(palette)`` distinct colors.
    palette : Palette
        The cluster colors, largest share first.
    """

    rgb: np.ndarray
    palette: Palette


def assign_to_centers(rgb: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Index of the nearest center (Euclidean in Lab, ties to the lowest index) of every pixel.

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3), uint8
    centers : ndarray, shape (k, 3)
        Centers in L*a*b*, 1 <= k <= 256.

    Returns
    -------
    ndarray, shape (H, W), uint8

    Raises
    ------
    BadInputError
        If the image is not uint8 RGB or the centers are not (k, 3) with 1 <= k <= 256.
    """
    rgb = check_rgb(rgb)
    centers = np.asarray(centers, dtype=np.float64)
    if centers.ndim != 2 or centers.shape[1] != 3 or not 1 <= len(centers) <= 256:
        raise BadInputError(f"expected centers of shape (k, 3), 1 <= k <= 256, got {centers.shape}")
    packed = pack_rgb(rgb)
    # A table over all 2**24 colors, filled only where the image has pixels: exact, and
    # linear in the pixel count (the untouched pages of np.zeros are never allocated).
    present = np.zeros(N_COLORS_24BIT, dtype=bool)
    present[packed.reshape(-1)] = True
    colors = np.flatnonzero(present)
    del present
    table = np.zeros(N_COLORS_24BIT, dtype=np.uint8)
    colors_rgb = np.stack([(colors >> 16) & 255, (colors >> 8) & 255, colors & 255], axis=-1).astype(np.uint8)
    table[colors] = nearest_codewords(rgb_to_lab(colors_rgb), centers)
    return table[packed]


def posterize(
    rgb: np.ndarray,
    *,
    k: int = DEFAULT_K,
    method: str = DEFAULT_METHOD,
    seed: int = 0,
) -> Posterized:
    """Replace every pixel by the color of its cluster among the image's ``k`` dominant colors.

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3), uint8
    k : int
        Number of colors, 1..256.
    method : {"minibatch", "kmeans", "agglomerative"}
        How the palette is clustered (see :func:`cbir.palette.extract_palette`).
    seed : int

    Returns
    -------
    Posterized
        The image (same size, at most ``k`` distinct colors) and its palette; the
        palette's ``note`` is set when the image has fewer than ``k`` distinct colors.

    Raises
    ------
    BadInputError
        If the image, ``k`` or ``method`` is invalid.
    """
    rgb = check_rgb(rgb)
    k = check_k(k)
    palette = extract_palette(rgb, k=k, method=method, seed=seed)
    codes = assign_to_centers(rgb, palette.lab)
    return Posterized(rgb=palette.rgb[codes], palette=palette)


def posterize_with_codebook(rgb: np.ndarray, codebook: Codebook) -> np.ndarray:
    """Replace every pixel by the color of its codeword in an index's codebook.

    Uses the codebook's 24-bit table (attach the cached table first, e.g. with
    :func:`index_codebook`, or it is built, about 3 s).

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3), uint8
    codebook : Codebook

    Returns
    -------
    ndarray, shape (H, W, 3), uint8
        Every color is one of ``codebook.rgb_centers()``.

    Raises
    ------
    BadInputError
        If the image is not uint8 RGB.
    """
    rgb = check_rgb(rgb)
    return codebook.rgb_centers()[codebook.quantize(rgb)]


def index_codebook(store: Store) -> Codebook:
    """The global codebook of an index (it quantizes through its lazily filled 24-bit table).

    Raises
    ------
    StoreError
        If nothing has been indexed yet.
    """
    found = store.codebook()
    if found is None:
        raise StoreError(f"{store.display} has no codebook yet; run 'cbir index FOLDER --db {store.display}' first")
    return found[1]
