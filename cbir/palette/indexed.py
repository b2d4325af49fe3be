"""The palette of an indexed image, from its stored histogram, without decoding the file again.

A palette color as a dict (what ``cbir palette --json`` prints, the HTTP API serves and these functions
return)::

    {"hex": "#dc1e1e", "rgb": [220, 30, 30], "lab": [48.2, 68.9, 50.1], "proportion": 0.42}
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from cbir.codebook import Codebook
from cbir.color import lab_to_rgb
from cbir.errors import BadInputError, CodebookMismatchError, StoreError
from cbir.histogram import dominant_colors
from cbir.palette.extract import PaletteColor, check_k
from cbir.palette.order import DEFAULT_SORT, check_sort, palette_order

if TYPE_CHECKING:
    from cbir.store import Store


def palette_from_histogram(
    histogram: np.ndarray,
    codebook: Codebook,
    *,
    k: int = 8,
    sort: str = DEFAULT_SORT,
    layout: str | None = None,
) -> list[dict]:
    """The palette of an indexed image, from its stored histogram (no decoding).

    Spatial blocks are summed into one global distribution, the ``k`` codewords with
    the largest shares are kept and their shares renormalized to sum to 1.

    Parameters
    ----------
    histogram : ndarray, shape (n_regions * n_colors,)
        A histogram made with ``codebook`` (any spatial layout).
    codebook : Codebook
        The index's codebook.
    k : int
        Most colors to return, 1..256.
    sort : str
        One of :data:`cbir.palette.order.SORT_ORDERS`.
    layout : str, optional
        The histogram's spatial layout; with it, pixel-class blocks (``bic``) are not
        mistaken for shares of the image (see :func:`cbir.histogram.global_distribution`).

    Returns
    -------
    list of dict
        ``{"hex": "#rrggbb", "rgb": [r, g, b], "lab": [L, a, b], "proportion": p}`` per color,
        the shape ``cbir palette --json`` prints; fewer than ``k`` when fewer codewords occur.

    Raises
    ------
    CodebookMismatchError
        If the histogram's length is not a multiple of the codebook size.
    BadInputError
        If ``k`` or ``sort`` is invalid, or the histogram is empty.
    """
    k = check_k(k)
    check_sort(sort)
    values = np.asarray(histogram, dtype=np.float64).reshape(-1)
    n_colors = codebook.n_colors
    if values.size == 0 or values.size % n_colors:
        raise CodebookMismatchError(
            f"a histogram of length {values.size} was not made with this {n_colors}-color codebook"
        )
    top = dominant_colors(values, n_colors, top=k, layout=layout)
    if not top:
        raise BadInputError("the histogram is empty (all zeros)")
    codes = np.array([code for code, _ in top], dtype=np.int64)
    shares = np.array([share for _, share in top], dtype=np.float64)
    shares /= shares.sum()
    centers = codebook.centers[codes].astype(np.float64)
    rgb = lab_to_rgb(centers)
    colors = [
        PaletteColor(
            lab=(float(centers[i, 0]), float(centers[i, 1]), float(centers[i, 2])),
            rgb=(int(rgb[i, 0]), int(rgb[i, 1]), int(rgb[i, 2])),
            proportion=float(shares[i]),
        )
        for i in palette_order(centers, shares, sort)
    ]
    return [color.to_dict() for color in colors]


def indexed_palette(store: Store, image_id: int, *, k: int = 8, sort: str = DEFAULT_SORT) -> list[dict]:
    """The palette of the image stored under ``image_id`` (see :func:`palette_from_histogram`).

    Parameters
    ----------
    store : cbir.store.Store
        An open index.
    image_id : int
        The image's row id (``Result.id`` of a search).

    Raises
    ------
    StoreError
        If the index has no codebook or no image with that id.
    """
    found = store.codebook()
    if found is None:
        raise StoreError(f"{store.display} has no images indexed yet")
    row = store.image(int(image_id))
    if row is None:
        raise StoreError(f"{store.display} has no image with id {image_id}")
    shares = area_shares(row.path, found[1], found[2])
    if shares is not None:
        return palette_from_histogram(shares, found[1], k=k, sort=sort)
    from cbir.store import histogram_from_bytes

    return palette_from_histogram(histogram_from_bytes(row.histogram), found[1], k=k, sort=sort, layout=found[2])


def area_shares(path: str, codebook: Codebook, layout: str) -> np.ndarray | None:
    """Every codeword's share of an indexed image's pixels, read again from its file, when the index's
    layout does not keep them (pixel-class blocks only, as the default); None when it does, or when the
    file can no longer be read (then the stored blocks give an estimate)."""
    from cbir.descriptor import Descriptor
    from cbir.errors import BadImageError
    from cbir.histogram import keeps_areas
    from cbir.images import DEFAULT_MAX_SIDE

    if keeps_areas(layout):
        return None
    descriptor = Descriptor(codebook, layout=layout, max_side=int(codebook.params.get("max_side", DEFAULT_MAX_SIDE)))
    try:
        return descriptor.shares_of_file(path)
    except BadImageError:
        return None
