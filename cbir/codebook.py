"""The global color codebook: k-means over L*a*b* pixels sampled from a corpus."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from cbir.color import QuantizationTable, rgb_to_lab
from cbir.errors import BadInputError

MIN_COLORS = 16
MAX_COLORS = 1024
DEFAULT_N_COLORS = 128
#: Pixels taken from each sampled image, and at most this many in all.
PIXELS_PER_IMAGE = 2000
MAX_SAMPLE_PIXELS = 400_000
#: Images decoded to learn the codebook (a seeded random subset of larger corpora).
MAX_SAMPLE_IMAGES = 400


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
        return int(len(self.centers))

    @property
    def fingerprint(self) -> str:
        """A short hash of the codewords: equal fingerprints, interchangeable histograms."""
        return hashlib.sha256(self.centers.tobytes()).hexdigest()[:16]

    def quantize(self, rgb: np.ndarray) -> np.ndarray:
        """Code of every pixel of a uint8 RGB image (H, W, 3): its nearest codeword in Lab, shape (H, W).

        Goes through a 24-bit table filled as colors are met (see
        :class:`cbir.color.QuantizationTable`), so the cost is one lookup per pixel
        once the image's colors have been seen.
        """
        if self._table is None:
            self._table = QuantizationTable(self.centers)
        return self._table.quantize(rgb)

    def rgb_centers(self) -> np.ndarray:
        """Codewords as uint8 sRGB, shape (k, 3)."""
        from cbir.color import lab_to_rgb

        return lab_to_rgb(self.centers)

    def params_json(self) -> str:
        return json.dumps(self.params, sort_keys=True)


def sample_pixels(rgb: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Up to ``n`` pixels drawn without replacement from an (H, W, 3) image, shape (m, 3)."""
    flat = rgb.reshape(-1, 3)
    if len(flat) <= n:
        return flat
    return flat[rng.choice(len(flat), size=n, replace=False)]


def learn_codebook(
    images: Iterable[np.ndarray],
    *,
    n_colors: int = DEFAULT_N_COLORS,
    seed: int = 0,
    pixels_per_image: int = PIXELS_PER_IMAGE,
    max_pixels: int = MAX_SAMPLE_PIXELS,
) -> tuple[Codebook, str | None]:
    """Learn a codebook with MiniBatchKMeans over L*a*b* pixels sampled from ``images``.

    Parameters
    ----------
    images : iterable of ndarray (H, W, 3) uint8
        The sample of the corpus, in a fixed order (the result depends on it).
    n_colors : int
        Codebook size, 16..1024.
    seed : int
        Seeds pixel sampling and k-means; the same inputs and seed give the same codebook.

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
    if not MIN_COLORS <= n_colors <= MAX_COLORS:
        raise BadInputError(f"--colors must be between {MIN_COLORS} and {MAX_COLORS}, got {n_colors}")
    rng = np.random.default_rng(seed)
    chunks = []
    total = 0
    for rgb in images:
        if total >= max_pixels:
            break
        chunk = sample_pixels(rgb, min(pixels_per_image, max_pixels - total), rng)
        chunks.append(chunk)
        total += len(chunk)
    if not chunks:
        raise BadInputError("no readable images to learn a color codebook from")
    pixels = np.concatenate(chunks)
    distinct, counts = np.unique(pixels, axis=0, return_counts=True)
    note = None
    params = {
        "requested_colors": n_colors,
        "seed": seed,
        "sample_pixels": int(len(pixels)),
        "pixels_per_image": pixels_per_image,
        "algorithm": "MiniBatchKMeans/Lab",
    }
    if len(distinct) <= n_colors:
        note = (
            f"the images have only {len(distinct)} distinct colors; "
            f"the codebook has {len(distinct)} colors instead of {n_colors}"
        )
        centers = rgb_to_lab(distinct)
    else:
        from sklearn.cluster import MiniBatchKMeans  # imported here: worker processes never need it

        kmeans = MiniBatchKMeans(
            n_clusters=n_colors,
            random_state=seed,
            batch_size=4096,
            n_init=3,
            max_iter=200,
        )
        kmeans.fit(rgb_to_lab(distinct), sample_weight=counts.astype(np.float64))
        centers = kmeans.cluster_centers_
    # Canonical order (by L*, then a*, b*) so equal codebooks have equal fingerprints.
    order = np.lexsort((centers[:, 2], centers[:, 1], centers[:, 0]))
    return Codebook(centers=centers[order], params=params), note
