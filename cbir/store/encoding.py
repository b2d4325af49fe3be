"""How histograms and compact vectors are kept as bytes: pure functions, no SQL.

Histograms are stored sparse: the indices (uint16) and values (float16) of the
non-zero bins, about 3.4 KB for a Wang photo in the default layout instead of 15 KB
dense float32 (which schema-1 indexes hold and which is still read). Compact vectors
are tagged float16 (257 bytes for 128 dimensions; float32 in stores written before),
and a row's search vector slot not augmented yet is a pending slot of the same size.
Nothing is pickled.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cbir.errors import StoreError

_SPARSE = b"\x01"  # 3-byte header (tag, uint16 length): a sparse blob's size is 3 mod 4, a dense one's 0 mod 4


def histogram_to_bytes(histogram: np.ndarray) -> bytes:
    """Sparse encoding: header, uint16 indices and float16 values of the non-zero bins.

    float16 keeps 11 significant bits: distances move by about 1e-4 relative, so
    rankings stay the same up to near-ties (tested). Histograms longer than 65,535
    bins are kept dense float32.
    """
    values = np.asarray(histogram, dtype=np.float32).reshape(-1)
    if len(values) > 0xFFFF:
        return np.ascontiguousarray(values, dtype="<f4").tobytes()
    nonzero = np.flatnonzero(values).astype("<u2")
    return (_SPARSE + len(values).to_bytes(2, "little") + nonzero.tobytes()
            + values[nonzero].astype("<f2").tobytes())


def histogram_from_bytes(blob: bytes) -> np.ndarray:
    """Decode a stored histogram (sparse, or dense float32 as schema 1 wrote it) to float32 (d,)."""
    if len(blob) % 4 == 0:
        return np.frombuffer(blob, dtype="<f4")
    d = int.from_bytes(blob[1:3], "little")
    n = (len(blob) - 3) // 4
    out = np.zeros(d, dtype=np.float32)
    out[np.frombuffer(blob, dtype="<u2", count=n, offset=3)] = np.frombuffer(blob, dtype="<f2", count=n, offset=3 + 2 * n)
    return out


def histograms_from_bytes(blobs: Sequence[bytes], out: np.ndarray | None = None) -> np.ndarray:
    """Decode stored histograms of one length into one float32 (n, d) matrix (``out`` if given, zeroed).

    The sparse ones in one pass: their indices and values are gathered, converted and scattered at once
    (decoding 100,000 one array each and stacking them took 10 s of the near-duplicate self-join; this, about 2 s).
    """
    def length(blob: bytes) -> int:
        return len(blob) // 4 if len(blob) % 4 == 0 else int.from_bytes(blob[1:3], "little")

    if not blobs:
        return np.empty((0, 0), dtype=np.float32) if out is None else out
    d = length(blobs[0])
    out = np.zeros((len(blobs), d), np.float32) if out is None else out
    rows, indices, values = [], [], []
    for row, blob in enumerate(blobs):
        if length(blob) != d:
            raise StoreError(f"stored histograms differ in length ({d} and {length(blob)} bins)")
        if len(blob) % 4 == 0:
            out[row] = np.frombuffer(blob, dtype="<f4")
            continue
        n = (len(blob) - 3) // 4
        rows.append((row, n))
        indices.append(np.frombuffer(blob, dtype="<u2", count=n, offset=3))
        values.append(np.frombuffer(blob, dtype="<f2", count=n, offset=3 + 2 * n))
    if rows:
        at, counts = np.array(rows, dtype=np.int64).T
        flat = np.repeat(at * d, counts) + np.concatenate(indices)
        out.reshape(-1)[flat] = np.concatenate(values)
    return out


def as_stored(histograms: np.ndarray) -> np.ndarray:
    """Histograms (..., d) as the store gives them back (values rounded to float16), float32.

    Queries and vectors are made from this rounding too, so an image identical to a
    stored one is at distance exactly 0 from it under every metric.
    """
    values = np.asarray(histograms, dtype=np.float32)
    if values.shape[-1] > 0xFFFF:
        return values
    return values.astype(np.float16).astype(np.float32)


_HALF = b"\x02"  # tag of a float16 vector; float32 ones (stores written before) have no tag, size 0 mod 4
PENDING = b"\x00"  # tag of an empty search vector slot (not augmented yet), as long as a float16 vector


def vector_to_bytes(vector: np.ndarray) -> bytes:
    """A compact vector (m,) as stored: a tag byte and float16 values, 2m + 1 bytes (odd, so never float32's size).

    The vectors are unit length (:mod:`cbir.projection`): float16's 11 significant bits move L2
    distances by about 1e-4 relative; the accuracy effect is measured in the README.
    """
    return _HALF + np.ascontiguousarray(vector, dtype="<f2").tobytes()


#: Dimensions of the vector slots a row not projected yet is written with (``cbir.projection.DEFAULT_COMPONENTS``):
#: a first index run projects every row at its end, and same-size slots are rewritten in place.
RESERVED_DIMENSIONS = 128


def pending_search_vector(m: int) -> bytes:
    """The search vector slot of an image not augmented yet: as long as :func:`vector_to_bytes` of m values."""
    return PENDING * (2 * int(m) + 1)


def as_stored_vectors(vectors: np.ndarray) -> np.ndarray:
    """Compact vectors (..., m) rounded as the store keeps them, float32: a query projected from a stored
    image's histogram then equals its stored vector exactly."""
    return np.asarray(vectors, dtype=np.float32).astype(np.float16).astype(np.float32)


def is_pending(blob: bytes | None) -> bool:
    """Whether a stored search vector is none yet (NULL, or a pending slot)."""
    return blob is None or (len(blob) % 2 == 1 and blob[:1] == PENDING)


def vectors_from_bytes(blobs: Sequence[bytes]) -> np.ndarray:
    """Stored compact vectors (float16 tagged, or float32 as stores before wrote them; mixed is fine) -> float32 (n, m)."""
    if not blobs:
        return np.empty((0, 0), np.float32)
    size = len(blobs[0])
    if all(len(b) == size for b in blobs):  # one layout (the usual case): decode in one go
        if size % 4 == 0:
            return np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(blobs), -1).copy()
        joined = np.frombuffer(b"".join(blobs), dtype=np.uint8).reshape(len(blobs), size)
        return joined[:, 1:].copy().view("<f2").astype(np.float32)
    return np.stack([_vector_from_bytes(b) for b in blobs])


def _vector_from_bytes(blob: bytes) -> np.ndarray:
    if len(blob) % 4 == 0:
        return np.frombuffer(blob, dtype="<f4").copy()
    return np.frombuffer(blob, dtype="<f2", offset=1).astype(np.float32)
