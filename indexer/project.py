"""Give every stored image its compact vector: fit the projection when needed, project in batches.

Run at the end of every ``cbir index`` (and by ``cbir index --refit``). Each batch of
vectors is one transaction and marks its rows with the projection's id, so a crash
loses at most one batch and the next run projects only the rows still missing.

When a projection is fitted: on the first run (after the codebook and the
histograms), on ``--refit``, and automatically while the collection is small
enough to be fitted on whole (fewer than :data:`cbir.projection.MAX_FIT_SAMPLE`
images) and has at least doubled since the last fit: a handful of images indexed
first must not fix the space of the thousands indexed next. Past that size a grown
collection is reported by ``cbir info`` (:func:`refit_advice`) and refitted on request.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cbir.codebook import Codebook
from cbir.projection import (
    MAX_FIT_SAMPLE, Projection, fit_projection_from_store, project, projection_to_bytes, stored_projection,
)
from cbir.store import Store

#: ``cbir info`` suggests ``--refit`` once the collection is this many times the one the projection was fitted on.
GROWTH_ADVICE = 4.0


@dataclass
class VectorReport:
    """What a projection pass did."""

    fitted: bool = False
    projected: int = 0
    projection: str = ""
    dim: int = 0
    augmented: int = 0
    repacked: int = 0


def _needs_fit(store: Store, current: tuple[int, Projection] | None, *, refit: bool) -> bool:
    if refit or current is None:
        return True
    fitted_for = int(current[1].params.get("collection", 0))
    count = store.count()
    return fitted_for < MAX_FIT_SAMPLE and count >= 2 * max(1, fitted_for)


def update_vectors(
    store: Store,
    codebook_id: int,
    codebook: Codebook,
    *,
    refit: bool = False,
    seed: int = 0,
    batch: int = 2000,
    progress: Callable[[int, int], None] | None = None,
    augment: int | None = None,
) -> VectorReport:
    """Fit the projection if needed, then store the vector of every image that lacks one under it.

    Parameters
    ----------
    store : Store
        Written by the caller's index run (which holds the writer lock).
    codebook_id, codebook
        The index's codebook.
    refit : bool
        Fit a new projection on a fresh sample even if one exists (histograms an older cbir stored
        dense are first rewritten sparse: :func:`indexer.repack.repack_dense_histograms`).
    seed : int
        Seeds the fitting sample and the randomized SVD.
    batch : int
        Rows per transaction.
    progress : callable(done, total), optional
    augment : int, optional
        Neighbours of the augmented search vectors (:func:`indexer.neighbours.update_augmented`);
        None keeps the index's setting.

    Returns
    -------
    VectorReport
    """
    report = VectorReport()
    count = store.count()
    if count == 0:
        return report
    if refit:
        from indexer.repack import repack_dense_histograms

        report.repacked = repack_dense_histograms(store, batch=batch)
    current = stored_projection(store, codebook.centers)
    if _needs_fit(store, current, refit=refit):
        projection = fit_projection_from_store(store, codebook.centers, sample=MAX_FIT_SAMPLE, seed=seed,
                                               collection=count)
        mean, components = projection_to_bytes(projection)
        current = (store.save_projection(codebook_id, mean, components, projection.params, projection.fingerprint),
                   projection)
        report.fitted = True
    projection_id, projection = current
    todo = count - store.projected_count(projection_id)
    for ids, histograms in store.iter_unprojected(projection_id, batch=batch):
        store.set_vectors(projection_id, ids, project(histograms, projection))
        report.projected += len(ids)
        if progress is not None:
            progress(report.projected, todo)
    report.projection, report.dim = projection.fingerprint, projection.dim
    from indexer.neighbours import update_augmented

    report.augmented = update_augmented(store, projection_id, neighbours=augment, full=refit or report.fitted)
    return report


def refit_advice(store: Store, codebook: Codebook) -> str | None:
    """A sentence for ``cbir info`` when the projection is missing, incomplete or fitted on a much smaller collection."""
    count = store.count()
    current = stored_projection(store, codebook.centers)
    if count == 0:
        return None
    if current is None:
        return "no compact vectors yet (an index made by an older cbir): run 'cbir index FOLDER' once to add them"
    projection_id, projection = current
    missing = count - store.projected_count(projection_id)
    if missing:
        return f"{missing} image(s) have no compact vector yet (an interrupted run?): run 'cbir index FOLDER' to finish"
    fitted_for = int(projection.params.get("collection", count))
    if count >= GROWTH_ADVICE * max(1, fitted_for):
        return (f"the projection was fitted when the index had {fitted_for} images; it has {count} now: "
                "'cbir index FOLDER --refit' fits it again")
    return None
