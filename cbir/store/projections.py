"""The Store's compact vectors: the projection that makes them, the vectors and their augmented (DBA) versions."""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
from sqlalchemy import LargeBinary, bindparam, func, insert, literal, select, update
from sqlalchemy.engine import Engine

from cbir.store.encoding import (
    PENDING,
    histograms_from_bytes,
    is_pending,
    pending_search_vector,
    vector_to_bytes,
    vectors_from_bytes,
)
from cbir.store.engine import now
from cbir.store.schema import ImageRow, MetaRow, ProjectionRow
from cbir.store.statements import bump_generation, image_pages, set_meta


class ProjectionsPart:
    """Compact vectors of :class:`cbir.store.Store` (a part of it, not used alone)."""

    engine: Engine

    def save_projection(self, codebook_id: int, mean: bytes, components: bytes, params: dict, fingerprint: str) -> int:
        """Store a newly fitted projection, make it the active one, and return its id.

        Rows keep their old vectors (marked with the old projection id) until re-projected.
        """
        with self.engine.begin() as conn:
            result = conn.execute(insert(ProjectionRow).values(
                codebook_id=codebook_id, mean=mean, components=components, fingerprint=fingerprint,
                params=json.dumps(params, sort_keys=True), created_at=now(),
            ))
            projection_id = int(result.inserted_primary_key[0])  # type: ignore[index]
            set_meta(conn, "projection", str(projection_id))
            bump_generation(conn)
        return projection_id

    def projection_row(self) -> tuple[int, bytes, bytes, dict, str] | None:
        """The active projection as (id, mean bytes, components bytes, params, fingerprint), or None."""
        with self.engine.connect() as conn:
            active = conn.execute(select(MetaRow.value).where(MetaRow.key == "projection")).scalar()
            if active is None:
                return None
            row = conn.execute(select(ProjectionRow).where(ProjectionRow.id == int(active))).first()
        if row is None:
            return None
        return row.id, row.mean, row.components, json.loads(row.params), row.fingerprint

    def projected_count(self, projection_id: int) -> int:
        """Number of images whose stored vector was made by ``projection_id``."""
        with self.engine.connect() as conn:
            query = select(func.count()).select_from(ImageRow).where(ImageRow.projection_id == int(projection_id))
            return int(conn.execute(query).scalar() or 0)

    def iter_unprojected(self, projection_id: int, *, batch: int = 2000) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(ids, histograms) batches of the images without a vector of ``projection_id``, in id order."""
        stale = (ImageRow.projection_id.is_(None)) | (ImageRow.projection_id != int(projection_id))
        for rows in image_pages(self.engine, [ImageRow.id, ImageRow.histogram], stale, batch=batch):
            ids = np.fromiter((r.id for r in rows), dtype=np.int64, count=len(rows))
            yield ids, histograms_from_bytes([r.histogram for r in rows])

    def set_vectors(self, projection_id: int, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Store the compact vectors (n, m) of images ``ids`` (n,) in one transaction (their augmented ones cleared)."""
        params = [{"row_id": int(i), "vector": vector_to_bytes(v), "projection_id": int(projection_id),
                   "search_vector": pending_search_vector(len(v))} for i, v in zip(ids, vectors)]
        if not params:
            return
        statement = (update(ImageRow).where(ImageRow.id == bindparam("row_id"))
                     .values(vector=bindparam("vector"), projection_id=bindparam("projection_id"),
                             search_vector=bindparam("search_vector")))
        with self.engine.begin() as conn:
            conn.execute(statement.execution_options(synchronize_session=False), params)
            bump_generation(conn)

    def set_search_vectors(self, ids: np.ndarray, vectors: np.ndarray | None, *, augment: str | None = None) -> None:
        """Store the augmented search vectors (n, m) of images ``ids`` (n,), or clear them (None), in one transaction.

        ``augment``, when given, is recorded as the ``augment`` meta value in the same transaction.
        """
        params = [{"row_id": int(i), "search_vector": None if vectors is None else vector_to_bytes(vectors[n])}
                  for n, i in enumerate(ids)]
        statement = (update(ImageRow).where(ImageRow.id == bindparam("row_id"))
                     .values(search_vector=bindparam("search_vector")))
        with self.engine.begin() as conn:
            if params:
                conn.execute(statement.execution_options(synchronize_session=False), params)
            if augment is not None:
                set_meta(conn, "augment", augment)
            bump_generation(conn)

    def unaugmented_ids(self, projection_id: int) -> np.ndarray:
        """Ids of the images projected by ``projection_id`` that have no augmented search vector, in id order.

        Not augmented: NULL, or the pending slot of :func:`pending_search_vector` (odd length, tag 0).
        """
        column = ImageRow.search_vector
        pending = (func.length(column) % 2 == 1) & (func.substr(column, 1, 1) == literal(PENDING, LargeBinary))
        query = (select(ImageRow.id).where((ImageRow.projection_id == int(projection_id))
                                           & (column.is_(None) | pending)).order_by(ImageRow.id))
        with self.engine.connect() as conn:
            return np.fromiter(conn.execute(query).scalars(), dtype=np.int64)

    def iter_vectors(
        self, projection_id: int, *, batch: int = 50_000, augmented: bool = False,
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(ids, vectors float32 (b, m)) batches of every image projected by ``projection_id``, in id order.

        ``augmented``: each image's augmented search vector where it has one, else its plain vector.
        """
        columns = [ImageRow.id, ImageRow.vector] + ([ImageRow.search_vector] if augmented else [])
        for rows in image_pages(self.engine, columns, ImageRow.projection_id == int(projection_id), batch=batch):
            ids = np.fromiter((r.id for r in rows), dtype=np.int64, count=len(rows))
            if augmented:
                yield ids, vectors_from_bytes([r.vector if is_pending(r.search_vector) else r.search_vector
                                               for r in rows])
            else:
                yield ids, vectors_from_bytes([r.vector for r in rows])

    def sample_ids(self, n: int, *, seed: int) -> np.ndarray:
        """Ids (sorted) of at most ``n`` images drawn with ``seed`` (all of them when fewer)."""
        with self.engine.connect() as conn:
            ids = np.fromiter(conn.execute(select(ImageRow.id).order_by(ImageRow.id)).scalars(), dtype=np.int64)
        if len(ids) > n:
            ids = np.sort(np.random.default_rng(seed).choice(ids, size=n, replace=False))
        return ids
