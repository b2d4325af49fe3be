"""Resumable downloads over HTTP(S) (Range requests, through httpx2) and FTP (REST, through ftplib).

Bytes go to ``TARGET.part``; only a complete download is renamed to ``TARGET``. A download
that stops (connection lost, server gone) keeps its ``.part`` file, and the next call asks the
server for the rest only: ``Range: bytes=N-`` over HTTP, ``REST N`` over FTP. A server that
ignores the Range header (answers 200) is read again from the start.
"""

from __future__ import annotations

import ftplib
import os
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote, urlsplit

from cbir.errors import CbirError

#: ``progress(done_bytes, total_bytes_or_0)``.
Progress = Callable[[int, int], None]
_CHUNK = 1 << 16


class DownloadError(CbirError):
    """A download failed: the server refused, the connection dropped, or the size is wrong."""


def part_path(target: str | os.PathLike[str]) -> Path:
    """Where the bytes of an unfinished download of ``target`` are kept."""
    target = Path(target)
    return target.with_name(target.name + ".part")


def _http(url: str, part: Path, *, timeout: float, progress: Progress | None) -> None:
    import httpx2

    offset = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    try:
        with httpx2.stream("GET", url, headers=headers, timeout=timeout, follow_redirects=True) as response:
            if response.status_code == 416 and offset:
                # Nothing left to send: the .part file may be complete; the size check below decides.
                total = _content_range_total(response.headers.get("content-range", ""))
                if total == offset:
                    return
                part.unlink()
                raise DownloadError(f"{url}: the server refused to resume at byte {offset:,}; run again to restart")
            if response.status_code not in (200, 206):
                raise DownloadError(f"{url}: the server answered HTTP {response.status_code} {response.reason_phrase}")
            if response.status_code == 200:
                offset = 0  # Range ignored: start over
                length = response.headers.get("content-length")
                total = int(length) if length and length.isdigit() else 0
            else:
                total = _content_range_total(response.headers.get("content-range", ""))
                start = _content_range_start(response.headers.get("content-range", ""))
                if start != offset:
                    raise DownloadError(f"{url}: asked to resume at byte {offset:,}, the server sent from {start}")
            done = offset
            with open(part, "ab" if offset else "wb") as handle:
                if progress is not None:
                    progress(done, total)
                for chunk in response.iter_bytes(_CHUNK):
                    handle.write(chunk)
                    done += len(chunk)
                    if progress is not None:
                        progress(done, total)
    except httpx2.HTTPError as exc:
        have = part.stat().st_size if part.exists() else 0
        raise DownloadError(
            f"{url}: download stopped after {have:,} bytes ({type(exc).__name__}: {exc}); run again to resume"
        ) from None
    if total and done != total:
        raise DownloadError(f"{url}: got {done:,} of {total:,} bytes; run again to resume")


def _content_range_total(value: str) -> int:
    # "bytes 100-199/200" or "bytes */200"
    total = value.rpartition("/")[2].strip()
    return int(total) if total.isdigit() else 0


def _content_range_start(value: str) -> int:
    span = value.removeprefix("bytes").strip().partition("/")[0]
    start = span.partition("-")[0].strip()
    return int(start) if start.isdigit() else -1


def _ftp(url: str, part: Path, *, timeout: float, progress: Progress | None) -> None:
    parts = urlsplit(url)
    path = unquote(parts.path)
    offset = part.stat().st_size if part.exists() else 0
    try:
        with ftplib.FTP(timeout=timeout) as ftp:
            ftp.connect(parts.hostname or "", parts.port or 21)
            ftp.login(unquote(parts.username or "anonymous"), unquote(parts.password or "anonymous@"))
            ftp.voidcmd("TYPE I")
            try:
                total = ftp.size(path) or 0
            except ftplib.error_perm:
                total = 0
            if total and offset == total:
                return
            if total and offset > total:
                offset = 0
            done = offset
            with open(part, "ab" if offset else "wb") as handle:
                if progress is not None:
                    progress(done, total)

                def write(chunk: bytes) -> None:
                    nonlocal done
                    handle.write(chunk)
                    done += len(chunk)
                    if progress is not None:
                        progress(done, total)

                ftp.retrbinary(f"RETR {path}", write, blocksize=_CHUNK, rest=offset or None)
    except ftplib.error_perm as exc:
        raise DownloadError(f"{url}: the FTP server refused ({exc})") from None
    except (TimeoutError, ftplib.Error, OSError, EOFError) as exc:
        have = part.stat().st_size if part.exists() else 0
        raise DownloadError(
            f"{url}: download stopped after {have:,} bytes ({type(exc).__name__}: {exc}); run again to resume"
        ) from None
    if total and done != total:
        raise DownloadError(f"{url}: got {done:,} of {total:,} bytes; run again to resume")


def download(
    url: str,
    target: str | os.PathLike[str],
    *,
    retries: int = 3,
    timeout: float = 60.0,
    progress: Progress | None = None,
) -> Path:
    """Download ``url`` to ``target``, resuming an earlier partial download of it.

    Parameters
    ----------
    url : str
        ``http://``, ``https://`` or ``ftp://`` (anonymous unless the URL holds a user).
    target : path
        The finished file. Its parent folder must exist.
    retries : int
        Times to resume within this call after the connection drops (0: never).
    timeout : float
        Seconds to wait for the server at each step.
    progress : callable, optional
        ``progress(done_bytes, total_bytes)``; total is 0 when the server does not say.

    Returns
    -------
    Path
        ``target``.

    Raises
    ------
    DownloadError
        Unsupported scheme, a refusal, or a connection lost more than ``retries`` times;
        the bytes received so far stay in ``target.part`` for the next call.
    """
    target = Path(target)
    scheme = urlsplit(url).scheme.lower()
    if scheme in ("http", "https"):
        fetch = _http
    elif scheme == "ftp":
        fetch = _ftp
    else:
        raise DownloadError(f"{url}: cannot download {scheme or 'a plain path'}:// URLs (use http, https or ftp)")
    part = part_path(target)
    for attempt in range(retries + 1):
        try:
            fetch(url, part, timeout=timeout, progress=progress)
            break
        except DownloadError:
            if attempt == retries or not part.exists():
                raise
    else:  # pragma: no cover - the loop always breaks or raises
        raise AssertionError
    if not part.exists():
        raise DownloadError(f"{url}: the server sent nothing")
    os.replace(part, target)
    return target
