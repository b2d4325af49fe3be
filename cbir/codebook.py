"""The global color codebook: k-means over L*a*b* pixels sampled from a corpus."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cbir.color import N_COLORS_24BIT, QuantizationTable, pack_rgb, rgb_to_lab
from cbir.errors import BadInputError

MIN_COLORS = 16
MAX_COLORS = 1024
DEFAULT_N_COLORS = 128
#: Pixels taken from each sampled image, and at most this many in all.
PIXELS_PER_IMAGE = 1000
MAX_SAMPLE_PIXELS = 400_000
#: Images decoded to learn the codebook (a seeded random subset of larger corpora).
MAX_SAMPLE_IMAGES = 400
#: k-means: Lloyd iterations, and at most this many sampled pixels per codeword in them.
KMEANS_ITERATIONS = 25
KMEANS_POINTS_PER_CENTER = 1000


@dataclass
class Codebook:
    """Codewords in L*a*b* and the parameters that made them.

    Attributes
    ----------
    centers : ndarray, shape (k, 3), float32
        Codewords in L*a*b*; the code of a color is the index of its nearest codeword.
    params : dict
        How it was learned (seed, sample sizes, requested size), kept for the record.
    """

    centers: np.ndarray
    params: dict = field(default_factory=dict)
    _table: QuantizationTable | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.centers = np.ascontiguousarray(self.centers, dtype=np.float32)
        if self.centers.ndim != 2 or self.centers.shape[1] != 3 or len(self.centers) < 1:
            raise BadInputError(f"codebook centers must have shape (k, 3), got {self.centers.shape}")

    @property
    def n_colors(self) -> int:
        """Number of codewords."""
        return len(self.centers)

    @property
    def fingerprint(self) -> str:
        """A short hash of the codewords: equal fingerprints, interchangeable histograms."""
        return hashlib.sha256(self.centers.tobytes()).hexdigest()[:16]

    def use_table_buffer(self, buffer: Any) -> None:
        """Quantize through a table in ``buffer`` (shared memory prepared by :meth:`QuantizationTable.fresh_buffer`)."""
        self._table = QuantizationTable(self.centers, buffer=buffer)

    def quantize(self, rgb: np.ndarray) -> np.ndarray:
        """Code of every pixel of a uint8 RGB image (H, W, 3): its nearest codeword in Lab, shape (H, W).

        Goes through a 24-bit table filled as colors are met (see
        :class:`cbir.color.QuantizationTable`), so the cost is one lookup per pixel
        once the image's colors have been seen.
        """
        return self.quantize_many([rgb])[0]

    def quantize_many(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """Codes of several uint8 RGB images, their new colors looked up once, together (see :meth:`quantize`)."""
        if self._table is None:
            self._table = QuantizationTable(self.centers)
        return self._table.quantize_many(images)

    def rgb_centers(self) -> np.ndarray:
        """Codewords as uint8 sRGB, shape (k, 3)."""
        from cbir.color import lab_to_rgb

        return lab_to_rgb(self.centers)

    def params_json(self) -> str:
        return json.dumps(self.params, sort_keys=True)


def sample_pixels(rgb: np.ndarray, n: int, *, seed: int, index: int) -> np.ndarray:
    """Up to ``n`` pixels of an (H, W, 3) image, drawn without replacement, shape (m, 3).

    The draw depends only on ``(seed, index)``, so images sampled in any order or
    process give the same pixels.
    """
    flat = rgb.reshape(-1, 3)
    if len(flat) <= n:
        return flat
    rng = np.random.default_rng([seed, index])
    return flat[rng.choice(len(flat), size=n, replace=False)]


def learn_codebook(
    images: Iterable[np.ndarray],
    *,
    n_colors: int = DEFAULT_N_COLORS,
    seed: int = 0,
    pixels_per_image: int = PIXELS_PER_IMAGE,
) -> tuple[Codebook, str | None]:
    """Learn a codebook with k-means over L*a*b* pixels sampled from ``images``.

    Parameters
    ----------
    images : iterable of ndarray (H, W, 3) uint8
        The sample of the corpus, in a fixed order (the result depends on it).
    n_colors : int
        Codebook size, 16..1024.
    seed : int
        Seeds pixel sampling and k-means; the same inputs and seed give the same codebook.
    pixels_per_image : int
        Pixels drawn from each image (at most :data:`MAX_SAMPLE_PIXELS` in all).

    Returns
    -------
    codebook : Codebook
    note : str or None
        A message when the corpus has fewer distinct colors than ``n_colors``.

    Raises
    ------
    BadInputError
        If ``n_colors`` is out of range or no pixels were given.
    """
    samples: list[np.ndarray] = []
    for index, rgb in enumerate(images):
        if len(samples) * pixels_per_image >= MAX_SAMPLE_PIXELS:
            break
        samples.append(sample_pixels(rgb, pixels_per_image, seed=seed, index=index))
    return codebook_from_pixels(samples, n_colors=n_colors, seed=seed, pixels_per_image=pixels_per_image)


def codebook_from_pixels(
    samples: Iterable[np.ndarray], *, n_colors: int = DEFAULT_N_COLORS, seed: int = 0, pixels_per_image: int = PIXELS_PER_IMAGE
) -> tuple[Codebook, str | None]:
    """Learn a codebook from pixel samples (m_i, 3) uint8 RGB; see :func:`learn_codebook`."""
    if not MIN_COLORS <= n_colors <= MAX_COLORS:
        raise BadInputError(f"--colors must be between {MIN_COLORS} and {MAX_COLORS}, got {n_colors}")
    chunks = [np.asarray(chunk, dtype=np.uint8).reshape(-1, 3) for chunk in samples]
    if not chunks or not sum(map(len, chunks)):
        raise BadInputError("no readable images to learn a color codebook from")
    pixels = np.concatenate(chunks)
    seen = np.zeros(N_COLORS_24BIT, dtype=bool)  # 16 MB, and no sort of the sample as np.unique would do
    seen[pack_rgb(pixels)] = True
    distinct = np.flatnonzero(seen)
    note = None
    params = {
        "requested_colors": n_colors,
        "seed": seed,
        "sample_pixels": len(pixels),
        "pixels_per_image": pixels_per_image,
        "algorithm": "k-means/Lab (FAISS)",
        "iterations": KMEANS_ITERATIONS,
    }
    if len(distinct) <= n_colors:
        note = (
            f"the images have only {len(distinct)} distinct colors; "
            f"the codebook has {len(distinct)} colors instead of {n_colors}"
        )
        rgb = np.stack([(distinct >> 16) & 255, (distinct >> 8) & 255, distinct & 255], axis=1).astype(np.uint8)
        centers = rgb_to_lab(rgb)
    else:
        # Imported here: FAISS costs a tenth of a second, needed only when a codebook is learned.
        from cbir.kmeans import kmeans

        # Every sampled pixel is a point, so common colors weigh as much as they cover.
        centers = kmeans(
            rgb_to_lab(pixels), n_colors, seed=seed, iterations=KMEANS_ITERATIONS, points_per_center=KMEANS_POINTS_PER_CENTER
        ).astype(np.float64)
    # Canonical order (by L*, then a*, b*) so equal codebooks have equal fingerprints.
    order = np.lexsort((centers[:, 2], centers[:, 1], centers[:, 0]))
    return Codebook(centers=centers[order], params=params), note
