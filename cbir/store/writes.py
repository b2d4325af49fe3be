"""The Store's writes of an index run: one batch of added, changed, moved and removed images in one transaction."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, insert, update
from sqlalchemy.engine import Engine

from cbir.store.engine import is_sqlite, now
from cbir.store.postgres import copy_images
from cbir.store.records import Failure, ImageRecord
from cbir.store.schema import FailureRow, ImageRow
from cbir.store.statements import bump_generation, image_values


class WritesPart:
    """Batch writes of :class:`cbir.store.Store` (a part of it, not used alone)."""

    engine: Engine
    url: str

    def write_batch(
        self,
        *,
        codebook_id: int,
        added: Sequence[ImageRecord] = (),
        updated: Sequence[tuple[int, ImageRecord]] = (),
        moved: Sequence[tuple[int, str, float]] = (),
        touched: Sequence[tuple[int, float]] = (),
        removed: Sequence[int] = (),
        failed: Sequence[Failure] = (),
        projection_id: int | None = None,
    ) -> None:
        """Apply one batch of changes in a single transaction.

        Parameters
        ----------
        added : new images.
        updated : (id, record) for images whose content changed in place.
        moved : (id, new_path, new_mtime) for renamed or moved files (same content).
        touched : (id, new_mtime) for files whose mtime changed but content did not.
        removed : ids of images whose files are gone.
        failed : files that could not be indexed; they replace earlier failures of the same path.
        projection_id : the projection that made the records' vectors (records without one get none).
        """
        stamp = now()
        changes = bool(added or updated or moved or removed)
        with self.engine.begin() as conn:
            paths_done = [r.path for r in added] + [r.path for _, r in updated] + [p for _, p, _ in moved]
            failed_paths = [f.path for f in failed]
            for start in range(0, len(paths_done + failed_paths), 500):
                chunk = (paths_done + failed_paths)[start : start + 500]
                conn.execute(delete(FailureRow).where(FailureRow.path.in_(chunk)))
            if removed:
                for start in range(0, len(removed), 500):
                    conn.execute(delete(ImageRow).where(ImageRow.id.in_([int(i) for i in removed[start : start + 500]])))
            for image_id, new_path, mtime in moved:
                conn.execute(update(ImageRow).where(ImageRow.id == image_id).values(path=new_path, mtime=mtime))
            for image_id, mtime in touched:
                conn.execute(update(ImageRow).where(ImageRow.id == image_id).values(mtime=mtime))
            for image_id, record in updated:
                conn.execute(
                    update(ImageRow).where(ImageRow.id == image_id)
                    .values(**image_values(record, codebook_id, stamp, projection_id))
                )
            if added and not is_sqlite(self.url):
                copy_images(conn, [image_values(r, codebook_id, stamp, projection_id) for r in added])
            elif added:
                conn.execute(insert(ImageRow), [image_values(r, codebook_id, stamp, projection_id) for r in added])
            if failed:
                conn.execute(
                    insert(FailureRow),
                    [{"path": f.path, "size": f.size, "mtime": f.mtime, "reason": f.reason, "failed_at": stamp}
                     for f in failed],
                )
            if changes:
                bump_generation(conn)

    def remove_failures(self, paths: Sequence[str]) -> None:
        """Forget failures of files that no longer exist."""
        with self.engine.begin() as conn:
            for start in range(0, len(paths), 500):
                conn.execute(delete(FailureRow).where(FailureRow.path.in_(list(paths[start : start + 500]))))
