"""Fetch a standard set: download (or take a given archive), check, unpack, verify, then move into place.

Nothing half-made is ever left where a set is looked for: downloads go to a work folder
beside the target (``.NAME.fetch/``, kept when a download stops so the next run resumes),
the set is built in a temporary folder beside the target, checked (image count, every image
decodable, published checksums), given its manifest, and only then renamed to the target.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cbir.errors import BadImageError, BadInputError
from cbir.fetch.archives import NotAnArchiveError, unpack
from cbir.fetch.catalog import MANIFEST, Archive, DatasetSpec, dataset_spec, default_dir, read_manifest
from cbir.fetch.download import DownloadError, download
from cbir.images import decode_image, read_bytes

#: ``on_progress(stage, done, total)``: stage is e.g. "download test1.tar", "unpack test1.tar", "verify".
StageProgress = Callable[[str, int, int], None]
_SHOWN = 5


@dataclass
class FetchReport:
    """What ``fetch_dataset`` did."""

    name: str
    folder: str
    images: int
    protocol: str
    archives: list[dict[str, Any]] = field(default_factory=list)
    already_present: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def sha256_of(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of a file, hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _is_url(text: str) -> bool:
    return urlsplit(text).scheme.lower() in ("http", "https", "ftp")


def _sources(spec: DatasetSpec, given: Sequence[str]) -> list[tuple[Archive, str]]:
    """Each archive of the set with where to take it from: its own URL, or a ``--from`` replacement."""
    if not given:
        return [(archive, archive.url) for archive in spec.archives]
    if len(given) == 1 and _is_url(given[0]) and given[0].endswith("/"):  # a mirror folder
        return [(archive, given[0] + archive.filename) for archive in spec.archives]
    by_name = {archive.filename: archive for archive in spec.archives}
    names = [os.path.basename(urlsplit(g).path if _is_url(g) else g) for g in given]
    if all(name in by_name for name in names) and len(set(names)) == len(names) == len(spec.archives):
        return [(by_name[name], source) for name, source in zip(names, given)]
    if len(given) == len(spec.archives):
        return list(zip(spec.archives, given))
    wanted = ", ".join(a.filename for a in spec.archives)
    raise BadInputError(f"--from: {spec.name} needs {len(spec.archives)} archive(s) ({wanted}); got {len(given)}")


def _staged(on_progress: StageProgress | None, stage: str) -> Callable[[int, int], None] | None:
    """A ``progress(done, total)`` callback that reports as ``stage``."""
    if on_progress is None:
        return None
    return lambda done, total: on_progress(stage, done, total)


def _build_locally(spec: DatasetSpec, target: Path, work: Path, *, on_progress: StageProgress | None) -> FetchReport:
    from cbir.fetch.local_sets import build_skimage_dup

    work.mkdir(parents=True, exist_ok=True)
    try:
        build, provenance = build_skimage_dup(work / "built", on_progress=on_progress)
        names = sorted(p.name for p in build.iterdir() if p.suffix == ".jpg")
        _check(spec, build, names, "the built set", on_progress=on_progress)
        _write_manifest(build, _manifest(spec, len(names), [], built_with=provenance))
        _move_into_place(build, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return FetchReport(spec.name, str(target), len(names), spec.protocol, [])


def _obtain(archive: Archive, source: str, work: Path, *, retries: int, timeout: float,
            on_progress: StageProgress | None) -> tuple[Path, bool]:
    """The archive on disk, and whether it was downloaded here (and may be removed)."""
    if not _is_url(source):
        path = Path(source).expanduser()
        if not path.is_file():
            raise BadInputError(f"--from {source}: no such file")
        return path, False
    work.mkdir(exist_ok=True)
    target = work / archive.filename
    if target.is_file():  # finished by an earlier run whose install then stopped
        return target, True
    download(source, target, retries=retries, timeout=timeout,
             progress=_staged(on_progress, f"download {archive.filename}"))
    return target, True


def verify_images(folder: str | os.PathLike[str], names: Sequence[str], *,
                  on_progress: StageProgress | None = None) -> list[str]:
    """The names among ``names`` (files in ``folder``) that cbir cannot decode, each with the reason."""
    bad = []
    for done, name in enumerate(names, 1):
        path = Path(folder) / name
        try:
            decode_image(read_bytes(path), path=name, max_side=64)
        except BadImageError as exc:
            bad.append(f"{name} ({exc.reason})")
        if on_progress is not None:
            on_progress("verify", done, len(names))
    return bad


def _move_into_place(build: Path, target: Path) -> None:
    old = None
    if target.exists():
        if target.is_dir() and not any(target.iterdir()):
            target.rmdir()
        else:
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old", dir=target.parent))
            os.replace(target, old / "set")
    os.replace(build, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _write_manifest(folder: Path, document: dict[str, Any]) -> None:
    with open(folder / MANIFEST, "w", encoding="utf-8") as handle:
        json.dump(document, handle, indent=2, ensure_ascii=False)
        handle.write("\n")


def _check(spec: DatasetSpec, build: Path, names: list[str], sources: str, *,
           on_progress: StageProgress | None) -> None:
    if spec.images is not None and len(names) != spec.images:
        raise BadInputError(
            f"{spec.name}: {sources} holds {len(names)} image(s) where {spec.images} are expected; "
            "not installed (a wrong or damaged archive?)"
        )
    bad = verify_images(build, names, on_progress=on_progress)
    if bad:
        more = f" and {len(bad) - _SHOWN} more" if len(bad) > _SHOWN else ""
        raise BadInputError(f"{spec.name}: {len(bad)} image(s) cannot be decoded: {'; '.join(bad[:_SHOWN])}{more}; "
                            "not installed")


def _manifest(spec: DatasetSpec, images: int, archives: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    try:
        cbir_version = version("cbir")
    except PackageNotFoundError:  # pragma: no cover - running from an uninstalled checkout
        cbir_version = "unknown"
    return {
        "name": spec.name, "title": spec.title, "protocol": spec.protocol, "images": images,
        "archives": archives, "page": spec.page, "licence": spec.licence,
        "fetched": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cbir": cbir_version, **extra,
    }


def fetch_dataset(
    name: str,
    *,
    folder: str | os.PathLike[str] | None = None,
    sources: Sequence[str] = (),
    force: bool = False,
    retries: int = 3,
    timeout: float = 60.0,
    max_unpacked: int | None = None,
    on_progress: StageProgress | None = None,
) -> FetchReport:
    """Fetch, check and install the set ``name`` into ``folder`` (default: :func:`default_dir`).

    Parameters
    ----------
    name : str
        A key of :data:`cbir.fetch.catalog.DATASETS`.
    folder : path, optional
        The set's own folder (its images go directly in it).
    sources : sequence of str
        Replacements for the set's archives: mirror URLs (one ending in ``/`` is a mirror
        folder) or archive files already on disk, matched by file name or else in order.
    force : bool
        Replace a set already fetched into ``folder``.
    retries, timeout
        Passed to :func:`cbir.fetch.download.download`.
    max_unpacked : int, optional
        Bytes the archives may unpack to (default: the set's own limit).
    on_progress : callable, optional
        ``on_progress(stage, done, total)``.

    Returns
    -------
    FetchReport

    Raises
    ------
    DownloadError
        A download failed (run again to resume) or an archive does not match its published checksum.
    BadInputError
        Unknown set, a ``folder`` holding something else, a ``--from`` file missing, an unreadable or
        unsafe archive (:class:`cbir.fetch.archives.UnsafeArchiveError`), the wrong number of images,
        or images that cannot be decoded. The target is left as it was.
    """
    spec = dataset_spec(name)
    target = Path(folder).expanduser() if folder is not None else default_dir(name)
    target = target.absolute()
    manifest = read_manifest(target)
    if manifest is not None and not force:
        return FetchReport(name, str(target), int(manifest.get("images", 0)), spec.protocol,
                           list(manifest.get("archives", [])), already_present=True)
    if target.exists() and manifest is None and (not target.is_dir() or any(target.iterdir())):
        raise BadInputError(f"{target} exists and is not a fetched cbir dataset; choose another --dir or remove it")
    target.parent.mkdir(parents=True, exist_ok=True)
    work = target.parent / f".{target.name}.fetch"  # downloads in progress; removed once the set is in place
    if spec.built_locally:
        return _build_locally(spec, target, work, on_progress=on_progress)

    obtained = []
    for archive, source in _sources(spec, sources):
        path, ours = _obtain(archive, source, work, retries=retries, timeout=timeout, on_progress=on_progress)
        digest = sha256_of(path)
        if archive.sha256 and digest != archive.sha256.lower():
            if ours:
                path.unlink()
            raise DownloadError(f"{source}: SHA-256 {digest} does not match the published {archive.sha256}"
                                + ("; the download was removed" if ours else ""))
        obtained.append((archive, source, path, ours, digest))

    build = Path(tempfile.mkdtemp(prefix=f".{target.name}.build", dir=target.parent))
    try:
        names: list[str] = []
        budget = max_unpacked if max_unpacked is not None else spec.max_unpacked
        for archive, source, path, ours, _ in obtained:
            try:
                written = unpack(path, build, pattern=spec.member_pattern, max_bytes=budget,
                                 progress=_staged(on_progress, f"unpack {archive.filename}"))
            except NotAnArchiveError as exc:
                if not ours:
                    raise
                path.unlink()  # a damaged download: the next run fetches it again
                raise NotAnArchiveError(f"{exc}; the download was removed, run again to fetch it anew") from None
            names += written
            budget -= sum((build / n).stat().st_size for n in written)  # one budget for all the set's archives
        names.sort()
        _check(spec, build, names, " + ".join(a.filename for a in spec.archives), on_progress=on_progress)
        records = [
            {"source": source if _is_url(source) else str(Path(source).expanduser().resolve()),
             "file": archive.filename, "bytes": path.stat().st_size, "sha256": digest,
             "published_sha256": archive.sha256, "checksum_verified": archive.sha256 is not None}
            for archive, source, path, _, digest in obtained
        ]
        _write_manifest(build, _manifest(spec, len(names), records))
        _move_into_place(build, target)
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise
    for _, _, path, ours, _ in obtained:
        if ours:
            path.unlink(missing_ok=True)
    shutil.rmtree(work, ignore_errors=True)
    return FetchReport(name, str(target), len(names), spec.protocol, records)

