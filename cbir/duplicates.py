"""Near-duplicate groups from candidate edges, and how well a grouping matches the truth.

The read path (``search.duplicates``) finds candidate pairs with a k-nearest-neighbour
self-join through FAISS and confirms each with an exact distance; this module turns the
confirmed edges into groups. Connected components alone chain: A~B and B~C put A and C
together however far apart they are, so a component is split by complete linkage
(every two members of a group are within the threshold) while that is affordable, and
by a centre rule beyond (every member within the threshold of the group's centre).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial.distance import squareform

from cbir.errors import BadInputError

#: Components up to this size are split by complete linkage (a size x size distance matrix);
#: larger ones (a flood of near-identical images) by the centre rule, which needs only the edges.
MAX_LINKAGE_SIZE = 1500

Pairwise = Callable[[np.ndarray], np.ndarray]


def _check_edges(n: int, left: np.ndarray, right: np.ndarray, distance: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    left = np.asarray(left, dtype=np.int64).reshape(-1)
    right = np.asarray(right, dtype=np.int64).reshape(-1)
    distance = np.asarray(distance, dtype=np.float64).reshape(-1)
    if not len(left) == len(right) == len(distance):
        raise BadInputError(f"edges need equal lengths, got {len(left)}, {len(right)} and {len(distance)}")
    if len(left) and (min(left.min(), right.min()) < 0 or max(left.max(), right.max()) >= n):
        raise BadInputError(f"edge endpoints must lie in [0, {n}), got [{min(left.min(), right.min())}, {max(left.max(), right.max())}]")
    return left, right, distance


def group_edges(
    n: int,
    left: np.ndarray,
    right: np.ndarray,
    distance: np.ndarray,
    *,
    threshold: float,
    pairwise: Pairwise,
    max_linkage_size: int = MAX_LINKAGE_SIZE,
) -> list[np.ndarray]:
    """Groups of items joined by edges with ``distance <= threshold``, split so they do not chain.

    Parameters
    ----------
    n : int
        Number of items; edges name them by position 0..n-1.
    left, right : ndarray, shape (m,), int
        Edge endpoints (either order; duplicates and self-loops are harmless).
    distance : ndarray, shape (m,)
        Exact distance of each edge.
    threshold : float
        Edges above it are ignored; within a returned group every pair (complete
        linkage) or every member and the group's centre (large components) is within it.
    pairwise : callable
        ``pairwise(positions (s,)) -> (s, s)`` exact distances among those items
        (symmetric, zero diagonal); called once per component of 3 to ``max_linkage_size`` items.
    max_linkage_size : int
        Larger components are split by the centre rule.

    Returns
    -------
    list of ndarray
        Positions of each group (at least two items, sorted), largest group first,
        then by first position.

    Raises
    ------
    BadInputError
        If the edges are of unequal lengths, name positions outside [0, n), or the
        threshold is negative or not finite.
    """
    if not np.isfinite(threshold) or threshold < 0:
        raise BadInputError(f"threshold must be a finite number >= 0, got {threshold!r}")
    left, right, distance = _check_edges(n, left, right, distance)
    keep = (distance <= threshold) & (left != right)
    left, right, distance = left[keep], right[keep], distance[keep]
    if not len(left):
        return []
    graph = coo_matrix((np.ones(len(left)), (left, right)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    sizes = np.bincount(labels)
    groups: list[np.ndarray] = []
    members_of = _members_by_label(labels, sizes)
    for members in members_of.values():
        if len(members) == 2:
            groups.append(members)
        elif len(members) <= max_linkage_size:
            groups.extend(_complete_linkage(members, pairwise(members), threshold))
        else:
            inside = np.isin(left, members)
            groups.extend(_by_centres(members, left[inside], right[inside]))
    groups = [np.sort(g) for g in groups if len(g) >= 2]
    groups.sort(key=lambda g: (-len(g), int(g[0])))
    return groups


def _members_by_label(labels: np.ndarray, sizes: np.ndarray) -> dict[int, np.ndarray]:
    order = np.argsort(labels, kind="stable")
    starts = np.concatenate([[0], np.cumsum(sizes)])
    return {
        int(label): order[starts[label] : starts[label + 1]]
        for label in np.flatnonzero(sizes >= 2)
    }


def _complete_linkage(members: np.ndarray, matrix: np.ndarray, threshold: float) -> list[np.ndarray]:
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.shape != (len(members), len(members)):
        raise BadInputError(f"pairwise distances of {len(members)} items must be ({len(members)}, {len(members)}), got {matrix.shape}")
    matrix = np.maximum((matrix + matrix.T) / 2, 0.0)
    np.fill_diagonal(matrix, 0.0)
    # An infinite distance (a pair ruled out whatever its colours) only has to stay above the threshold for SciPy.
    finite = np.isfinite(matrix)
    if not finite.all():
        matrix = np.where(finite, matrix, 2 * max(threshold, float(matrix[finite].max())) + 1)
    tree = linkage(squareform(matrix, checks=False), method="complete")
    clusters = fcluster(tree, t=threshold, criterion="distance")
    return [members[clusters == c] for c in np.unique(clusters) if np.count_nonzero(clusters == c) >= 2]


def _by_centres(members: np.ndarray, left: np.ndarray, right: np.ndarray) -> list[np.ndarray]:
    """Greedy stars: the free item with most free neighbours (then the lowest) becomes a centre and takes them.

    Lazy greedy over a heap: free-neighbour counts only fall, so an item whose count is still the
    one it was queued with is the best; O(edges log items), not a scan of the free items per star.
    """
    neighbours: dict[int, set[int]] = {int(m): set() for m in members}
    for a, b in zip(left.tolist(), right.tolist()):
        neighbours[a].add(b)
        neighbours[b].add(a)
    free = set(neighbours)
    heap = [(-len(neighbours[m]), m) for m in sorted(neighbours)]
    heapq.heapify(heap)
    groups = []
    while heap:
        count, centre = heapq.heappop(heap)
        if centre not in free:
            continue
        now = len(neighbours[centre] & free)
        if now != -count:
            heapq.heappush(heap, (-now, centre))
            continue
        star = (neighbours[centre] & free) | {centre}
        free -= star
        if len(star) >= 2:
            groups.append(np.array(sorted(star), dtype=np.int64))
    return groups


def hash_distance(bits: np.ndarray, *, threshold: float, hamming: int | None) -> np.ndarray:
    """Hamming distances as distances on the colour scale: ``threshold * bits / hamming`` up to ``hamming``
    bits, infinite beyond (and where a hash is missing, or hashes are off with ``hamming=None``)."""
    bits = np.asarray(bits)
    if hamming is None:
        return np.full(bits.shape, np.inf)
    scaled = threshold * bits / max(hamming, 1)
    return np.where((bits >= 0) & (bits <= hamming), scaled, np.inf)


def combined(colour: np.ndarray, bits: np.ndarray, *, threshold: float, hamming: int | None,
             veto: int | None = None) -> np.ndarray:
    """The distance groups are made with: within ``threshold`` when colour is, or the hashes are within ``hamming``;
    with ``veto``, hashes more than ``veto`` bits apart rule a pair out whatever its colours (same colours, other picture)."""
    out = np.minimum(colour, hash_distance(bits, threshold=threshold, hamming=hamming))
    if veto is None or hamming is None:
        return out
    return np.where(np.asarray(bits) > veto, np.inf, out)


def centre_of(matrix: np.ndarray) -> int:
    """Row of the medoid of a group: the member with the smallest largest distance to the others.

    Parameters
    ----------
    matrix : ndarray, shape (s, s)
        Pairwise distances within the group.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    return int(np.lexsort((matrix.sum(axis=1), matrix.max(axis=1)))[0])


def pair_scores(predicted: Sequence[Sequence[object]], truth: Sequence[Sequence[object]]) -> dict[str, float]:
    """Pair precision, recall and F1 of a grouping against true groups.

    A pair is two items in one group. Precision is the share of predicted pairs that
    are true pairs, recall the share of true pairs predicted. Items may be any
    hashable labels; items absent from a grouping are in no pair.

    Parameters
    ----------
    predicted, truth : sequences of groups (sequences of item labels)

    Returns
    -------
    dict
        ``precision``, ``recall``, ``f1`` (1.0 when there is nothing to find and
        nothing is found), ``predicted_pairs``, ``true_pairs``, ``correct_pairs``.
    """
    def pairs(groups: Sequence[Sequence[object]]) -> set[frozenset]:
        out: set[frozenset] = set()
        for group in groups:
            items = sorted(set(group), key=repr)
            out.update(frozenset((a, b)) for i, a in enumerate(items) for b in items[i + 1 :])
        return out

    found, real = pairs(predicted), pairs(truth)
    correct = len(found & real)
    precision = correct / len(found) if found else 1.0
    recall = correct / len(real) if real else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": precision, "recall": recall, "f1": f1,
        "predicted_pairs": float(len(found)), "true_pairs": float(len(real)), "correct_pairs": float(correct),
    }
