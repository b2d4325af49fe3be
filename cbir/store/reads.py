"""The Store's reads of images and failures: counts, states for change detection, histograms, listings."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from cbir.errors import StoreError
from cbir.store.encoding import histogram_from_bytes, histograms_from_bytes
from cbir.store.records import Failure, FileState, ImageFacts
from cbir.store.schema import FailureRow, ImageRow, MetaRow
from cbir.store.statements import image_pages, inside


class ReadsPart:
    """Reads of :class:`cbir.store.Store` (a part of it, not used alone)."""

    engine: Engine
    display: str

    def meta(self, key: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(select(MetaRow.value).where(MetaRow.key == key)).scalar()

    def generation(self) -> int:
        """A counter bumped by every write that changes the images; stamps derived data."""
        with self.engine.connect() as conn:
            return int(conn.execute(select(MetaRow.value).where(MetaRow.key == "generation")).scalar() or 0)

    def count(self) -> int:
        """Number of indexed images."""
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(ImageRow)).scalar() or 0)

    def failure_count(self) -> int:
        """Number of files recorded as unreadable."""
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(FailureRow)).scalar() or 0)

    def failures(self) -> list[Failure]:
        """Every recorded failure, by path."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(FailureRow).order_by(FailureRow.path)).all()
        return [Failure(r.path, r.size, r.mtime, r.reason) for r in rows]

    def file_states(self, *, under: str | None = None) -> dict[str, FileState]:
        """Path -> state of every indexed image (only those inside folder ``under`` if given)."""
        query = select(ImageRow.id, ImageRow.path, ImageRow.size, ImageRow.mtime, ImageRow.content_hash,
                       ImageRow.phash.is_not(None).label("hashed"))
        if under is not None:
            query = query.where(inside(ImageRow.path, under))
        with self.engine.connect() as conn:
            return {r.path: FileState(r.id, r.path, r.size, r.mtime, r.content_hash, bool(r.hashed))
                    for r in conn.execute(query)}

    def perceptual_hashes(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids (n,), hashes (n,) int64) of every image that has a perceptual hash, in id order."""
        query = select(ImageRow.id, ImageRow.phash).where(ImageRow.phash.is_not(None)).order_by(ImageRow.id)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return (np.fromiter((r.id for r in rows), dtype=np.int64, count=len(rows)),
                np.fromiter((r.phash for r in rows), dtype=np.int64, count=len(rows)))

    def failure_states(self, *, under: str | None = None) -> dict[str, tuple[int, float]]:
        """Path -> (size, mtime) of every recorded failure (inside ``under`` if given), so unchanged bad files are not retried."""
        query = select(FailureRow.path, FailureRow.size, FailureRow.mtime)
        if under is not None:
            query = query.where(inside(FailureRow.path, under))
        with self.engine.connect() as conn:
            return {r.path: (r.size, r.mtime) for r in conn.execute(query)}

    def iter_histograms(self, *, batch: int = 50_000) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """All histograms in id order, as (ids (b,), histograms (b, d) float32) batches."""
        for rows in image_pages(self.engine, [ImageRow.id, ImageRow.histogram], batch=batch):
            yield (np.fromiter((r.id for r in rows), dtype=np.int64, count=len(rows)),
                   histograms_from_bytes([r.histogram for r in rows]))

    def all_histograms(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids (n,), histograms (n, d)) of every image, in id order."""
        count, batch, last = self.count(), 50_000, -1
        ids, out, filled = np.empty(count, np.int64), None, 0
        while filled < count:  # decoded straight into one matrix: no batches to concatenate
            query = select(ImageRow.id, ImageRow.histogram).where(ImageRow.id > last).order_by(ImageRow.id).limit(batch)
            with self.engine.connect() as conn:
                rows = conn.execute(query).all()
            if not rows or filled + len(rows) > count:
                break  # the index changed meanwhile: read it again the plain way
            blobs = [r.histogram for r in rows]
            if out is None:
                out = np.zeros((count, len(histograms_from_bytes(blobs[:1])[0])), np.float32)
            ids[filled : filled + len(rows)] = [r.id for r in rows]
            histograms_from_bytes(blobs, out[filled : filled + len(rows)])
            filled += len(rows)
            last = int(ids[filled - 1])
        if out is not None and filled == count:
            return ids, out
        parts = list(self.iter_histograms())
        if not parts:
            return np.empty(0, dtype=np.int64), np.empty((0, 0), dtype=np.float32)
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def histograms(self, ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """Histograms of the given ids, in that order, shape (len(ids), d)."""
        wanted = [int(i) for i in ids]
        found: dict[int, np.ndarray] = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            with self.engine.connect() as conn:
                for r in conn.execute(select(ImageRow.id, ImageRow.histogram).where(ImageRow.id.in_(chunk))):
                    found[r.id] = histogram_from_bytes(r.histogram)
        missing = [i for i in wanted if i not in found]
        if missing:
            raise StoreError(f"image ids {missing[:5]} are not in {self.display}")
        return np.stack([found[i] for i in wanted]) if wanted else np.empty((0, 0), np.float32)

    def paths(self, ids: Iterable[int]) -> dict[int, str]:
        """Id -> path for the given ids (unknown ids are left out)."""
        return {i: facts.path for i, facts in self.facts(ids).items()}

    def facts(self, ids: Iterable[int]) -> dict[int, ImageFacts]:
        """Id -> what a listing shows for the given ids (unknown ids are left out), 500 ids per query."""
        wanted, out = [int(i) for i in ids], {}
        columns = (ImageRow.id, ImageRow.path, ImageRow.size, ImageRow.mtime, ImageRow.width, ImageRow.height)
        for start in range(0, len(wanted), 500):
            with self.engine.connect() as conn:
                rows = conn.execute(select(*columns).where(ImageRow.id.in_(wanted[start : start + 500])))
                out.update({r.id: ImageFacts(r.id, r.path, r.size, r.mtime, r.width, r.height) for r in rows})
        return out

    def image_page(self, *, before: int | None = None, limit: int = 100) -> list[ImageFacts]:
        """Up to ``limit`` images newest first (id descending), only ids below ``before`` if given.

        Keyset paging: each page is one range read on the primary key, so the 1,000th page
        costs what the first does (an OFFSET would scan every row before it).
        """
        query = (
            select(ImageRow.id, ImageRow.path, ImageRow.size, ImageRow.mtime, ImageRow.width, ImageRow.height)
            .order_by(ImageRow.id.desc())
            .limit(max(0, int(limit)))
        )
        if before is not None:
            query = query.where(ImageRow.id < int(before))
        with self.engine.connect() as conn:
            return [ImageFacts(r.id, r.path, r.size, r.mtime, r.width, r.height) for r in conn.execute(query)]

    def image(self, image_id: int) -> ImageRow | None:
        """The full row of one image, or None."""
        with self.engine.connect() as conn:
            return conn.execute(select(ImageRow).where(ImageRow.id == int(image_id))).first()  # type: ignore[return-value]

    def id_of_path(self, path: str) -> int | None:
        """Row id of an indexed path, or None."""
        with self.engine.connect() as conn:
            return conn.execute(select(ImageRow.id).where(ImageRow.path == path)).scalar()
