"""SQL pieces the parts of the Store share: the generation counter, meta values, paths inside a folder, an image row's values."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from sqlalchemy import Integer, Text, cast, func, insert, select, update

from cbir.store.encoding import RESERVED_DIMENSIONS, histogram_to_bytes, pending_search_vector, vector_to_bytes
from cbir.store.records import ImageRecord
from cbir.store.schema import ImageRow, MetaRow


def bump_generation(conn) -> None:  # type: ignore[no-untyped-def]
    """Add one to the generation counter that stamps derived data, in the caller's transaction."""
    conn.execute(update(MetaRow).where(MetaRow.key == "generation")
                 .values(value=cast(cast(MetaRow.value, Integer) + 1, Text)))


def set_meta(conn, key: str, value: str) -> None:  # type: ignore[no-untyped-def]
    """Set meta value ``key``, in the caller's transaction."""
    if conn.execute(select(MetaRow.value).where(MetaRow.key == key)).first() is None:
        conn.execute(insert(MetaRow).values(key=key, value=value))
    else:
        conn.execute(update(MetaRow).where(MetaRow.key == key).values(value=value))


def image_pages(engine, columns: list, where=None, *, batch: int) -> Iterator[list]:  # type: ignore[no-untyped-def]
    """Image rows of ``columns`` (which include ``ImageRow.id``) matching ``where``, in id order, ``batch`` at a
    time: keyset paging, so every page costs the same, and the caller may rewrite a page before the next is read."""
    last = -1
    while True:
        after = ImageRow.id > last
        query = select(*columns).where(after if where is None else where & after).order_by(ImageRow.id).limit(batch)
        with engine.connect() as conn:
            rows = conn.execute(query).all()
        if not rows:
            return
        yield rows
        last = rows[-1].id


def inside(column, folder: str):  # type: ignore[no-untyped-def]
    """SQL condition: the path in ``column`` lies inside ``folder``. A prefix compared with substr, which
    both engines count in characters; LIKE would need escaping and is case-blind on SQLite."""
    prefix = folder.rstrip("/") + "/"
    return func.substr(column, 1, len(prefix)) == prefix


def image_values(record: ImageRecord, codebook_id: int, now: dt.datetime, projection_id: int | None) -> dict:
    """The column values of ``record``'s row (its vector only with the projection that made it, else empty slots)."""
    projected = record.vector is not None and projection_id is not None
    # Not projected yet (projection_id NULL: the vector's bytes mean nothing): slots of the size the projection
    # will most likely fill, so set_vectors and DBA rewrite the row in place instead of growing it.
    slot = pending_search_vector(len(record.vector) if projected else RESERVED_DIMENSIONS)  # type: ignore[arg-type]
    return {
        "vector": vector_to_bytes(record.vector) if projected else slot,  # type: ignore[arg-type]
        "projection_id": projection_id if projected else None,
        "search_vector": slot,
        "path": record.path,
        "size": record.size,
        "mtime": record.mtime,
        "content_hash": record.content_hash,
        "width": record.width,
        "height": record.height,
        "histogram": histogram_to_bytes(record.histogram),
        "phash": record.phash,
        "codebook_id": codebook_id,
        "indexed_at": now,
    }
