"""The orders a palette can be shown in: by share, lightness, hue, an sRGB or Lab channel, spread, or
perceptually (a shortest path through the colors in L*a*b*, so similar colors sit side by side).

:func:`palette_order` is a pure function of the colors' Lab centers and shares; it returns a permutation.
"""

from __future__ import annotations

import numpy as np

from cbir.color import lab_to_rgb
from cbir.errors import BadInputError

#: ``proportion`` largest share first; ``lightness`` dark to light (L*); ``hue`` by hue angle
#: (grays last, dark to light); ``red``/``green``/``blue`` by an sRGB channel and ``a``/``b`` by
#: a* (green -> red) or b* (blue -> yellow), ascending; ``spread`` along the Lab axis of largest
#: spread, dark end first; ``perceptual`` a shortest path through the colors in Lab, so similar
#: colors sit side by side.
SORT_ORDERS = ("proportion", "lightness", "hue", "red", "green", "blue", "a", "b", "spread", "perceptual")
DEFAULT_SORT = "proportion"
#: Below this chroma (C*) a color counts as gray in the hue order.
ACHROMATIC_CHROMA = 8.0
#: Up to this many colors the perceptual order is the exact shortest path.
EXACT_PATH_COLORS = 10


def check_sort(order: str) -> str:
    """``order`` if it is one of :data:`SORT_ORDERS`.

    Raises
    ------
    BadInputError
        If it is not.
    """
    if order not in SORT_ORDERS:
        raise BadInputError(f"unknown sort order {order!r}; choose from {', '.join(SORT_ORDERS)}")
    return order


def path_length(lab: np.ndarray) -> float:
    """Total Euclidean length of the path through Lab colors in the given order."""
    lab = np.asarray(lab, dtype=np.float64).reshape(-1, 3)
    return float(np.linalg.norm(np.diff(lab, axis=0), axis=1).sum())


def palette_order(lab: np.ndarray, proportions: np.ndarray, order: str) -> np.ndarray:
    """Display order of palette colors.

    Parameters
    ----------
    lab : ndarray, shape (n, 3)
        Colors in L*a*b*.
    proportions : ndarray, shape (n,)
        Their shares.
    order : str
        One of :data:`SORT_ORDERS`; ties are broken by L*, then by input position.

    Returns
    -------
    ndarray, shape (n,), int64
        A permutation of ``range(n)``: ``lab[result]`` is in the requested order.

    Raises
    ------
    BadInputError
        If the shapes disagree or ``order`` is unknown.
    """
    lab = np.asarray(lab, dtype=np.float64)
    proportions = np.asarray(proportions, dtype=np.float64)
    if lab.ndim != 2 or lab.shape[1] != 3 or proportions.shape != (len(lab),):
        raise BadInputError(f"expected lab (n, 3) and proportions (n,), got {lab.shape} and {proportions.shape}")
    check_sort(order)
    n = len(lab)
    position = np.arange(n)
    lightness = lab[:, 0]
    if n <= 1:
        return position.astype(np.int64)
    if order == "proportion":
        keys: tuple[np.ndarray, ...] = (-proportions,)
    elif order == "lightness":
        keys = (lightness,)
    elif order == "hue":
        hue = np.degrees(np.arctan2(lab[:, 2], lab[:, 1])) % 360.0
        gray = np.hypot(lab[:, 1], lab[:, 2]) < ACHROMATIC_CHROMA
        keys = (gray, np.where(gray, 0.0, hue))
    elif order in ("red", "green", "blue"):
        keys = (lab_to_rgb(lab)[:, ("red", "green", "blue").index(order)].astype(np.float64),)
    elif order in ("a", "b"):
        keys = (lab[:, 1 if order == "a" else 2],)
    elif order == "spread":
        keys = (_spread_projection(lab),)
    else:
        return _shortest_path(lab)
    # np.lexsort sorts by the last key first.
    return np.lexsort((position, lightness, *reversed(keys))).astype(np.int64)


def _spread_projection(lab: np.ndarray) -> np.ndarray:
    """Coordinates along the first principal axis of the colors, oriented dark to light."""
    centered = lab - lab.mean(axis=0)
    _, _, vt = np.linalg.svd(centered, full_matrices=False)
    axis = vt[0]
    # A fixed orientation: L* increasing along the axis (or a*, then b*, when L* is flat).
    for component in axis:
        if abs(component) > 1e-9:
            if component < 0:
                axis = -axis
            break
    return np.round(centered @ axis, 9)


def _distances(lab: np.ndarray) -> np.ndarray:
    return np.linalg.norm(lab[:, None, :] - lab[None, :, :], axis=-1)


def _exact_path(dist: np.ndarray) -> list[int]:
    """Shortest open path visiting every node once (Held-Karp dynamic programming, n <= ~12)."""
    n = len(dist)
    full = 1 << n
    cost = np.full((full, n), np.inf)
    parent = np.full((full, n), -1, dtype=np.int64)
    for j in range(n):
        cost[1 << j, j] = 0.0
    for mask in range(1, full):
        row = cost[mask]
        if not np.isfinite(row).any():
            continue
        # best[i] = min over ends j in mask of row[j] + dist[j, i]
        through = row[:, None] + dist
        best_end = np.argmin(through, axis=0)
        best = through[best_end, np.arange(n)]
        for i in range(n):
            if mask >> i & 1:
                continue
            target = mask | 1 << i
            if best[i] < cost[target, i] - 1e-12:
                cost[target, i] = best[i]
                parent[target, i] = best_end[i]
    mask = full - 1
    end = int(np.argmin(cost[mask]))
    path = []
    while end >= 0:
        path.append(end)
        previous = int(parent[mask, end])
        mask &= ~(1 << end)
        end = previous
    return path[::-1]


def _two_opt(path: list[int], dist: np.ndarray) -> list[int]:
    """Improve an open path by segment reversals until none shortens it."""
    route = np.array(path, dtype=np.int64)
    n = len(route)
    improved = True
    while improved:
        improved = False
        for i in range(n - 1):
            # Reverse route[i..j]: edges (i-1, i) and (j, j+1) become (i-1, j) and (i, j+1).
            j = np.arange(i + 1, n)
            before = np.zeros(len(j))
            after = np.zeros(len(j))
            if i > 0:
                before += dist[route[i - 1], route[i]]
                after += dist[route[i - 1], route[j]]
            inner = j < n - 1
            nxt = route[np.minimum(j + 1, n - 1)]
            before += np.where(inner, dist[route[j], nxt], 0.0)
            after += np.where(inner, dist[route[i], nxt], 0.0)
            gain = before - after
            best = int(np.argmax(gain))
            if gain[best] > 1e-9:
                route[i : j[best] + 1] = route[i : j[best] + 1][::-1]
                improved = True
    return route.tolist()


def _shortest_path(lab: np.ndarray) -> np.ndarray:
    """A shortest (exact for few colors, else 2-opt) open path through the colors, dark end first."""
    n = len(lab)
    dist = _distances(lab)
    if n <= EXACT_PATH_COLORS:
        path = _exact_path(dist)
    else:
        # Start from the orders people would otherwise use, plus greedy nearest-neighbour
        # walks from the darkest and lightest colors; keep the shortest after 2-opt. It is
        # never longer than the lightness order.
        starts = [np.argsort(lab[:, 0], kind="stable").tolist()]
        for first in (int(np.argmin(lab[:, 0])), int(np.argmax(lab[:, 0]))):
            walk, left = [first], set(range(n)) - {first}
            while left:
                candidates = sorted(left)
                nearest = candidates[int(np.argmin(dist[walk[-1], candidates]))]
                walk.append(nearest)
                left.remove(nearest)
            starts.append(walk)
        routes = [_two_opt(start, dist) for start in starts]
        path = min(routes, key=lambda route: float(dist[route[:-1], route[1:]].sum()))
    if lab[path[0], 0] > lab[path[-1], 0]:
        path = path[::-1]
    return np.array(path, dtype=np.int64)
