"""Color conversion (sRGB <-> CIE L*a*b*, D65) and the exact 24-bit quantization table.

L*a*b* is a fixed function of 8-bit sRGB, so the nearest codeword of a pixel is a
function of its 24-bit color alone. :func:`build_lut` evaluates that function once
for all 2**24 colors; quantizing an image is then one table lookup per pixel.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cbir.errors import BadInputError

# D65 reference white, CIE 1931 2-degree observer (as scikit-image and OpenCV use).
_WHITE = np.array([0.95047, 1.0, 1.08883])
_RGB_TO_XYZ = np.array(
    [
        [0.412453, 0.357580, 0.180423],
        [0.212671, 0.715160, 0.072169],
        [0.019334, 0.119193, 0.950227],
    ]
)
_XYZ_TO_RGB = np.linalg.inv(_RGB_TO_XYZ)
_EPS = (6.0 / 29.0) ** 3
_KAPPA = (29.0 / 6.0) ** 2 / 3.0

N_COLORS_24BIT = 1 << 24


def _srgb_to_linear(values: np.ndarray) -> np.ndarray:
    return np.where(values <= 0.04045, values / 12.92, ((values + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb(values: np.ndarray) -> np.ndarray:
    values = np.clip(values, 0.0, 1.0)
    return np.where(values <= 0.0031308, values * 12.92, 1.055 * values ** (1 / 2.4) - 0.055)


def _xyz_to_lab(xyz: np.ndarray) -> np.ndarray:
    f = np.where(xyz > _EPS, np.cbrt(xyz), xyz * _KAPPA + 4.0 / 29.0)
    lab = np.empty_like(f)
    lab[..., 0] = 116.0 * f[..., 1] - 16.0
    lab[..., 1] = 500.0 * (f[..., 0] - f[..., 1])
    lab[..., 2] = 200.0 * (f[..., 1] - f[..., 2])
    return lab


# XYZ/white contribution of each 8-bit value of each channel, shape (3 channels, 256 values, 3 xyz):
# the uint8 path of rgb_to_lab sums three table rows, so the LUT and a direct conversion agree bit for bit.
_CHANNEL_XYZ = np.stack(
    [_srgb_to_linear(np.arange(256) / 255.0)[:, None] * _RGB_TO_XYZ[:, c][None, :] / _WHITE for c in range(3)]
)


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """Convert sRGB colors to CIE L*a*b* (D65).

    Parameters
    ----------
    rgb : ndarray, shape (..., 3)
        uint8 values in 0..255, or floats in 0..1.

    Returns
    -------
    ndarray, shape (..., 3), float64
        L* in 0..100, a* and b* roughly in -128..127.

    Raises
    ------
    BadInputError
        If the last axis is not of length 3.
    """
    rgb = np.asarray(rgb)
    if rgb.shape[-1:] != (3,):
        raise BadInputError(f"expected an array of shape (..., 3), got {rgb.shape}")
    if rgb.dtype == np.uint8:
        xyz = _CHANNEL_XYZ[0][rgb[..., 0]] + _CHANNEL_XYZ[1][rgb[..., 1]] + _CHANNEL_XYZ[2][rgb[..., 2]]
    else:
        xyz = _srgb_to_linear(rgb.astype(np.float64)) @ _RGB_TO_XYZ.T / _WHITE
    return _xyz_to_lab(xyz)


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """Convert CIE L*a*b* (D65) colors to uint8 sRGB, clipping out-of-gamut values.

    Parameters
    ----------
    lab : ndarray, shape (..., 3)

    Returns
    -------
    ndarray, shape (..., 3), uint8
    """
    lab = np.asarray(lab, dtype=np.float64)
    if lab.shape[-1:] != (3,):
        raise BadInputError(f"expected an array of shape (..., 3), got {lab.shape}")
    fy = (lab[..., 0] + 16.0) / 116.0
    f = np.stack([fy + lab[..., 1] / 500.0, fy, fy - lab[..., 2] / 200.0], axis=-1)
    xyz = np.where(f > 6.0 / 29.0, f**3, (f - 4.0 / 29.0) / _KAPPA) * _WHITE
    rgb = _linear_to_srgb(xyz @ _XYZ_TO_RGB.T)
    return np.round(rgb * 255.0).astype(np.uint8)


def pack_rgb(rgb: np.ndarray) -> np.ndarray:
    """Pack uint8 RGB triples (..., 3) into 24-bit integers ``r << 16 | g << 8 | b`` (uint32, shape (...))."""
    rgb = np.asarray(rgb, dtype=np.uint8)
    # Lay the bytes out as little-endian B, G, R, 0 and read them as one uint32 each:
    # one strided copy instead of three widening conversions, shifts and ors.
    quad = np.zeros(rgb.shape[:-1] + (4,), dtype=np.uint8)
    quad[..., 0] = rgb[..., 2]
    quad[..., 1] = rgb[..., 1]
    quad[..., 2] = rgb[..., 0]
    packed = quad.view("<u4")[..., 0]
    return packed


#: Float32 distance gaps (squared L*a*b* units) below which the float64 search decides: over ten times
#: the float32 rounding error of |c|^2 - 2 x.c for L*a*b* values (|x|, |c| < 260).
_FLOAT32_MARGIN = 0.25
#: The same for 24-bit colors converted in float32 too (:meth:`NearestCodeword.of_packed`): L*a*b*
#: values off by up to 3e-4 move a gap by at most 2 * 300 * 3e-4 * 2 = 0.36, plus the product's rounding.
_PACKED_FLOAT32_MARGIN = 1.0
#: L*a*b* = f @ _F_TO_LAB + _F_OFFSET, where f = (f(X/Xn), f(Y/Yn), f(Z/Zn)) is the CIE cube-root function.
_F_TO_LAB = np.array([[0.0, 500.0, 0.0], [116.0, -500.0, 200.0], [0.0, 0.0, -200.0]])
_F_OFFSET = np.array([-16.0, 0.0, 0.0])
# _CHANNEL_XYZ as float32 columns: _XYZ32[channel][xyz] has shape (256,).
_XYZ32 = [[np.ascontiguousarray(_CHANNEL_XYZ[c][:, j], dtype=np.float32) for j in range(3)] for c in range(3)]


def _packed_f32(packed: np.ndarray) -> np.ndarray:
    """The CIE f of X/Xn, Y/Yn, Z/Zn of 24-bit colors and a 1, float32 (n, 4): L*a*b* up to a linear map.

    Three table reads and a cube root per value, each channel plane at a time: about a
    fifth of the time of the float64 conversion, within 3e-4 of it in L*a*b* units.
    """
    packed = packed.astype(np.intp)  # table indices: converted once here, not at every read
    channels = (packed >> 16, (packed >> 8) & 255, packed & 255)
    out = np.ones((len(packed), 4), dtype=np.float32)
    for j in range(3):
        xyz = _XYZ32[0][j][channels[0]]
        xyz += _XYZ32[1][j][channels[1]]
        xyz += _XYZ32[2][j][channels[2]]
        f = np.cbrt(xyz)
        small = xyz <= _EPS
        if small.any():
            f[small] = xyz[small] * np.float32(_KAPPA) + np.float32(4.0 / 29.0)
        out[:, j] = f
    return out


def distinct(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values of a 1-d array (np.unique without its overhead: ~8x faster on 32-bit ints)."""
    ordered = np.sort(values)
    keep = np.empty(len(ordered), dtype=bool)
    keep[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
    return ordered[keep]


class NearestCodeword:
    """Nearest-codeword search in Lab for a fixed codebook (the one rule every table entry follows).

    Small codebooks use a dense distance matrix: float32 first (half the time of
    float64), and wherever the best and second-best distances are closer than
    float32 rounding could blur, float64. Larger codebooks use a k-d tree. The
    result is the exact float64 nearest codeword either way, ties to the lowest index.
    """

    def __init__(self, centers: np.ndarray) -> None:
        self.centers = np.asarray(centers, dtype=np.float64)
        self._dense = len(self.centers) <= 256
        self._squared = (self.centers**2).sum(axis=1)
        centers32 = self.centers.astype(np.float32)
        self._minus_two_t32 = np.ascontiguousarray(-2.0 * centers32.T)
        self._squared32 = (centers32**2).sum(axis=1)
        # |c|^2 - 2 x.c with x = f @ _F_TO_LAB + _F_OFFSET: one product with (f, 1), the bias in its last row.
        self._f_weights = np.vstack([-2.0 * _F_TO_LAB @ self.centers.T, self._squared - 2.0 * self.centers @ _F_OFFSET])
        self._f_weights = np.ascontiguousarray(self._f_weights, dtype=np.float32)
        self._tree = None
        if not self._dense:
            from scipy.spatial import cKDTree  # imported here: only codebooks over 256 colors need it

            self._tree = cKDTree(self.centers)

    def _exact(self, lab: np.ndarray) -> np.ndarray:
        # |x - c|^2 - |x|^2: the argmin is the same, and float64 keeps it exact for Lab's range.
        out = np.empty(len(lab), dtype=np.int64)
        for start in range(0, len(lab), 8192):  # bounded temporary: 8192 x k distances
            out[start : start + 8192] = (self._squared[None, :] - 2.0 * (lab[start : start + 8192] @ self.centers.T)).argmin(axis=1)
        return out

    def __call__(self, lab: np.ndarray) -> np.ndarray:
        """Index of the nearest center for every color (n, 3), shape (n,), int64."""
        lab = np.asarray(lab, dtype=np.float64).reshape(-1, 3)
        if self._tree is not None:
            return np.asarray(self._tree.query(lab, k=1)[1], dtype=np.int64)
        out = np.empty(len(lab), dtype=np.int64)
        if len(self.centers) == 1:
            out[:] = 0
            return out
        for start in range(0, len(lab), 8192):  # bounded temporary: 8192 x k distances
            part = lab[start : start + 8192]
            distances = part.astype(np.float32) @ self._minus_two_t32
            distances += self._squared32
            best, unsure = self._two_best(distances, _FLOAT32_MARGIN)
            if len(unsure):
                best[unsure] = self._exact(part[unsure])
            out[start : start + 8192] = best
        return out

    def of_packed(self, packed: np.ndarray) -> np.ndarray:
        """Index of the nearest center for 24-bit colors ``r << 16 | g << 8 | b`` (n,), shape (n,), int64.

        The same result as ``self(lab)`` with the float64 L*a*b* of the colors, in about a
        third of the time: colors are converted in float32 too, and every color whose
        two best codewords are within :data:`_PACKED_FLOAT32_MARGIN` is decided in float64.
        """
        packed = np.asarray(packed).reshape(-1)
        if self._tree is not None or len(self.centers) == 1:
            return self(_packed_lab(packed))
        out = np.empty(len(packed), dtype=np.int64)
        f = _packed_f32(packed)
        unsure = []
        for start in range(0, len(packed), 1024):  # 1024 x k distances stay in the CPU's cache
            out[start : start + 1024], rows = self._two_best(f[start : start + 1024] @ self._f_weights, _PACKED_FLOAT32_MARGIN)
            unsure.append(rows + start)
        rows = np.concatenate(unsure)
        if len(rows):
            out[rows] = self._exact(_packed_lab(packed[rows]))
        return out

    @staticmethod
    def _two_best(distances: np.ndarray, margin: float) -> tuple[np.ndarray, np.ndarray]:
        """Best column of every row of ``distances`` (overwritten), and the rows whose two best are within ``margin``."""
        rows = np.arange(len(distances))
        best = distances.argmin(axis=1)
        best_distance = distances[rows, best]
        distances[rows, best] = np.inf
        second_distance = distances[rows, distances.argmin(axis=1)]  # argmin is twice as fast as min here
        return best, np.flatnonzero(second_distance - best_distance <= margin)


def nearest_codewords(lab: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Index of the nearest center (Euclidean in Lab) for every color.

    Parameters
    ----------
    lab : ndarray, shape (n, 3)
    centers : ndarray, shape (k, 3)

    Returns
    -------
    ndarray, shape (n,), int64
    """
    return NearestCodeword(centers)(lab)


def _packed_lab(packed: np.ndarray) -> np.ndarray:
    packed = packed.astype(np.int64)
    xyz = _CHANNEL_XYZ[0][packed >> 16] + _CHANNEL_XYZ[1][(packed >> 8) & 255] + _CHANNEL_XYZ[2][packed & 255]
    return _xyz_to_lab(xyz)


def build_lut(centers: np.ndarray, *, chunk: int = 1 << 20) -> np.ndarray:
    """Nearest-codeword table for every 24-bit sRGB color.

    Parameters
    ----------
    centers : ndarray, shape (k, 3)
        Codewords in L*a*b*, 1 <= k <= 65536.

    Returns
    -------
    ndarray, shape (2**24,)
        uint8 when k <= 256, else uint16; ``lut[r << 16 | g << 8 | b]`` is the code.
    """
    centers = np.asarray(centers, dtype=np.float64)
    if centers.ndim != 2 or centers.shape[1] != 3 or not 1 <= len(centers) <= 65536:
        raise BadInputError(f"expected codewords of shape (k, 3), 1 <= k <= 65536, got {centers.shape}")
    dtype = np.uint8 if len(centers) <= 256 else np.uint16
    lut = np.empty(N_COLORS_24BIT, dtype=dtype)
    nearest = NearestCodeword(centers)
    for start in range(0, N_COLORS_24BIT, chunk):
        stop = min(start + chunk, N_COLORS_24BIT)
        lut[start:stop] = nearest(_packed_lab(np.arange(start, stop)))
    return lut


def quantize(rgb: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """Codes of an RGB image through a table from :func:`build_lut`.

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3), uint8

    Returns
    -------
    ndarray, shape (H, W), the table's dtype
    """
    return np.take(lut, pack_rgb(rgb))


class QuantizationTable:
    """The 24-bit table of :func:`build_lut`, filled lazily: each color is looked up once, when first seen.

    An image needs only its own colors, so a query costs milliseconds instead of
    the seconds a full table takes, and an indexing worker fills in what its share
    of the collection uses. Entries are computed exactly as :func:`build_lut`
    computes them.

    Parameters
    ----------
    centers : ndarray, shape (k, 3)
        Codewords in L*a*b*, 1 <= k < 65535.
    buffer : writable buffer, optional
        Memory for the table (e.g. shared between processes, prepared with
        :meth:`fresh_buffer`); concurrent fillers only ever write the same values.
    """

    def __init__(self, centers: np.ndarray, *, buffer: Any = None) -> None:
        centers = np.asarray(centers, dtype=np.float64)
        if centers.ndim != 2 or centers.shape[1] != 3 or not 1 <= len(centers) < 65535:
            raise BadInputError(f"expected codewords of shape (k, 3), 1 <= k < 65535, got {centers.shape}")
        dtype = self.dtype_for(len(centers))
        # The largest value of the dtype marks "not looked up yet".
        self._missing = np.iinfo(dtype).max
        if buffer is None:
            self._table = np.full(N_COLORS_24BIT, self._missing, dtype=dtype)
        else:  # shared with other processes, already filled with the marker by its owner
            self._table = np.frombuffer(buffer, dtype=dtype, count=N_COLORS_24BIT)
        self._nearest = NearestCodeword(centers)

    @staticmethod
    def dtype_for(n_colors: int) -> type[np.unsignedinteger]:
        """Entry type of the table for a codebook size (one value is kept as the "unknown" marker)."""
        return np.uint8 if n_colors < 255 else np.uint16

    @classmethod
    def fresh_buffer(cls, buffer: Any, n_colors: int) -> None:
        """Mark every entry of a (shared) buffer as not looked up, for a codebook of ``n_colors``."""
        dtype = cls.dtype_for(n_colors)
        np.frombuffer(buffer, dtype=dtype, count=N_COLORS_24BIT)[:] = np.iinfo(dtype).max

    def quantize(self, rgb: np.ndarray) -> np.ndarray:
        """Codes of a uint8 RGB image (H, W, 3), shape (H, W)."""
        return self.quantize_many([rgb])[0]

    def quantize_many(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """Codes of several uint8 RGB images (H, W, 3), each of shape (H, W).

        The colors none of them has shown before are looked up together, once each:
        near-duplicates share most of theirs, and a batch pays the fixed costs once.
        """
        packed = [pack_rgb(rgb) for rgb in images]
        codes = [np.take(self._table, p) for p in packed]
        missing = [c == self._missing for c in codes]
        new = [p[m] for p, m in zip(packed, missing) if m.any()]
        if new:
            colors = distinct(np.concatenate(new))
            self._table[colors] = self._nearest.of_packed(colors)
            for p, c, m in zip(packed, codes, missing):
                c[m] = self._table[p[m]]
        return codes
