"""Near-duplicate groups of an index: a k-NN self-join through FAISS, edges confirmed exactly.

Every stored histogram is embedded (:mod:`cbir.embedding`) and searched against the
index's own FAISS index for its ``k`` nearest neighbours: ``n * k`` candidate pairs,
never all pairs. A candidate whose embedded distance already bounds the metric above
the threshold is dropped; the rest get the exact distance on the stored histograms.
:func:`cbir.duplicates.group_edges` then groups them without chaining.

The search space is the metric's embedding (FAISS flat below
:data:`search.searcher.APPROX_MIN_SIZE` images, IVF from there on); a compact
embedding slots in at :func:`find_duplicates` by passing another ``embedding``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cbir.distances import paired_distance_function
from cbir.duplicates import centre_of, group_edges
from cbir.embedding import Embedding
from cbir.errors import BadInputError

#: Distance used to confirm edges: measured to separate near-duplicates best (README, "Near-duplicates").
DUPLICATE_METRIC = "chi2-soft"
#: Default threshold on :data:`DUPLICATE_METRIC`: the one with the best mean pair F1 over three
#: near-duplicate benchmark sets (README, "Near-duplicates").
DEFAULT_THRESHOLD = 0.28
#: Neighbours looked up per image: a group can have up to k + 1 images found directly
#: (more through shared neighbours).
DEFAULT_K = 10
MAX_K = 100
#: Images per FAISS self-join batch, and row pairs per exact-distance block.
_BATCH = 2048
_PAIRS = 4096
Paired = Callable[[np.ndarray, np.ndarray], np.ndarray]
KEEP_RULES = ("largest", "newest", "oldest")


@dataclass(frozen=True)
class Member:
    """One image of a group, with its distance to the group's centre."""

    id: int
    path: str
    distance: float
    width: int
    height: int
    size: int
    mtime: float

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "path": self.path, "distance": self.distance, "width": self.width,
                "height": self.height, "size": self.size, "mtime": self.mtime}


@dataclass(frozen=True)
class Group:
    """Near-duplicates: the centre (medoid) first, then by distance to it."""

    members: tuple[Member, ...]

    def kept(self, rule: str) -> Member:
        """The image a ``rule`` keeps: ``largest`` (pixels, then bytes), ``newest`` or ``oldest`` (mtime).

        Raises
        ------
        BadInputError
            For an unknown rule.
        """
        if rule == "largest":
            return max(self.members, key=lambda m: (m.width * m.height, m.size, -m.id))
        if rule == "newest":
            return max(self.members, key=lambda m: (m.mtime, -m.id))
        if rule == "oldest":
            return min(self.members, key=lambda m: (m.mtime, m.id))
        raise BadInputError(f"unknown keep rule {rule!r}; choose {', '.join(KEEP_RULES)}")


@dataclass(frozen=True)
class Duplicates:
    """What :func:`find_duplicates` found."""

    threshold: float
    k: int
    metric: str
    groups: list[Group]
    #: Pairs within the threshold that the self-join found (edges, before chaining is cut).
    pairs: int
    #: Candidate pairs whose exact distance was computed.
    compared: int
    images: int
    seconds: float = field(compare=False)

    def to_dict(self, *, keep: str | None = None) -> dict[str, Any]:
        """The JSON document of ``cbir duplicates --json``; with ``keep``, each image says whether it is kept."""
        groups = []
        for group in self.groups:
            kept = group.kept(keep).id if keep else None
            images = [m.to_dict() | ({"keep": m.id == kept} if keep else {}) for m in group.members]
            groups.append({"images": images})
        return {"threshold": self.threshold, "k": self.k, "metric": self.metric, "images": self.images,
                "groups": groups, "pairs": self.pairs}


def check_options(threshold: float, k: int) -> tuple[float, int]:
    """Validated (threshold, k), or a :class:`BadInputError` naming the bad value."""
    try:
        threshold = float(threshold)
    except (TypeError, ValueError):
        raise BadInputError(f"threshold must be a number, got {threshold!r}") from None
    if not np.isfinite(threshold) or threshold < 0:
        raise BadInputError(f"threshold must be a finite number >= 0, got {threshold!r}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= MAX_K:
        raise BadInputError(f"k must be an integer between 1 and {MAX_K}, got {k!r}")
    return threshold, int(k)


def candidate_edges(
    searcher: Any, embedding: Embedding, paired: Paired, ids: np.ndarray, X: np.ndarray, *, threshold: float, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Edges (left, right, exact distance) of the self-join, positions into ``ids``; and the pairs compared.

    Each image's ``k`` nearest neighbours in the embedding are candidates; those whose
    lower bound exceeds ``threshold`` are dropped before the exact distance, which
    ``paired`` (see :func:`cbir.distances.paired_distance_function`) computes in blocks.
    """
    kind = "ivf" if searcher.approximate_at(len(ids)) else "flat"
    index = searcher.vector_index(embedding, kind=kind)
    index.set_nprobe(searcher.nprobe)
    lefts, rights = [], []
    for start in range(0, len(ids), _BATCH):
        squared, found = index.search(embedding.transform(X[start : start + _BATCH]), k + 1)
        rows = np.arange(start, start + len(found))[:, None].repeat(found.shape[1], axis=1)
        keep = (found >= 0) & (embedding.bound(squared) <= threshold)
        positions = np.searchsorted(ids, found[keep])
        known = (positions < len(ids)) & (ids[np.minimum(positions, len(ids) - 1)] == found[keep])
        left, right = rows[keep][known], positions[known]
        lefts.append(np.minimum(left, right))
        rights.append(np.maximum(left, right))
    left = np.concatenate(lefts) if lefts else np.empty(0, np.int64)
    right = np.concatenate(rights) if rights else np.empty(0, np.int64)
    pairs = np.unique(np.stack([left, right], axis=1)[left != right], axis=0)
    return pairs[:, 0], pairs[:, 1], _paired(paired, X, pairs[:, 0], pairs[:, 1]), len(pairs)


def _paired(paired: Paired, X: np.ndarray, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Exact distances of row pairs (X[left[i]], X[right[i]]), a block of pairs at a time."""
    out = np.empty(len(left))
    for start in range(0, len(left), _PAIRS):
        end = start + _PAIRS
        out[start:end] = paired(X[left[start:end]], X[right[start:end]])
    return out


def pairwise_distances(paired: Paired, X: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Exact distances (s, s) among the rows ``X[positions]``."""
    i, j = np.triu_indices(len(positions), 1)
    matrix = np.zeros((len(positions), len(positions)))
    matrix[i, j] = matrix[j, i] = _paired(paired, X, positions[i], positions[j])
    return matrix


def find_duplicates(
    searcher: Any,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    k: int = DEFAULT_K,
    metric: str = DUPLICATE_METRIC,
    embedding: Embedding | None = None,
) -> Duplicates:
    """Every group of near-duplicates in the index of ``searcher``.

    Parameters
    ----------
    searcher : search.Searcher
    threshold : float
        Largest exact ``metric`` distance between two members of a group.
    k : int
        Neighbours looked up per image (1..:data:`MAX_K`).
    metric : str
        Distance that confirms edges and bounds groups.
    embedding : Embedding, optional
        Search space of the self-join; by default the metric's own (exact lower bound).

    Returns
    -------
    Duplicates

    Raises
    ------
    BadInputError
        For a negative or non-finite threshold, k out of range or an unknown metric.
    """
    started = time.perf_counter()
    threshold, k = check_options(threshold, k)
    own_embedding, _ = searcher.metric(metric)
    embedding = embedding or own_embedding
    paired = paired_distance_function(metric, searcher.codebook.centers)
    ids, X = searcher.histograms()
    if len(ids) < 2:
        return Duplicates(threshold, k, metric, [], 0, 0, len(ids), time.perf_counter() - started)
    left, right, exact, compared = candidate_edges(searcher, embedding, paired, ids, X, threshold=threshold, k=k)
    matrices: dict[bytes, np.ndarray] = {}

    def pairwise(positions: np.ndarray) -> np.ndarray:
        key = positions.tobytes()
        if key not in matrices:  # a group linkage kept whole is measured once
            matrices[key] = pairwise_distances(paired, X, positions)
        return matrices[key]

    positions = group_edges(len(ids), left, right, exact, threshold=threshold, pairwise=pairwise)
    groups = [_group(searcher.store, ids, members, pairwise(np.sort(members))) for members in positions]
    pairs = int(np.count_nonzero(exact <= threshold))
    return Duplicates(threshold, k, metric, groups, pairs, compared, len(ids), time.perf_counter() - started)


def _group(store: Any, ids: np.ndarray, members: np.ndarray, matrix: np.ndarray) -> Group:
    centre = centre_of(matrix)
    order = np.lexsort((ids[members], matrix[centre]))
    out = []
    for row in order:
        record = store.image(int(ids[members[row]]))
        if record is None:  # removed since the histograms were read
            continue
        out.append(Member(int(record.id), record.path, float(matrix[centre, row]), int(record.width),
                          int(record.height), int(record.size), float(record.mtime)))
    return Group(tuple(out))
