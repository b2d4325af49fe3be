"""The exceptions cbir raises: one base class and a shallow tree under it."""

from __future__ import annotations


class CbirError(Exception):
    """Base class of every error cbir raises on purpose."""


class BadInputError(CbirError, ValueError):
    """A value given by the caller is out of range or of the wrong shape."""


class BadImageError(CbirError):
    """An image file cannot be read, is not an image, or is over the size limit."""

    def __init__(self, path: object, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


class StoreError(CbirError):
    """The database is missing, busy, or not a cbir store."""


class CodebookMismatchError(CbirError):
    """Histograms made with one codebook were compared or mixed with another's."""


class MassRemovalError(CbirError):
    """A sync would remove a whole root, or more than the allowed share of its rows: confirm with prune."""


class ClusterError(CbirError):
    """The Dask cluster cannot be reached, has no workers, or cannot run cbir's tasks."""


class BadVideoError(BadImageError):
    """A video file cannot be opened, has no decodable frame, or is truncated (a bad image, for indexing)."""
