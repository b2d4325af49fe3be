"""Rewrite histograms an older cbir stored dense (float32) in the sparse float16 encoding.

Schema-1 indexes hold every histogram as 3,840 dense float32 (15 KB a row); the upgrade
to schema 2 keeps them readable as they are. ``cbir index --refit`` calls
:func:`repack_dense_histograms` before it fits again, so the store shrinks to the sparse
layout (about 3.3 KB a Wang photo; the file itself shrinks after ``VACUUM``) and the
projection is fitted on the values searches read. Rows are rewritten in batches, one
transaction each (the store's generation moves with each, so derived indexes are rebuilt).
"""

from __future__ import annotations

from sqlalchemy import bindparam, func, update

from cbir.store import ImageRow, Store, histogram_from_bytes, histogram_to_bytes
from cbir.store.statements import image_pages


def repack_dense_histograms(store: Store, *, batch: int = 2000) -> int:
    """Re-encode every dense float32 histogram sparse (float16 values); returns how many rows were rewritten."""
    dense = (func.length(ImageRow.histogram) % 4) == 0  # sparse blobs are 3 + 4n bytes long
    statement = (update(ImageRow).where(ImageRow.id == bindparam("row_id"))
                 .values(histogram=bindparam("histogram")).execution_options(synchronize_session=False))
    done = 0
    for rows in image_pages(store.engine, [ImageRow.id, ImageRow.histogram], dense, batch=batch):
        params = [{"row_id": r.id, "histogram": histogram_to_bytes(histogram_from_bytes(r.histogram))} for r in rows]
        with store.engine.begin() as conn:
            conn.execute(statement, params)
            store._bump(conn)
        done += len(rows)
    return done
