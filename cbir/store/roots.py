"""The Store's roots: the folders an index covers, and forgetting one with everything inside it."""

from __future__ import annotations

from sqlalchemy import delete, func, insert, inspect, select
from sqlalchemy.engine import Engine

from cbir.errors import StoreError
from cbir.store.engine import now
from cbir.store.schema import Base, FailureRow, ImageRow, RootRow
from cbir.store.statements import bump_generation, inside


class RootsPart:
    """Roots of :class:`cbir.store.Store` (a part of it, not used alone)."""

    engine: Engine
    display: str

    def root_paths(self) -> list[str]:
        """The recorded root folders, sorted (empty for an index made before roots were recorded)."""
        with self.engine.connect() as conn:
            if not inspect(conn).has_table(RootRow.__tablename__):
                return []
            return list(conn.execute(select(RootRow.path).order_by(RootRow.path)).scalars())

    def roots(self) -> dict[str, int]:
        """Root folder -> number of indexed images inside it, by path (a scan of the rows per root)."""
        paths = self.root_paths()
        with self.engine.connect() as conn:
            return {
                path: int(conn.execute(
                    select(func.count()).select_from(ImageRow).where(inside(ImageRow.path, path))
                ).scalar() or 0)
                for path in paths
            }

    def add_root(self, folder: str) -> None:
        """Record ``folder`` (absolute) as a root, unless a root holds it already; roots inside it merge into it."""
        if any(folder == root or folder.startswith(root.rstrip("/") + "/") for root in self.root_paths()):
            return
        with self.engine.begin() as conn:
            Base.metadata.create_all(conn, tables=[Base.metadata.tables[RootRow.__tablename__]])  # none before roots
            conn.execute(delete(RootRow).where(inside(RootRow.path, folder)))
            conn.execute(delete(RootRow).where(RootRow.path == folder))
            conn.execute(insert(RootRow).values(path=folder, added_at=now()))

    def remove_root(self, folder: str) -> int:
        """Forget root ``folder``: its row, and every image and failure inside it, in one transaction.

        Returns
        -------
        int
            The number of image rows dropped.

        Raises
        ------
        StoreError
            If ``folder`` is not a root of this index.
        """
        roots = self.root_paths()
        if folder not in roots:
            known = ", ".join(roots) or "none recorded"
            raise StoreError(f"{folder} is not a root of {self.display} (roots: {known})")
        with self.engine.begin() as conn:
            dropped = conn.execute(delete(ImageRow).where(inside(ImageRow.path, folder))).rowcount
            conn.execute(delete(FailureRow).where(inside(FailureRow.path, folder)))
            conn.execute(delete(RootRow).where(RootRow.path == folder))
            if dropped:
                bump_generation(conn)
        return int(dropped)
