"""The Store: one index's database, opened and checked, its writer lock and its codebook.

Its reads, writes, roots, videos and compact vectors are parts of the class kept in
modules of their own (:mod:`cbir.store.reads`, ``writes``, ``roots``, ``videos``,
``projections``); this module puts them together and holds what they share.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from sqlalchemy import create_engine, event, insert, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from cbir.codebook import Codebook
from cbir.errors import CodebookMismatchError, StoreError
from cbir.store.engine import DEFAULT_DB, cache_dir, is_sqlite, now, resolve_url, short_error, sqlite_pragmas
from cbir.store.postgres import LOCK_KEY, lz4_histograms
from cbir.store.projections import ProjectionsPart
from cbir.store.reads import ReadsPart
from cbir.store.roots import RootsPart
from cbir.store.schema import CodebookRow, check_schema, create_tables
from cbir.store.statements import bump_generation, set_meta
from cbir.store.videos import VideosPart
from cbir.store.writes import WritesPart


class Store(ReadsPart, WritesPart, ProjectionsPart, RootsPart, VideosPart):
    """The database of an index: codebook, one row per image, failures.

    Parameters
    ----------
    db : str or path
        A SQLite file path or a SQLAlchemy URL.
    create : bool
        Create the file and tables if missing; otherwise a missing index is an error.

    Raises
    ------
    StoreError
        If the database does not exist (and ``create`` is false), cannot be
        opened, or is not a cbir store.
    """

    def __init__(self, db: str | os.PathLike[str] = DEFAULT_DB, *, create: bool = False) -> None:
        self.url = resolve_url(db)
        self.display = os.fspath(db)
        self._video_table = False  # whether the video_frames table is known to exist
        if is_sqlite(self.url):
            file = Path(self.url.removeprefix("sqlite:///"))
            self.path: Path | None = file
            if not create and not file.exists():
                raise StoreError(f"no index at {file}; run 'cbir index FOLDER --db {db}' first")
            if create:
                file.parent.mkdir(parents=True, exist_ok=True)
        else:
            self.path = None
        try:
            self.engine: Engine = create_engine(self.url, future=True)
        except (ArgumentError, ImportError, SQLAlchemyError) as exc:
            raise StoreError(f"cannot open database {self.display!r}: {exc}") from None
        if is_sqlite(self.url):
            event.listen(self.engine, "connect", sqlite_pragmas)
        try:
            if create:
                create_tables(self.engine, self.display)
                if not is_sqlite(self.url):
                    lz4_histograms(self.engine)
            check_schema(self.engine, self.display)
        except SQLAlchemyError as exc:
            self.engine.dispose()
            raise StoreError(f"cannot open database {self.display!r}: {short_error(exc)}") from None
        except StoreError:
            self.engine.dispose()
            raise

    def close(self) -> None:
        """Release the connection pool."""
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def derived_path(self, suffix: str) -> Path:
        """Where a file derived from this store lives: beside a SQLite file, else in the user cache."""
        if self.path is not None:
            return self.path.with_name(f"{self.path.name}.{suffix}")
        key = hashlib.sha1(self.url.encode()).hexdigest()[:16]
        return cache_dir() / f"{key}.{suffix}"

    @contextmanager
    def writer_lock(self) -> Iterator[None]:
        """Hold the single-writer lock for an index run, or fail at once if another run holds it.

        Raises
        ------
        StoreError
            "database is busy" when another ``cbir index`` is writing to this store.
        """
        busy = f"database is busy: another 'cbir index' is writing to {self.display}; try again when it ends"
        if self.path is not None:
            handle = open(self.derived_path("lock"), "a+")
            try:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    raise StoreError(busy) from None
                yield
            finally:
                handle.close()
            return
        with self.engine.connect() as conn:
            if not conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": LOCK_KEY}).scalar():
                raise StoreError(busy)
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": LOCK_KEY})
                conn.commit()

    # --- codebook -----------------------------------------------------------------
    def codebook(self) -> tuple[int, Codebook, str] | None:
        """The index's codebook as (id, codebook, layout), or None before the first run."""
        with self.engine.connect() as conn:
            row = conn.execute(select(CodebookRow).order_by(CodebookRow.id.desc()).limit(1)).first()
        if row is None:
            return None
        centers = np.frombuffer(row.centers, dtype="<f4").reshape(row.n_colors, 3)
        return row.id, Codebook(centers=centers, params=json.loads(row.params)), row.layout

    def save_codebook(self, codebook: Codebook, layout: str) -> int:
        """Store the codebook of a new index and return its id.

        Raises
        ------
        CodebookMismatchError
            If the index already has a different codebook.
        """
        existing = self.codebook()
        if existing is not None:
            if existing[1].fingerprint != codebook.fingerprint or existing[2] != layout:
                raise CodebookMismatchError(
                    f"{self.display} already has a {existing[1].n_colors}-color codebook "
                    f"({existing[2]} layout); use a new database to index with another"
                )
            return existing[0]
        with self.engine.begin() as conn:
            result = conn.execute(
                insert(CodebookRow).values(
                    n_colors=codebook.n_colors,
                    layout=layout,
                    centers=codebook.centers.astype("<f4").tobytes(),
                    fingerprint=codebook.fingerprint,
                    params=codebook.params_json(),
                    created_at=now(),
                )
            )
            return int(result.inserted_primary_key[0])  # type: ignore[index]

    # The generation counter and meta values, in a caller's transaction (indexer.repack bumps the generation).
    _bump = staticmethod(bump_generation)
    _set_meta = staticmethod(set_meta)
