"""Retrieval metrics as pure functions: AP, mAP, P@k, R@k, the N-S score, interpolated precision.

Each takes a boolean relevance vector in rank order (best first) and never re-sorts it,
so a value computed here can be recomputed by hand from ``cbir search --json`` output.
``AP = sum over relevant positions r of P@r, divided by the number of relevant images
in the collection`` (relevant images never retrieved count as zero precision). How
rankings become relevance vectors (leave-one-out, groups) is
:mod:`cbir.evaluation.protocol`'s job.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

from cbir.errors import BadInputError

#: Recall levels of the reported (interpolated) precision-recall curve.
RECALL_LEVELS = tuple(np.round(np.linspace(0.0, 1.0, 11), 2))


def _relevance(relevance: Sequence[bool] | np.ndarray) -> np.ndarray:
    rel = np.asarray(relevance)
    if rel.ndim != 1:
        raise BadInputError(f"expected a 1-D relevance vector in rank order, got shape {rel.shape}")
    return rel.astype(bool)


def average_precision(relevance: Sequence[bool] | np.ndarray, n_relevant: int | None = None) -> float:
    """Average precision of one ranking.

    Parameters
    ----------
    relevance : array-like of bool, shape (n,)
        Whether the result at each rank (best first) is relevant.
    n_relevant : int, optional
        Relevant images in the whole collection; default: the number in ``relevance``
        (i.e. the ranking covers the collection).

    Returns
    -------
    float
        ``sum_r rel[r] * P@r / n_relevant``; NaN when ``n_relevant`` is 0.

    Raises
    ------
    BadInputError
        If ``relevance`` is not 1-D, or ``n_relevant`` is smaller than the relevant results given.
    """
    rel = _relevance(relevance)
    found = int(rel.sum())
    total = found if n_relevant is None else int(n_relevant)
    if total < found:
        raise BadInputError(f"n_relevant={n_relevant} is smaller than the {found} relevant results in the ranking")
    if total == 0:
        return math.nan
    positions = np.flatnonzero(rel) + 1
    return float((np.arange(1, found + 1) / positions).sum() / total)


def precision_at(relevance: Sequence[bool] | np.ndarray, k: int) -> float:
    """Share of the top ``k`` that is relevant (a ranking shorter than ``k`` counts missing ranks as misses).

    Raises
    ------
    BadInputError
        If ``k`` < 1.
    """
    if k < 1:
        raise BadInputError(f"k must be at least 1, got {k}")
    return float(_relevance(relevance)[:k].sum() / k)


def recall_at(relevance: Sequence[bool] | np.ndarray, k: int, n_relevant: int) -> float:
    """Share of the ``n_relevant`` relevant images found in the top ``k``; NaN when there are none.

    Raises
    ------
    BadInputError
        If ``k`` < 1.
    """
    if k < 1:
        raise BadInputError(f"k must be at least 1, got {k}")
    if n_relevant <= 0:
        return math.nan
    return float(_relevance(relevance)[:k].sum() / n_relevant)


def ns_score(relevance_with_query: Sequence[bool] | np.ndarray, *, top: int = 4) -> float:
    """UKBench's N-S score of one query: relevant images (the query included) in the top ``top``."""
    return float(_relevance(relevance_with_query)[:top].sum())


def mean_average_precision(aps: Iterable[float]) -> float:
    """Mean of the APs that are defined (NaN ones, for queries without relevant images, are left out).

    Returns NaN when no AP is defined.
    """
    values = np.asarray([a for a in aps if not math.isnan(a)], dtype=np.float64)
    return float(values.mean()) if len(values) else math.nan


def interpolated_precision(
    relevance: Sequence[bool] | np.ndarray, n_relevant: int, levels: Sequence[float] = RECALL_LEVELS
) -> np.ndarray:
    """Interpolated precision (max precision at any recall >= r) at each recall level, shape (len(levels),).

    NaN everywhere when ``n_relevant`` is 0.
    """
    rel = _relevance(relevance)
    if n_relevant <= 0:
        return np.full(len(levels), np.nan)
    hits = np.cumsum(rel)
    ranks = np.arange(1, len(rel) + 1)
    precision = hits / ranks
    recall = hits / n_relevant
    out = np.zeros(len(levels))
    for i, level in enumerate(levels):
        reached = recall >= level - 1e-12
        out[i] = precision[reached].max() if reached.any() else 0.0
    return out
