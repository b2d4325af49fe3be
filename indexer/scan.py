"""Walk a folder for image files, safely: symlink loops, unreadable folders and odd names."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cbir.images import is_image_path
from cbir.store import Failure


@dataclass(frozen=True)
class FoundFile:
    """An image file on disk: absolute path, size in bytes, modification time."""

    path: str
    size: int
    mtime: float


def scan(folder: str | os.PathLike[str], *, accept: Callable[[str], bool] = is_image_path) -> tuple[list[FoundFile], list[Failure]]:
    """Every image file (or, with ``accept``, other file) under ``folder``, recursively, sorted by path.

    Symlinked folders are followed once (a loop is visited once); entries that
    cannot be listed or stat'ed are returned as failures with the reason.

    Returns
    -------
    files : list of FoundFile
    problems : list of Failure
    """
    root = Path(folder).expanduser().resolve()
    files: list[FoundFile] = []
    problems: list[Failure] = []
    seen_dirs: set[tuple[int, int]] = set()

    def walk_error(error: OSError) -> None:
        problems.append(Failure(str(error.filename), 0, 0.0, f"cannot list folder ({error.strerror})"))

    for dirpath, dirnames, filenames in os.walk(root, onerror=walk_error, followlinks=True):
        try:
            info = os.stat(dirpath)
        except OSError:
            dirnames[:] = []
            continue
        key = (info.st_dev, info.st_ino)
        if key in seen_dirs:  # a symlink loop or a second link to a folder already walked
            dirnames[:] = []
            continue
        seen_dirs.add(key)
        dirnames.sort()
        for name in filenames:
            if not accept(name):
                continue
            path = os.path.join(dirpath, name)
            try:
                stat = os.stat(path)
            except OSError as exc:
                problems.append(Failure(path, 0, 0.0, f"cannot stat file ({exc.strerror})"))
                continue
            if not os.path.isfile(path):
                continue
            files.append(FoundFile(path, int(stat.st_size), float(stat.st_mtime)))
    files.sort(key=lambda f: f.path)
    return files, problems
