"""The store: SQLAlchemy models and the only SQL code. The source of truth.

A SQLite file by default (WAL, short transactions, so searches run while an index
run writes); any SQLAlchemy URL, e.g. ``postgresql://user@host/dbname``, works too.
Histograms are stored sparse and compact vectors as float16 (:mod:`cbir.store.encoding`);
each row holds its compact vector under the projection that made it (:mod:`cbir.projection`),
and a search vector slot of the same size, written at insert time, so that DBA's later
UPDATE rewrites it in place (no row growth, no page splits). Nothing is pickled.

Modules: ``database`` (the :class:`Store`, put together from ``reads``, ``writes``,
``projections``, ``roots`` and ``videos``), ``schema`` (tables, version, upgrades),
``records`` (what the store hands out and takes in), ``encoding`` (blobs), ``engine``
(URLs, SQLite settings), ``statements`` (SQL the parts share), ``postgres`` (COPY,
lz4, the advisory lock).
"""

from cbir.errors import CodebookMismatchError, StoreError
from cbir.store.database import Store
from cbir.store.encoding import (
    RESERVED_DIMENSIONS,
    as_stored,
    as_stored_vectors,
    histogram_from_bytes,
    histogram_to_bytes,
    pending_search_vector,
    vector_to_bytes,
    vectors_from_bytes,
)
from cbir.store.engine import DEFAULT_DB, cache_dir, is_sqlite, resolve_url
from cbir.store.records import Failure, FileState, ImageFacts, ImageRecord, VideoFrame, VideoState
from cbir.store.schema import (
    SCHEMA_VERSION,
    Base,
    CodebookRow,
    FailureRow,
    ImageRow,
    MetaRow,
    ProjectionRow,
    RootRow,
    VideoFrameRow,
)

__all__ = [
    "DEFAULT_DB",
    "RESERVED_DIMENSIONS",
    "SCHEMA_VERSION",
    "Base",
    "CodebookMismatchError",
    "CodebookRow",
    "Failure",
    "FailureRow",
    "FileState",
    "ImageFacts",
    "ImageRecord",
    "ImageRow",
    "MetaRow",
    "ProjectionRow",
    "RootRow",
    "Store",
    "StoreError",
    "VideoFrame",
    "VideoFrameRow",
    "VideoState",
    "as_stored",
    "as_stored_vectors",
    "cache_dir",
    "histogram_from_bytes",
    "histogram_to_bytes",
    "is_sqlite",
    "pending_search_vector",
    "resolve_url",
    "vector_to_bytes",
    "vectors_from_bytes",
]
