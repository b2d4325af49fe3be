"""The tables (SQLAlchemy models), the schema version, and bringing an older index up to it."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    inspect,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from cbir.errors import StoreError
from cbir.store.engine import short_error

SCHEMA_VERSION = 4
#: Schema versions this code opens, upgrading them in place (1: no compact vectors, dense histograms;
#: 3: no perceptual hashes, filled by the next index run).
_UPGRADABLE = (1, 2, 3)


class Base(DeclarativeBase):
    pass


class CodebookRow(Base):
    __tablename__ = "codebooks"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    n_colors: Mapped[int] = mapped_column(Integer)
    layout: Mapped[str] = mapped_column(String(64))
    centers: Mapped[bytes] = mapped_column(LargeBinary)
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    params: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column()


class ImageRow(Base):
    __tablename__ = "images"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(Text, unique=True)
    size: Mapped[int] = mapped_column(BigInteger)
    mtime: Mapped[float] = mapped_column(Float)
    content_hash: Mapped[str] = mapped_column(String(64), index=True)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    histogram: Mapped[bytes] = mapped_column(LargeBinary)
    codebook_id: Mapped[int] = mapped_column(ForeignKey("codebooks.id"))
    indexed_at: Mapped[dt.datetime] = mapped_column()
    #: The compact vector (:func:`cbir.store.encoding.vector_to_bytes`) and the projection that made it; until
    #: projected (projection_id NULL) a reserved slot of :data:`cbir.store.encoding.RESERVED_DIMENSIONS` (NULL in
    #: rows of older indexes).
    vector: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    projection_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    #: The augmented search vector (DBA, :mod:`cbir.augment`) of ``vector``; NULL or a pending slot
    #: (:func:`cbir.store.encoding.pending_search_vector`, same size, so DBA's UPDATE rewrites it in place):
    #: search ``vector`` itself.
    search_vector: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    #: 64-bit perceptual hash (:mod:`cbir.perceptual`, signed); NULL in rows of an index made before it.
    phash: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class ProjectionRow(Base):
    __tablename__ = "projections"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    codebook_id: Mapped[int] = mapped_column(ForeignKey("codebooks.id"))
    mean: Mapped[bytes] = mapped_column(LargeBinary)
    components: Mapped[bytes] = mapped_column(LargeBinary)
    fingerprint: Mapped[str] = mapped_column(String(64))
    params: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column()


class FailureRow(Base):
    __tablename__ = "failures"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(Text, unique=True)
    size: Mapped[int] = mapped_column(BigInteger)
    mtime: Mapped[float] = mapped_column(Float)
    reason: Mapped[str] = mapped_column(Text)
    failed_at: Mapped[dt.datetime] = mapped_column()


class RootRow(Base):
    """A folder the index covers; a sync removes rows only under the folder it syncs."""

    __tablename__ = "roots"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(Text, unique=True)
    added_at: Mapped[dt.datetime] = mapped_column()


class VideoFrameRow(Base):
    """Marks an image row as the keyframe of a video's shot (its path is ``video#t=SECONDS``)."""

    __tablename__ = "video_frames"
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), primary_key=True)
    video: Mapped[str] = mapped_column(Text, index=True)
    seconds: Mapped[float] = mapped_column(Float)
    shot_start: Mapped[float] = mapped_column(Float)
    shot_end: Mapped[float] = mapped_column(Float)


class MetaRow(Base):
    __tablename__ = "meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


def create_tables(engine: Engine, display: str) -> None:
    """Create the tables of a new store (those missing in an existing one) and its meta rows.

    Raises
    ------
    StoreError
        If the database holds the tables of something else.
    """
    with engine.connect() as conn:
        tables = inspect(conn).get_table_names()
    if tables and MetaRow.__tablename__ not in tables:
        raise StoreError(f"{display} is a database of something else (tables {', '.join(tables[:5])}); "
                         "give cbir its own database")
    Base.metadata.create_all(engine)
    with engine.begin() as conn:
        if conn.execute(select(MetaRow.value).where(MetaRow.key == "schema")).first() is None:
            conn.execute(insert(MetaRow), [
                {"key": "schema", "value": str(SCHEMA_VERSION)},
                {"key": "generation", "value": "0"},
            ])


def check_schema(engine: Engine, display: str) -> None:
    """Make sure the database is a cbir store of this schema version, upgrading an older one in place.

    Raises
    ------
    StoreError
        If it is not a cbir store, or one of a version this code does not read.
    """
    with engine.connect() as conn:
        if not inspect(conn).has_table(MetaRow.__tablename__):
            raise StoreError(f"{display} is not a cbir index (no cbir tables)")
        version = conn.execute(select(MetaRow.value).where(MetaRow.key == "schema")).scalar()
    if version is not None and int(version) in _UPGRADABLE:
        _upgrade(engine, display, int(version))
        return
    if version is None or int(version) != SCHEMA_VERSION:
        raise StoreError(f"{display} has schema version {version}; this cbir reads {SCHEMA_VERSION}")


def _upgrade(engine: Engine, display: str, version: int) -> None:
    """Bring an older index to this version in one transaction: the new columns and a table.

    Its rows keep their dense histograms (still read) and get compact vectors (schema 1)
    and perceptual hashes (schemas 1-3) at the next ``cbir index`` run; until then searches
    rank exactly and ``cbir duplicates`` pairs those rows by colour alone.
    """
    binary = LargeBinary().compile(dialect=engine.dialect)
    try:
        with engine.begin() as conn:
            columns = {c["name"] for c in inspect(conn).get_columns(ImageRow.__tablename__)}
            if "vector" not in columns:
                conn.execute(text(f"ALTER TABLE images ADD COLUMN vector {binary}"))
            if "projection_id" not in columns:
                conn.execute(text("ALTER TABLE images ADD COLUMN projection_id INTEGER"))
                conn.execute(text("CREATE INDEX ix_images_projection_id ON images (projection_id)"))
            if "search_vector" not in columns:
                conn.execute(text(f"ALTER TABLE images ADD COLUMN search_vector {binary}"))
            if "phash" not in columns:
                conn.execute(text("ALTER TABLE images ADD COLUMN phash BIGINT"))
            ProjectionRow.__table__.create(conn, checkfirst=True)  # type: ignore[attr-defined]
            conn.execute(update(MetaRow).where(MetaRow.key == "schema").values(value=str(SCHEMA_VERSION)))
    except SQLAlchemyError as exc:
        raise StoreError(
            f"{display} was made by an older cbir (schema {version}) and could not be upgraded "
            f"({short_error(exc)}); make it writable, or index the folder again into a new --db"
        ) from None
