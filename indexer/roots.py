"""The folders an index covers, and the rule that no sync removes a root's rows by surprise.

An index may hold several roots (``cbir index ~/Pictures`` then ``cbir index
~/Downloads``); a sync removes rows only inside the folder it syncs. A sync that
finds that folder empty (an unmounted drive leaves an empty mount point), or that
would remove more than a share of its rows, stops before writing anything unless
the caller confirms with ``prune``.
"""

from __future__ import annotations

import os
from pathlib import Path

from cbir.errors import BadInputError, MassRemovalError
from cbir.store import Store

#: A sync may remove at most this share of a root's rows without ``prune``.
DEFAULT_MAX_REMOVAL_SHARE = 0.5


def root_path(folder: str | os.PathLike[str]) -> str:
    """The absolute, symlink-resolved path a root is recorded under (the folder need not exist)."""
    return str(Path(folder).expanduser().resolve())


def check_removals(
    folder: str | os.PathLike[str], *, found: int, indexed: int, gone: list[str], prune: bool, max_share: float,
) -> None:
    """Refuse a sync that would empty a root or remove more than ``max_share`` of its rows.

    Parameters
    ----------
    folder : path
        The folder being synced (named in the message).
    found : int
        Image files found in it now.
    indexed : int
        Rows the index holds inside it.
    gone : list of str
        Paths of those rows whose files are gone (the rows the sync would remove).
    prune : bool
        The caller confirmed the removals: nothing is refused.
    max_share : float
        In [0, 1]: the largest share of ``indexed`` removed without confirmation.

    Raises
    ------
    BadInputError
        If ``max_share`` is outside [0, 1].
    MassRemovalError
        If the sync would remove rows of an empty folder, or more than ``max_share`` of them,
        and ``prune`` is false.
    """
    if not 0.0 <= max_share <= 1.0:
        raise BadInputError(f"the share of rows a sync may remove must be in [0, 1], got {max_share}")
    if prune or not gone:
        return
    if found == 0:
        why = "it holds no image files now (is the drive mounted?)"
    elif len(gone) > max_share * indexed:
        why = f"more than {max_share:.0%} of them are gone, e.g. {gone[0]}"
    else:
        return
    raise MassRemovalError(
        f"{folder}: this sync would remove {len(gone)} of the {indexed} indexed images in it, because {why}; "
        "nothing was changed. If the files are gone for good, confirm with --prune (prune=True from Python)"
    )


def adopt_legacy_root(store: Store) -> None:
    """Give an index made before roots were recorded its one root: the folder common to all its rows.

    Such an index always held one folder (each sync removed everything outside it), so
    the common folder of its paths is that root, or inside it.
    """
    if store.root_paths() or not store.count():
        return
    folders = {os.path.dirname(path) for path in store.file_states()}
    store.add_root(os.path.commonpath(sorted(folders)))


def forget_root(store: Store, folder: str | os.PathLike[str]) -> tuple[str, int]:
    """Remove a root and every row inside it: (the root as recorded, rows removed).

    ``folder`` may be given as recorded or as any path that resolves to it (it need not exist).

    Raises
    ------
    StoreError
        If it is not a root of the index, or another index run holds the database.
    """
    with store.writer_lock():
        adopt_legacy_root(store)
        recorded = os.fspath(folder)
        if recorded not in store.root_paths():
            recorded = root_path(folder)
        return recorded, store.remove_root(recorded)
