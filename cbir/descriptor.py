"""Image -> histogram: the one extraction pipeline shared by indexing and querying."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from cbir.codebook import Codebook
from cbir.color import nearest_codewords, rgb_to_lab
from cbir.color_query import check_colors
from cbir.errors import BadInputError
from cbir.histogram import histogram, n_regions, parse_layout, region_weights
from cbir.images import DEFAULT_MAX_PIXELS, DEFAULT_MAX_SIDE, DecodedImage, decode_image, read_bytes
from cbir.perceptual import perceptual_hash


@dataclass(frozen=True)
class Extracted:
    """The histogram of one file and what was read with it."""

    histogram: np.ndarray
    width: int
    height: int
    content_hash: str
    #: With ``of_bytes(..., shares=True)``: every codeword's share of the analysed pixels, shape (k,).
    shares: np.ndarray | None = None
    #: Perceptual hash of the decoded pixels (:func:`cbir.perceptual.perceptual_hash`).
    phash: int | None = None


def content_hash(data: bytes) -> str:
    """Hash of a file's bytes (BLAKE2b-128, hex): recognizes moved files and in-place edits."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


@dataclass
class Descriptor:
    """Codebook + spatial layout + analysis resolution: how an image becomes a histogram.

    Parameters
    ----------
    codebook : Codebook
    layout : str
        See :mod:`cbir.histogram`.
    max_side : int
        Longer side of the analysed pixels.
    max_pixels : int
        Files with more pixels are refused before decoding.
    """

    codebook: Codebook
    layout: str = "global"
    max_side: int = DEFAULT_MAX_SIDE
    max_pixels: int = DEFAULT_MAX_PIXELS

    def __post_init__(self) -> None:
        parse_layout(self.layout)

    @property
    def dim(self) -> int:
        """Length of a histogram."""
        return n_regions(self.layout) * self.codebook.n_colors

    @staticmethod
    def _checked(rgb: np.ndarray) -> np.ndarray:
        rgb = np.asarray(rgb)
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8 or rgb.size == 0:
            raise BadInputError(f"expected a uint8 RGB image of shape (H, W, 3), got {rgb.dtype} {rgb.shape}")
        return rgb

    def of_rgb(self, rgb: np.ndarray) -> np.ndarray:
        """Histogram of a uint8 RGB array (H, W, 3), shape (dim,) float32."""
        return histogram(self.codebook.quantize(self._checked(rgb)), self.codebook.n_colors, layout=self.layout)

    def decode(self, data: bytes, *, path: object = "<bytes>") -> DecodedImage:
        """Decode encoded image bytes at this descriptor's resolution (see :func:`cbir.images.decode_image`)."""
        return decode_image(data, path=path, max_side=self.max_side, max_pixels=self.max_pixels)

    def _codes(self, data: bytes, path: object) -> tuple[DecodedImage, np.ndarray]:
        decoded = self.decode(data, path=path)
        return decoded, self.codebook.quantize(self._checked(decoded.rgb))

    def of_decoded_many(self, images: list[DecodedImage]) -> list[np.ndarray]:
        """Histograms of decoded images, their new colors looked up together (see :meth:`Codebook.quantize_many`)."""
        codes = self.codebook.quantize_many([self._checked(image.rgb) for image in images])
        return [histogram(c, self.codebook.n_colors, layout=self.layout) for c in codes]

    def _shares(self, codes: np.ndarray) -> np.ndarray:
        return np.bincount(codes.reshape(-1), minlength=self.codebook.n_colors)[: self.codebook.n_colors] / codes.size

    def of_bytes(self, data: bytes, *, path: object = "<bytes>", shares: bool = False, digest: str | None = None) -> Extracted:
        """Decode encoded image bytes and describe them.

        With ``shares``, also every codeword's share of the pixels (see :meth:`shares_of_file`).
        ``digest``: the bytes' :func:`content_hash`, when the caller has it already.

        Raises
        ------
        BadImageError
            If the bytes are not a readable image or are over the pixel limit.
        """
        decoded, codes = self._codes(data, path)
        histogram_ = histogram(codes, self.codebook.n_colors, layout=self.layout)
        found = self._shares(codes) if shares else None
        return Extracted(histogram_, decoded.width, decoded.height, digest or content_hash(data), found,
                         perceptual_hash(decoded.rgb))

    def of_file(self, path: str | os.PathLike[str]) -> Extracted:
        """Read, decode and describe an image file (see :meth:`of_bytes`)."""
        return self.of_bytes(read_bytes(path), path=path)

    def shares_of_file(self, path: str | os.PathLike[str]) -> np.ndarray:
        """Every codeword's share of an image file's analysed pixels, shape (k,), sums to 1.

        The image's color distribution by area, which a layout of pixel-class blocks (the
        default) does not keep and palettes need; no histogram or content hash is made.

        Raises
        ------
        BadImageError
            If the file cannot be read or decoded.
        """
        return self._shares(self._codes(read_bytes(path), path)[1])

    def of_colors(self, colors: Iterable[tuple[Sequence[int], float]]) -> np.ndarray:
        """Histogram of a query by colors (QBIC-style): a few sRGB colors with weights.

        Each color gives its normalized weight to its nearest codeword in L*a*b*
        (the code a pixel of that color gets); every region block of a spatial
        layout holds the same distribution times the region's weight.

        Parameters
        ----------
        colors : iterable of ((r, g, b), weight)
            Up to :data:`cbir.color_query.MAX_QUERY_COLORS` uint8 colors with weights > 0.

        Returns
        -------
        ndarray, shape (dim,), float32
            Sums to 1, like the histogram of an image.

        Raises
        ------
        BadInputError
            If the query is empty, too long, or an item has a bad color or weight.
        """
        checked = check_colors(colors)
        rgb = np.array([color for color, _ in checked], dtype=np.uint8)
        weights = np.array([weight for _, weight in checked], dtype=np.float64)
        codes = nearest_codewords(rgb_to_lab(rgb), self.codebook.centers)
        distribution = np.bincount(codes, weights=weights / weights.sum(), minlength=self.codebook.n_colors)
        blocks = region_weights(self.layout)[:, None] * distribution[None, :]
        return blocks.reshape(-1).astype(np.float32)
