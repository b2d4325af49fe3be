"""Palettes: an image's dominant colors, and the pictures made from them.

``extract``    dominant colors clustered in L*a*b* with their shares (:func:`extract_palette`)
``order``      the orders a palette can be shown in (share, lightness, hue, ..., perceptual shortest path)
``indexed``    the palette of an indexed image, from its stored histogram
``swatches``   swatch strips and proportional bars, set under an image or beside another
``posterize``  every pixel replaced by its nearest palette (or codebook) color
``pixelplot``  the 3-D scatter of an image's pixels, colored by cluster

The palette itself is importable from here (``from cbir.palette import extract_palette``); the pictures from
their modules (``cbir.palette.swatches``, ``cbir.palette.posterize``, ``cbir.palette.pixelplot``), so that
importing the palette does not import them. This package uses the core (color, codebook, histogram, images,
store) and never ``cbir.cli``, ``indexer`` or ``search``.
"""

from cbir.palette.extract import (
    DEFAULT_K,
    DEFAULT_METHOD,
    MAX_K,
    METHODS,
    Palette,
    PaletteColor,
    check_k,
    check_rgb,
    extract_palette,
    grid_subsample,
    sort_palette,
)
from cbir.palette.indexed import area_shares, indexed_palette, palette_from_histogram
from cbir.palette.order import DEFAULT_SORT, SORT_ORDERS, palette_order, path_length

__all__ = [
    "DEFAULT_K",
    "DEFAULT_METHOD",
    "DEFAULT_SORT",
    "MAX_K",
    "METHODS",
    "SORT_ORDERS",
    "Palette",
    "PaletteColor",
    "area_shares",
    "check_k",
    "check_rgb",
    "extract_palette",
    "grid_subsample",
    "indexed_palette",
    "palette_from_histogram",
    "palette_order",
    "path_length",
    "sort_palette",
]
