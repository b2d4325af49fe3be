"""Exact distances of candidate pairs and of groups' distance matrices, for :mod:`search.duplicates`.

The self-join confirms every candidate pair (about 2k per image) with the exact metric. Rows
are prepared (softened, for chi2-soft) once per call and kept as float32 while they fit
(:func:`prepared_once`); chi2 and chi2-soft then compare pairs of prepared rows a few dozen
at a time (:func:`chi2_pairs`), so every temporary stays in the CPU cache: the values are
those of :func:`cbir.distances.paired_parts`'s compare, bit for bit, about six times faster
than comparing blocks of 4,096 pairs in float64 (README, "Near-duplicates").
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np

from cbir.distances import _chi2_rows

Paired = Callable[[np.ndarray, np.ndarray], np.ndarray]
Parts = tuple[Callable[[np.ndarray], np.ndarray], Paired]
#: Row pairs per exact-distance block (the general path).
_PAIRS = 4096
#: Row pairs per block of :func:`chi2_pairs`: two float32 and two float64 blocks of the default
#: 3,840-bin histograms stay within a few MB (measured: 32 pairs 6.5x faster than 4,096 in float64).
_CHI2_PAIRS = 32
#: Largest float32 matrix of prepared (softened) rows kept for a self-join (2 GB: 130,000 default histograms).
PREPARE_ALL_BYTES = 2 << 30
_TINY = np.finfo(np.float64).tiny
#: Threads that share out the exact distances of many pairs (at least :data:`_THREADED_PAIRS` in one call).
#: A near-duplicate pass is a batch job, so it may take the second core when that one is free (not measured:
#: the README's runs had both cores busy, where it gained nothing and cost nothing measurable). 1: one thread.
THREADS = min(2, os.cpu_count() or 1)
_THREADED_PAIRS = 4096


def _as_float64(rows: np.ndarray) -> np.ndarray:
    return rows.astype(np.float64)


def chi2_pairs(rows: np.ndarray, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Chi-squared distance of each row pair ``(rows[left[i]], rows[right[i]])``, computed in float64.

    The same values as :func:`cbir.distances._chi2_rows` on the rows cast to float64, bit for bit
    (the same element-wise steps and the same row sums), without the float64 copies of whole blocks.
    Many pairs are shared out between :data:`THREADS` threads (NumPy releases the GIL): each pair's
    value does not depend on which thread measures it.
    """
    out = np.empty(len(left))
    if THREADS < 2 or len(left) < _THREADED_PAIRS:
        _chi2_into(out, rows, left, right, 0, len(left))
        return out
    from concurrent.futures import ThreadPoolExecutor

    bounds = np.linspace(0, len(left), THREADS + 1).astype(int)
    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(lambda start, end: _chi2_into(out, rows, left, right, start, end), bounds[:-1], bounds[1:]))
    return out


def _chi2_into(out: np.ndarray, rows: np.ndarray, left: np.ndarray, right: np.ndarray, start: int, end: int) -> None:
    for at in range(start, end, _CHI2_PAIRS):
        stop = min(at + _CHI2_PAIRS, end)
        a, b = rows[left[at:stop]], rows[right[at:stop]]
        terms = np.subtract(a, b, dtype=np.float64)
        terms *= terms
        total = np.add(a, b, dtype=np.float64)
        np.maximum(total, _TINY, out=total)  # 0/0 -> 0, as in chi2
        terms /= total
        out[at:stop] = 0.5 * terms.sum(axis=1)


class KnownPairs:
    """Distances of row pairs measured already, looked up by (smaller, larger) position."""

    def __init__(self, n: int, left: np.ndarray, right: np.ndarray, distances: np.ndarray) -> None:
        keys = np.minimum(left, right).astype(np.int64) * n + np.maximum(left, right)
        order = np.argsort(keys, kind="stable")
        self.n, self.keys, self.distances = n, keys[order], np.asarray(distances, np.float64)[order]

    def find(self, left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(distances, missing): each pair's known distance, and where there is none (its distance left unset)."""
        keys = np.minimum(left, right).astype(np.int64) * self.n + np.maximum(left, right)
        at = np.minimum(np.searchsorted(self.keys, keys), max(len(self.keys) - 1, 0))
        found = self.keys[at] == keys if len(self.keys) else np.zeros(len(keys), bool)
        values = np.empty(len(keys))
        values[found] = self.distances[at[found]]
        return values, ~found


#: The parts :func:`prepared_once` returns for chi2 and chi2-soft: rows are ready, pairs go to :func:`chi2_pairs`.
READY_CHI2: Parts = (_as_float64, _chi2_rows)


def prepared_once(paired: Paired | Parts, X: np.ndarray) -> tuple[Paired | Parts, np.ndarray]:
    """``(paired, rows)`` to confirm pairs with: every row prepared (softened) once, as float32, when the
    prepared matrix fits in :data:`PREPARE_ALL_BYTES`; else ``(paired, X)`` as given (prepared per block).

    A row is in about 2k candidate pairs: preparing each once instead of per pair was the largest cost
    of the self-join at 100,000 images (README, "Near-duplicates").
    """
    if not isinstance(paired, tuple) or X.size * 4 > PREPARE_ALL_BYTES:
        return paired, X
    prepare, compare = paired
    ready = np.empty(X.shape, dtype=np.float32)
    for start in range(0, len(X), _PAIRS):
        ready[start : start + _PAIRS] = prepare(X[start : start + _PAIRS])
    return (READY_CHI2 if compare is _chi2_rows else (_as_float64, compare)), ready


def paired_rows(paired: Paired | Parts, X: np.ndarray, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Exact distances of row pairs (X[left[i]], X[right[i]]), a block of pairs at a time.

    With ``(prepare, compare)`` parts (:func:`cbir.distances.paired_parts`), each row of a block is prepared once.
    """
    if paired is READY_CHI2:
        return chi2_pairs(X, left, right)
    out = np.empty(len(left))
    for start in range(0, len(left), _PAIRS):
        end = start + _PAIRS
        if isinstance(paired, tuple):
            prepare, compare = paired
            rows, inverse = np.unique(np.concatenate([left[start:end], right[start:end]]), return_inverse=True)
            ready = prepare(X[rows])
            half = len(left[start:end])
            out[start:end] = compare(ready[inverse[:half]], ready[inverse[half:]])
        else:
            out[start:end] = paired(X[left[start:end]], X[right[start:end]])
    return out


def pairwise_many(paired: Paired | Parts, X: np.ndarray, groups: list[np.ndarray],
                  known: KnownPairs | None = None) -> list[np.ndarray]:
    """:func:`pairwise_distances` of each of ``groups``: with rows ready for :func:`chi2_pairs`, every pair of
    every group in one call (so threads share them out), else group by group. The same matrices either way."""
    if paired is not READY_CHI2 or not groups:
        return [pairwise_distances(paired, X, g, known) for g in groups]
    upper = [np.triu_indices(len(g), 1) for g in groups]
    a = np.concatenate([g[i] for g, (i, _) in zip(groups, upper)])
    b = np.concatenate([g[j] for g, (_, j) in zip(groups, upper)])
    values, missing = known.find(a, b) if known is not None else (np.empty(len(a)), np.ones(len(a), bool))
    values[missing] = chi2_pairs(X, a[missing], b[missing])
    out, start = [], 0
    for g, (i, j) in zip(groups, upper):
        matrix = np.zeros((len(g), len(g)))
        matrix[i, j] = matrix[j, i] = values[start : start + len(i)]
        out.append(matrix)
        start += len(i)
    return out


def pairwise_distances(paired: Paired | Parts, X: np.ndarray, positions: np.ndarray,
                       known: KnownPairs | None = None) -> np.ndarray:
    """Exact distances (s, s) among the rows ``X[positions]`` (with parts, each row prepared once).

    ``known``: distances measured already (:class:`KnownPairs`, the candidate edges), taken rather than measured
    again when rows are ready for :func:`chi2_pairs` (the same function made them: the same values).
    """
    i, j = np.triu_indices(len(positions), 1)
    matrix = np.zeros((len(positions), len(positions)))
    if paired is READY_CHI2:
        a, b = positions[i], positions[j]
        values, missing = known.find(a, b) if known is not None else (np.empty(len(a)), np.ones(len(a), bool))
        values[missing] = chi2_pairs(X, a[missing], b[missing])
        matrix[i, j] = matrix[j, i] = values
        return matrix
    if isinstance(paired, tuple):
        prepare, compare = paired
        ready = prepare(X[positions])
        for start in range(0, len(i), _PAIRS):
            a, b = i[start : start + _PAIRS], j[start : start + _PAIRS]
            matrix[a, b] = matrix[b, a] = compare(ready[a], ready[b])
        return matrix
    matrix[i, j] = matrix[j, i] = paired_rows(paired, X, positions[i], positions[j])
    return matrix

