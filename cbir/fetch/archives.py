"""Safe unpacking of tar, tar.gz and zip archives: only selected members, flat, under a size limit.

Every member is checked before anything is written: an absolute path, a ``..`` component, a
link whose target leaves the archive's folder, or a device, FIFO or socket entry refuses the
whole archive (zip-slip / tar-slip), whether or not the member would be extracted. Python's
``tarfile.data_filter`` is not used alone because it strips a leading ``/`` where the archive
should rather be refused, and zip files have no such filter.

Only regular files whose path matches a pattern are written, under the flat name the pattern
captures, by copying their bytes (never ``extractall``), so nothing lands outside the target
folder and no link or special file is ever created. The bytes written are counted as they are
written, not taken from the headers, so a bomb stops at the limit.
"""

from __future__ import annotations

import functools
import os
import re
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import IO

from cbir.errors import BadInputError

_CHUNK = 1 << 16


class UnsafeArchiveError(BadInputError):
    """An archive member would land outside the target, is a device or link out, or the archive is too big."""


class NotAnArchiveError(BadInputError):
    """The file is not a readable tar or zip archive (truncated, corrupt, or another format)."""


def _refuse(archive: object, name: str, reason: str) -> UnsafeArchiveError:
    return UnsafeArchiveError(f"{archive}: refused member {name!r}: {reason}")


def _check_name(archive: object, name: str) -> PurePosixPath:
    posix = name.replace("\\", "/")
    if posix.startswith("/") or re.match(r"^[A-Za-z]:", posix):
        raise _refuse(archive, name, "absolute path")
    path = PurePosixPath(posix)
    if ".." in path.parts:
        raise _refuse(archive, name, "path leaves the archive's folder (..)")
    return path


def _check_link(archive: object, name: str, path: PurePosixPath, target: str, *, hard: bool) -> None:
    target = target.replace("\\", "/")
    if target.startswith("/") or re.match(r"^[A-Za-z]:", target):
        raise _refuse(archive, name, f"link to an absolute path ({target})")
    # Symlinks resolve from the member's folder, hard links from the archive's root.
    base = [] if hard else list(path.parent.parts)
    depth = len(base)
    for part in PurePosixPath(target).parts:
        if part == "..":
            depth -= 1
            if depth < 0:
                raise _refuse(archive, name, f"link pointing outside the archive's folder ({target})")
        elif part != ".":
            depth += 1


def _tar_members(archive: Path, tar: tarfile.TarFile) -> Iterator[tuple[str, tarfile.TarInfo]]:
    for member in tar.getmembers():
        path = _check_name(archive, member.name)
        if member.ischr() or member.isblk() or member.isfifo() or not (
            member.isfile() or member.isdir() or member.issym() or member.islnk()
        ):
            raise _refuse(archive, member.name, "device or special file")
        if member.issym() or member.islnk():
            _check_link(archive, member.name, path, member.linkname, hard=member.islnk())
        yield str(path), member


def _zip_members(archive: Path, handle: zipfile.ZipFile) -> Iterator[tuple[str, zipfile.ZipInfo]]:
    for info in handle.infolist():
        path = _check_name(archive, info.filename)
        mode = info.external_attr >> 16
        if info.create_system == 3 and mode:  # made on Unix: the mode says what the entry is
            if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
                raise _refuse(archive, info.filename, "device or special file")
            if stat.S_ISLNK(mode):
                target = handle.read(info).decode("utf-8", "replace")
                _check_link(archive, info.filename, path, target, hard=False)
                continue  # a link is never extracted
        yield str(path), info


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: " + " ".join(str(exc).split())


@contextmanager
def _opened(archive: Path) -> Iterator[zipfile.ZipFile | tarfile.TarFile]:
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as handle:
                yield handle
        else:
            with tarfile.open(archive, "r:*") as tar:
                yield tar
    except (tarfile.TarError, zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
        raise NotAnArchiveError(f"{archive}: not a readable tar or zip archive ({_one_line(exc)})") from None


#: (member path, is a regular file, opens its bytes)
_Entry = tuple[str, bool, Callable[[], IO[bytes] | None]]


def _entries(archive: Path, handle: zipfile.ZipFile | tarfile.TarFile) -> list[_Entry]:
    """Every member, checked (this refuses a hostile archive before anything is written)."""
    if isinstance(handle, zipfile.ZipFile):
        return [(name, not info.is_dir(), functools.partial(handle.open, info))
                for name, info in _zip_members(archive, handle)]
    return [(name, member.isfile(), functools.partial(handle.extractfile, member))
            for name, member in _tar_members(archive, handle)]


def unpack(
    archive: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    *,
    pattern: str,
    max_bytes: int,
    progress: Callable[[int, int], None] | None = None,
) -> list[str]:
    """Copy the members of ``archive`` whose path matches ``pattern`` into ``dest``, flat.

    Parameters
    ----------
    archive : path
        A tar (plain or compressed) or zip file.
    dest : path
        An existing folder; files are written as ``dest/NAME`` with NAME the pattern's group 1.
    pattern : str
        A regular expression matched against the whole member path (``/``-separated).
    max_bytes : int
        Stop with an error once the files written add up to more than this (a bomb).
    progress : callable, optional
        ``progress(members_done, members_total)``.

    Returns
    -------
    list of str
        The names written, in archive order.

    Raises
    ------
    UnsafeArchiveError
        For a member with an absolute path or ``..``, a link out, a device file, a name that
        two members share, or more than ``max_bytes`` unpacked.
    NotAnArchiveError
        If the file is not a readable archive (truncated, corrupt, another format).
    """
    archive = Path(archive)
    dest = Path(dest)
    regex = re.compile(pattern)
    written: list[str] = []
    seen: set[str] = set()
    total_bytes = 0
    with _opened(archive) as handle:
        entries = _entries(archive, handle)
        for done, (name, regular, open_member) in enumerate(entries, 1):
            match = regex.fullmatch(name)
            if match is None or not regular:
                continue
            flat = match.group(1)
            if "/" in flat or flat in ("", ".", ".."):
                raise _refuse(archive, name, "the pattern must capture a plain file name")
            if flat in seen:
                raise _refuse(archive, name, f"a second member named {flat}")
            seen.add(flat)
            try:
                source = open_member()
                if source is None:
                    continue
                with source, open(dest / flat, "xb") as out:
                    while chunk := source.read(_CHUNK):
                        total_bytes += len(chunk)
                        if total_bytes > max_bytes:
                            raise UnsafeArchiveError(
                                f"{archive}: unpacks to more than {max_bytes:,} bytes (at {name}); "
                                "refused as a possible archive bomb"
                            )
                        out.write(chunk)
            except UnsafeArchiveError:
                raise
            except (tarfile.TarError, zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as exc:
                raise NotAnArchiveError(f"{archive}: cannot read member {name} ({_one_line(exc)})") from None
            written.append(flat)
            if progress is not None:
                progress(done, len(entries))
    return written
