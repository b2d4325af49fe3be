"""Near-duplicate groups of an index: k-NN and hash self-joins through FAISS, edges confirmed exactly.

Candidates, never all pairs: each image's ``k`` nearest by the compact vectors (the default
search's space, :func:`cbir.augment.self_join`; the metric's own embedding, pruned by its
lower bound, when there are none) and every pair whose 64-bit perceptual hashes
(:mod:`cbir.perceptual`) are within ``hamming`` bits (a FAISS binary join). Each candidate
gets its exact colour distance on the stored histograms and its Hamming distance; a pair is
a near-duplicate when colour is within ``threshold`` or the hashes within ``hamming`` bits,
unless the hashes are more than ``veto`` bits apart. :func:`cbir.duplicates.group_edges`
then groups them by complete linkage on that test, so groups do not chain.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cbir.distances import paired_parts
from cbir.duplicates import centre_of, combined, group_edges
from cbir.embedding import Embedding
from cbir.errors import BadInputError
from cbir.perceptual import hamming as hamming_bits
from cbir.perceptual import NO_STRUCTURE, near_pairs
from search.duplicate_exact import KnownPairs, Paired, Parts, pairwise_distances, pairwise_many, prepared_once
from search.duplicate_exact import paired_rows as _paired

#: Distance used to confirm edges: measured to separate near-duplicates best (README, "Near-duplicates").
DUPLICATE_METRIC = "chi2-soft"
#: Default threshold on :data:`DUPLICATE_METRIC`, with :data:`DEFAULT_HAMMING` and :data:`DEFAULT_VETO`
#: chosen on a joint grid over three near-duplicate sets, then lowered from 0.31 for a fourth, denser one
#: (all 1,000 Wang photos and 4 copies each), where distinct photos of one kind (dinosaurs on white) are
#: within 0.26 of each other in colour: F1 0.32 at 0.31, 0.70 at 0.24, above pHash's 0.49-0.50 on all
#: four sets, and 0.015 below that set's cliff (README, "Near-duplicates").
DEFAULT_THRESHOLD = 0.24
#: Default largest Hamming distance of two perceptual hashes (64 bits) that makes a pair by itself:
#: measured with the threshold over the same sets (README, "Near-duplicates").
DEFAULT_HAMMING: int | None = 12
#: Hashes further apart than this many bits rule a pair out whatever its colours (None: no veto): measured likewise.
DEFAULT_VETO: int | None = 34
#: Stands for "no hash" (a row indexed before hashes were kept); no real hash is tested against it.
NO_HASH = np.iinfo(np.int64).min
#: Neighbours looked up per image: a group can have up to k + 1 images found directly
#: (more through shared neighbours).
DEFAULT_K = 10
MAX_K = 100
#: Images per FAISS self-join batch.
_BATCH = 2048
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
    #: Largest Hamming distance of hashes that pairs two images (None: colour only).
    hamming: int | None = None
    #: Images without a perceptual hash (paired by colour alone until ``cbir index`` runs again).
    unhashed: int = 0
    #: Hashes further apart than this rule a pair out (None: no veto).
    veto: int | None = None

    def to_dict(self, *, keep: str | None = None) -> dict[str, Any]:
        """The JSON document of ``cbir duplicates --json``; with ``keep``, each image says whether it is kept."""
        groups = []
        for group in self.groups:
            kept = group.kept(keep).id if keep else None
            images = [m.to_dict() | ({"keep": m.id == kept} if keep else {}) for m in group.members]
            groups.append({"images": images})
        return {"threshold": self.threshold, "hamming": self.hamming, "veto": self.veto, "k": self.k, "metric": self.metric,
                "images": self.images, "unhashed": self.unhashed, "groups": groups, "pairs": self.pairs}


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


def check_veto(veto: Any) -> int | None:
    """The hash veto as bits (0..64), or None for none: ``"off"``, -1 or None. Integers may come as text
    (a command-line or query-string value). Raises a :class:`BadInputError` naming a bad value."""
    if veto is None or (isinstance(veto, str) and veto.strip().lower() == "off"):
        return None
    if isinstance(veto, str):
        try:
            veto = int(veto.strip())
        except ValueError:
            raise BadInputError(f"hash veto must be 'off' or an integer between 0 and 64, got {veto!r}") from None
    if isinstance(veto, bool) or not isinstance(veto, (int, np.integer)) or not -1 <= veto <= 64:
        raise BadInputError(f"hash veto must be 'off' or an integer between 0 and 64, got {veto!r}")
    return None if veto < 0 else int(veto)


def candidate_edges(
    searcher: Any, embedding: Embedding, paired: Paired, ids: np.ndarray, X: np.ndarray, *, threshold: float, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Edges (left, right, exact distance) of the self-join in the metric's embedding, positions into ``ids``.

    Each image's ``k`` nearest neighbours in ``embedding`` are candidates; those whose
    lower bound exceeds ``threshold`` are dropped before the exact distance, which
    ``paired`` (see :func:`cbir.distances.paired_distance_function`) computes in blocks.
    The fourth value is the number of pairs compared exactly.
    """
    left, right = _embedding_pairs(searcher, embedding, ids, X, threshold=threshold, k=k)
    return left, right, _paired(paired, X, left, right), len(left)


def _embedding_pairs(
    searcher: Any, embedding: Embedding, ids: np.ndarray, X: np.ndarray, *, threshold: float, k: int
) -> tuple[np.ndarray, np.ndarray]:
    kind = "ivf" if searcher.approximate_at(len(ids)) else "flat"
    index = searcher.vector_index(embedding, kind=kind)
    index.set_nprobe(searcher.nprobe)
    lefts, rights = [], []
    for start in range(0, len(ids), _BATCH):
        squared, found = index.search(embedding.transform(X[start : start + _BATCH]), k + 1)
        rows = np.arange(start, start + len(found))[:, None].repeat(found.shape[1], axis=1)
        keep = (found >= 0) & (embedding.bound(squared) <= threshold)
        lefts.append(rows[keep])
        rights.append(_positions(ids, found[keep]))
    return _unique_pairs(np.concatenate(lefts), np.concatenate(rights))


def _compact_pairs(searcher: Any, ids: np.ndarray, *, k: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Each image and its ``k`` nearest by the compact vectors (:func:`cbir.augment.self_join`), or None
    when not every image has one. The projection gives no bound on the metric: every pair is confirmed exactly."""
    from cbir.augment import self_join

    state = searcher.compact_state()
    if state is None:
        return None
    parts = list(searcher.store.iter_vectors(state[0]))  # the plain vectors, not DBA's augmented ones
    vector_ids = np.concatenate([p[0] for p in parts])
    if len(vector_ids) != len(ids) or not np.array_equal(vector_ids, ids):
        return None  # the index changed between the two reads: the metric's own join
    found = self_join(np.concatenate([p[1] for p in parts]), k)
    rows = np.arange(len(ids))[:, None].repeat(found.shape[1], axis=1)
    keep = found >= 0
    return _unique_pairs(rows[keep], found[keep])


def _positions(ids: np.ndarray, found: np.ndarray) -> np.ndarray:
    """Positions of ids in the sorted ``ids`` (-1 for an id not there)."""
    positions = np.searchsorted(ids, found)
    known = (positions < len(ids)) & (ids[np.minimum(positions, len(ids) - 1)] == found)
    return np.where(known, positions, -1)


def _unique_pairs(left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    left, right = np.asarray(left, np.int64), np.asarray(right, np.int64)
    keep = (left >= 0) & (right >= 0) & (left != right)
    pairs = np.stack([np.minimum(left, right)[keep], np.maximum(left, right)[keep]], axis=1)
    pairs = np.unique(pairs.reshape(-1, 2), axis=0)
    return pairs[:, 0], pairs[:, 1]


def stored_hashes(store: Any, ids: np.ndarray) -> np.ndarray:
    """Perceptual hash of each of ``ids`` (int64), :data:`NO_HASH` where a row has none."""
    hashed_ids, hashes = store.perceptual_hashes()
    out = np.full(len(ids), NO_HASH, dtype=np.int64)
    positions = _positions(ids, hashed_ids)
    out[positions[positions >= 0]] = hashes[positions >= 0]
    return out


def _bits(hashes: np.ndarray, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Hamming distance of each pair; -1 where either row has no hash, or a flat image's (no structure to compare)."""
    a, b = hashes[left], hashes[right]
    missing = (a == NO_HASH) | (b == NO_HASH) | (a == NO_STRUCTURE) | (b == NO_STRUCTURE)
    return np.where(missing, -1, hamming_bits(a, b))


def duplicate_edges(
    searcher: Any, ids: np.ndarray, X: np.ndarray, hashes: np.ndarray, paired: Paired | Parts, *,
    threshold: float, k: int, hamming: int | None, embedding: Embedding | None = None, metric: str = DUPLICATE_METRIC,
    prepared: tuple[Paired | Parts, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Candidate pairs (left, right) with their exact colour distance and Hamming distance (-1: no hash).

    Candidates: each image's ``k`` nearest by the compact vectors (by ``embedding``, the
    metric's own, when given or when there are no compact vectors), and every pair whose
    hashes are within ``hamming`` bits (a FAISS binary join, :func:`cbir.perceptual.near_pairs`).
    """
    found = None
    if embedding is None and metric == DUPLICATE_METRIC:
        found = _compact_pairs(searcher, ids, k=k)
    if found is None:
        found = _embedding_pairs(searcher, embedding or searcher.metric(metric)[0], ids, X, threshold=threshold, k=k)
    left, right = found
    if hamming is not None:
        hashed = np.flatnonzero((hashes != NO_HASH) & (hashes != NO_STRUCTURE))
        hash_left, hash_right = near_pairs(hashes[hashed], hamming)
        left, right = _unique_pairs(np.concatenate([left, hashed[hash_left]]), np.concatenate([right, hashed[hash_right]]))
    paired, rows = prepared if prepared is not None else prepared_once(paired, X)
    return left, right, _paired(paired, rows, left, right), _bits(hashes, left, right)


def find_duplicates(
    searcher: Any,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    k: int = DEFAULT_K,
    metric: str = DUPLICATE_METRIC,
    hamming: int | None = DEFAULT_HAMMING,
    veto: int | str | None = DEFAULT_VETO,
    embedding: Embedding | None = None,
) -> Duplicates:
    """Every group of near-duplicates in the index of ``searcher``.

    Two images are near-duplicates when their exact ``metric`` distance is within ``threshold``
    or their perceptual hashes (:mod:`cbir.perceptual`) differ in at most ``hamming`` bits; a
    group is made by complete linkage, so every two of its members pass one test or the other.

    Parameters
    ----------
    searcher : search.Searcher
    threshold : float
        Largest exact ``metric`` distance between two members of a group.
    k : int
        Neighbours looked up per image (1..:data:`MAX_K`).
    metric : str
        Distance that confirms edges and bounds groups.
    hamming : int or None
        Largest Hamming distance (0..64) of two hashes that makes a pair whatever the colours; None or -1: colour only.
        Rows without a hash (an index made before hashes, until its next ``cbir index``) are paired by colour alone.
    veto : int, "off" or None
        Hashes more than this many bits apart rule a pair out even when its colours are within
        ``threshold`` (None, "off" or -1: no veto; no effect with hashes off or on rows without one).
        Its price: some flipped and cropped copies hash as far apart as unrelated pictures.
    embedding : Embedding, optional
        Search space of the colour self-join; by default the compact vectors (the metric's own
        embedding when there are none, or when ``metric`` is not :data:`DUPLICATE_METRIC`).

    Returns
    -------
    Duplicates

    Raises
    ------
    BadInputError
        For a negative or non-finite threshold, k, hamming or veto out of range or an unknown metric.
    """
    started = time.perf_counter()
    threshold, k = check_options(threshold, k)
    if hamming is not None and (isinstance(hamming, bool) or not isinstance(hamming, (int, np.integer)) or not -1 <= hamming <= 64):
        raise BadInputError(f"hamming must be an integer between 0 and 64 (-1: colour only), got {hamming!r}")
    hamming = None if hamming is None or hamming < 0 else int(hamming)
    veto = check_veto(veto)
    paired = paired_parts(metric, searcher.codebook.centers)
    ids, X = searcher.histograms()
    if len(ids) < 2:
        return Duplicates(threshold, k, metric, [], 0, 0, len(ids), time.perf_counter() - started, hamming, 0,
                          None if hamming is None else veto)
    hashes = stored_hashes(searcher.store, ids)
    exact_paired, rows = prepared_once(paired, X)
    left, right, colour, bits = duplicate_edges(searcher, ids, X, hashes, paired, threshold=threshold, k=k,
                                                hamming=hamming, embedding=embedding, metric=metric,
                                                prepared=(exact_paired, rows))
    exact = combined(colour, bits, threshold=threshold, hamming=hamming, veto=veto)
    known = KnownPairs(len(ids), left, right, colour)  # a group's pairs that are candidate edges are not measured again
    matrices: dict[bytes, np.ndarray] = {}
    measured: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # position -> (its component's positions, matrix)

    def cut(positions: np.ndarray) -> np.ndarray | None:  # a group cut from a measured component: a slice of its matrix
        whole = measured.get(int(positions[0]))
        if positions.tobytes() in matrices or whole is None or not np.isin(positions, whole[0]).all():
            return None
        at = np.searchsorted(whole[0], positions)
        return whole[1][np.ix_(at, at)]

    def keep(positions: np.ndarray, colour_matrix: np.ndarray) -> np.ndarray:  # a group linkage kept whole: measured once
        i, j = np.triu_indices(len(positions), 1)
        bits_ = np.zeros((len(positions), len(positions)), dtype=np.int64)
        bits_[i, j] = bits_[j, i] = _bits(hashes, positions[i], positions[j])
        matrix = matrices[positions.tobytes()] = combined(colour_matrix, bits_, threshold=threshold, hamming=hamming, veto=veto)
        if np.all(positions[:-1] < positions[1:]):
            measured.update({int(p): (positions, matrix) for p in positions})
        return matrix

    def pairwise(positions: np.ndarray) -> np.ndarray:
        found = matrices.get(positions.tobytes())
        if found is None:
            found = cut(positions)
        return found if found is not None else keep(positions, pairwise_distances(exact_paired, rows, positions, known))

    positions = group_edges(len(ids), left, right, exact, threshold=threshold, pairwise=pairwise)
    members = [np.sort(m) for m in positions]
    todo = list({g.tobytes(): g for g in members if g.tobytes() not in matrices and cut(g) is None}.values())
    for group, colour_matrix in zip(todo, pairwise_many(exact_paired, rows, todo, known)):  # in one pass
        keep(group, colour_matrix)
    facts = searcher.store.facts(ids[np.concatenate(positions)]) if positions else {}  # one query per 500 images
    groups = [_group(facts, ids, m, pairwise(s)) for m, s in zip(positions, members)]
    pairs = int(np.count_nonzero(exact <= threshold))
    return Duplicates(threshold, k, metric, groups, pairs, len(left), len(ids), time.perf_counter() - started, hamming,
                      int(np.count_nonzero(hashes == NO_HASH)), None if hamming is None else veto)


def _group(facts: dict[int, Any], ids: np.ndarray, members: np.ndarray, matrix: np.ndarray) -> Group:
    centre = centre_of(matrix)
    order = np.lexsort((ids[members], matrix[centre]))
    out = []
    for row in order:
        record = facts.get(int(ids[members[row]]))
        if record is None:  # removed since the histograms were read
            continue
        out.append(Member(int(record.id), record.path, float(matrix[centre, row]), int(record.width),
                          int(record.height), int(record.size), float(record.mtime)))
    return Group(tuple(out))
