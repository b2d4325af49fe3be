"""Keep every image's augmented search vector (DBA, :mod:`cbir.augment`) in step with the plain ones.

Run by :func:`indexer.project.update_vectors` after the projection pass. The setting
(neighbours, alpha) and the projection it was computed under are the ``augment`` meta
value. When that changes (a new projection, ``cbir index --refit``, another setting)
every search vector is recomputed from a FAISS self-join in batches. Otherwise only the
images without one (new or re-projected) are handled, with bounded work per image: its
own k neighbours give its vector, and of its :data:`REVERSE` nearest stored images,
those whose k neighbours now include it are recomputed too. A neighbour list that a new
image enters from farther away, or one that loses a removed image, stays as it was
until the next full pass (the drift is measured in the README).
"""

from __future__ import annotations

import json

import numpy as np

from cbir.augment import DEFAULT_ALPHA, DEFAULT_NEIGHBOURS, augment, augment_setting, knn_index, weighted_mean
from cbir.store import Store

#: Stored images examined per new image for lists it enters, as a multiple of the neighbours.
REVERSE = 4
#: Rows written per transaction.
WRITE_BATCH = 2_000


def update_augmented(
    store: Store, projection_id: int, *, neighbours: int | None = None, alpha: float | None = None,
    full: bool = False,
) -> int:
    """Compute the augmented search vectors that are missing or stale; returns how many were written.

    Parameters
    ----------
    store : Store
        Written by the caller's index run (which holds the writer lock).
    projection_id : int
        The active projection; every image has its plain vector under it.
    neighbours, alpha : optional
        The setting; None keeps the recorded one (or the defaults of :mod:`cbir.augment`).
    full : bool
        Recompute every image's vector (``--refit``).

    Returns
    -------
    int
    """
    recorded = augment_setting(store) or {}
    k = int(recorded.get("neighbours", DEFAULT_NEIGHBOURS) if neighbours is None else neighbours)
    a = float(recorded.get("alpha", DEFAULT_ALPHA) if alpha is None else alpha)
    setting = {"neighbours": k, "alpha": a, "projection": int(projection_id)}
    full = full or recorded != setting
    if not full and (k == 0 or not len(store.unaugmented_ids(projection_id))):
        return 0
    parts = list(store.iter_vectors(projection_id))
    if not parts:
        return 0
    ids = np.concatenate([p[0] for p in parts])
    V = np.concatenate([p[1] for p in parts])
    if k == 0:
        if full and recorded.get("neighbours", 0):
            _write(store, ids, None, setting)
        elif full:
            store.set_search_vectors(np.empty(0, np.int64), None, augment=json.dumps(setting))
        return 0
    if full:
        _write(store, ids, augment(V, k, alpha=a), setting)
        return len(ids)
    new = np.searchsorted(ids, store.unaugmented_ids(projection_id))
    if not len(new):
        return 0
    if 2 * len(new) >= len(ids):
        # Most images are new: one self-join over all of them costs less than the two searches a new image
        # takes here (its own lists and those it may enter), and leaves no list stale.
        _write(store, ids, augment(V, k, alpha=a), setting)
        return len(ids)
    index = knn_index(V)
    is_new = np.zeros(len(ids), bool)
    is_new[new] = True
    # Stored images near a new one: their lists may now hold it.
    _, near = index.search(V[new], min(len(ids), REVERSE * k + 1))
    candidates = np.unique(near[near >= 0])
    rows = np.union1d(new, candidates)
    _, found = index.search(V[rows], min(len(ids), k + 1))
    lists = np.array([_others(f, r, k) for f, r in zip(found, rows, strict=True)])
    redo = is_new[rows] | (is_new[np.maximum(lists, 0)] & (lists >= 0)).any(axis=1)
    rows, lists = rows[redo], lists[redo]
    N = np.where((lists >= 0)[..., None], V[np.maximum(lists, 0)], 0.0)
    _write(store, ids[rows], weighted_mean(V[rows], N, alpha=a), None)
    return len(rows)


def _others(found: np.ndarray, row: int, k: int) -> np.ndarray:
    """The first k of a search's rows other than ``row`` itself, padded with -1."""
    keep = found[(found >= 0) & (found != row)][:k]
    return np.concatenate([keep, np.full(k - len(keep), -1, dtype=np.int64)])


def _write(store: Store, ids: np.ndarray, vectors: np.ndarray | None, setting: dict | None) -> None:
    """In batches; the setting is recorded with the last one, so an interrupted full pass is redone whole."""
    for start in range(0, max(len(ids), 1), WRITE_BATCH):
        last = start + WRITE_BATCH >= len(ids)
        part = None if vectors is None else vectors[start : start + WRITE_BATCH]
        store.set_search_vectors(ids[start : start + WRITE_BATCH], part,
                                 augment=json.dumps(setting) if last and setting is not None else None)
