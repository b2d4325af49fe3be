"""A 64-bit perceptual hash of an image's structure, and Hamming distances between such hashes.

A colour histogram cannot tell apart two images of the same colours (grayscale photos,
quadrants of one picture) and drifts when brightness or contrast change; a DCT hash of
the grayscale thumbnail is blind to colour but keeps the coarse layout of light and
dark, and survives brightness, contrast, re-saving and resizing. ``cbir duplicates``
pairs two images when either test passes (see :mod:`search.duplicates`).

The hash is pHash's recipe (the low 8x8 DCT coefficients of a 32x32 grayscale
thumbnail, each bit "above the median"), made from the decoded pixels the index
already holds, with OpenCV. It is stored as a signed 64-bit integer (the bits of the
unsigned hash), so that both SQLite and PostgreSQL keep it in an integer column.
"""

from __future__ import annotations

import cv2
import numpy as np

from cbir.errors import BadInputError

#: Bits of a hash.
HASH_BITS = 64
_SIDE = 32  # thumbnail side
_LOW = 8  # low-frequency block side: _LOW ** 2 == HASH_BITS
#: The hash of an image with no structure to hash (a thumbnail this flat, in gray levels): all bits 0, which a
#: median split never gives otherwise. Solid and nearly solid images of any colour would all hash alike, so
#: the hash test does not apply to them (colour alone decides).
NO_STRUCTURE = 0
FLAT_STD = 2.0
_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def perceptual_hash(rgb: np.ndarray) -> int:
    """The 64-bit DCT hash of an image, as a signed 64-bit integer.

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3) or (H, W), uint8
        Decoded pixels (RGB, or already grayscale).

    Returns
    -------
    int
        In [-2**63, 2**63): the hash's bits, most significant first, read as a signed integer;
        :data:`NO_STRUCTURE` for a (nearly) flat image.

    Raises
    ------
    BadInputError
        If ``rgb`` is not an (H, W, 3) or (H, W) uint8 array with H, W >= 1.
    """
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim not in (2, 3) or (rgb.ndim == 3 and rgb.shape[2] != 3) or 0 in rgb.shape[:2]:
        raise BadInputError(f"expected (H, W, 3) or (H, W) uint8 pixels, got {rgb.shape} {rgb.dtype}")
    gray = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY) if rgb.ndim == 3 else rgb
    # INTER_AREA averages every pixel into the thumbnail (a large image is not merely sampled).
    small = cv2.resize(gray, (_SIDE, _SIDE), interpolation=cv2.INTER_AREA).astype(np.float32)
    if float(small.std()) < FLAT_STD:
        return NO_STRUCTURE
    low = cv2.dct(small)[:_LOW, :_LOW]
    bits = (low > np.median(low)).reshape(-1)
    return int(np.packbits(bits).view(">i8")[0])


def hash_bytes(hashes: np.ndarray) -> np.ndarray:
    """Signed 64-bit hashes (n,) as their bytes (n, 8) uint8, most significant first (FAISS binary codes)."""
    return np.ascontiguousarray(np.asarray(hashes, dtype=np.int64).astype(">i8").view(np.uint8).reshape(-1, 8))


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bits that differ between signed 64-bit hashes, elementwise (broadcasting), as int."""
    x = np.bitwise_xor(np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64))
    return _POPCOUNT[x[..., None].view(np.uint8)].sum(axis=-1, dtype=np.int64)


#: Up to this many hashes the join compares every pair (FAISS binary flat: ~6 s for 100,000 on one core,
#: measured); beyond, a binary IVF index compares each hash with a few lists (near pairs may be missed).
JOIN_EXACT_MAX = 200_000
_JOIN_BATCH = 8192


def near_pairs(hashes: np.ndarray, max_distance: int, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Every pair of rows whose hashes differ in at most ``max_distance`` bits, as (left, right), left < right.

    Parameters
    ----------
    hashes : ndarray, shape (n,), int64
        Signed 64-bit hashes (:func:`perceptual_hash`).
    max_distance : int
        Largest Hamming distance of a pair, 0..64.
    seed : int
        Seed of the IVF training sample (over :data:`JOIN_EXACT_MAX` hashes).

    Returns
    -------
    left, right : ndarray, shape (p,), int64
        Row numbers, sorted by (left, right).

    Raises
    ------
    BadInputError
        If ``max_distance`` is outside 0..64.
    """
    import faiss

    if isinstance(max_distance, bool) or not isinstance(max_distance, (int, np.integer)) or not 0 <= max_distance <= HASH_BITS:
        raise BadInputError(f"Hamming distance must be an integer in 0..{HASH_BITS}, got {max_distance!r}")
    codes = hash_bytes(hashes)
    n = len(codes)
    if n < 2:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    if n <= JOIN_EXACT_MAX:
        index = faiss.IndexBinaryFlat(HASH_BITS)
    else:
        nlist = int(4 * np.sqrt(n))
        index = faiss.IndexBinaryIVF(faiss.IndexBinaryFlat(HASH_BITS), HASH_BITS, nlist)
        sample = np.random.default_rng(seed).choice(n, size=min(n, 64 * nlist), replace=False)
        index.train(codes[np.sort(sample)])
        index.nprobe = 16
    index.add(codes)
    lefts, rights = [], []
    for start in range(0, n, _JOIN_BATCH):
        limits, _, found = index.range_search(codes[start : start + _JOIN_BATCH], int(max_distance) + 1)  # radius is strict
        rows = start + np.repeat(np.arange(len(limits) - 1), np.diff(limits.astype(np.int64)))
        keep = found > rows
        lefts.append(rows[keep])
        rights.append(found[keep].astype(np.int64))
    left, right = np.concatenate(lefts), np.concatenate(rights)
    order = np.lexsort((right, left))
    return left[order], right[order]
