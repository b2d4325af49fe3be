"""Where a store lives and how it is opened: URLs, SQLite settings, the cache folder for derived files."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from cbir.errors import StoreError

DEFAULT_DB = "cbir.db"


def cache_dir() -> Path:
    """Where derived files shared between indexes live: ``$CBIR_CACHE``, else ``$XDG_CACHE_HOME/cbir``."""
    base = os.environ.get("CBIR_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cbir"
    path = Path(base)
    path.mkdir(parents=True, exist_ok=True)
    return path


def now() -> dt.datetime:
    """The time rows are stamped with: UTC, naive (both engines store it as given)."""
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def resolve_url(db: str | os.PathLike[str]) -> str:
    """A SQLAlchemy URL for ``db``: URLs pass through, anything else is a SQLite file path."""
    text = os.fspath(db)
    if "://" in text:
        try:
            url = make_url(text)
        except ArgumentError:
            raise StoreError(f"not a database URL: {text!r}") from None
        if url.drivername in ("postgresql", "postgres"):
            url = url.set(drivername="postgresql+psycopg")
        return url.render_as_string(hide_password=False)
    return f"sqlite:///{Path(text).expanduser().resolve()}"


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    """Connection settings of a SQLite store: WAL (searches run while an index run writes), waits, foreign keys."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def short_error(exc: BaseException) -> str:
    """The first line of a database error, for a one-line message."""
    text = str(getattr(exc, "orig", None) or exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__
