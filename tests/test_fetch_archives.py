"""cbir.fetch.archives: hostile tar and zip files are refused before anything is written; bombs stop."""

from __future__ import annotations

import io
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from cbir.fetch.archives import NotAnArchiveError, UnsafeArchiveError, unpack
from tests.fetch_helpers import jpeg_bytes, tar_bytes, zip_bytes

PATTERN = r"image\.orig/(\d+\.jpg)"
MB = 1 << 20


def _tar(path: Path, entries: list[tarfile.TarInfo], data: dict[str, bytes] | None = None, mode: str = "w") -> Path:
    data = data or {}
    with tarfile.open(path, mode) as tar:
        for info in entries:
            payload = data.get(info.name)
            if payload is not None:
                info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload) if payload is not None else None)
    return path


def _entry(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    return info


def _zip_symlink(path: Path, name: str, target: str) -> Path:
    with zipfile.ZipFile(path, "w") as handle:
        handle.writestr("image.orig/0.jpg", jpeg_bytes((10, 20, 30), 0))
        info = zipfile.ZipInfo(name)
        info.create_system = 3
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        handle.writestr(info, target)
    return path


@pytest.fixture()
def dest(tmp_path: Path) -> Path:
    folder = tmp_path / "out" / "build"
    folder.mkdir(parents=True)
    return folder


def _nothing_written(dest: Path) -> None:
    assert list(dest.iterdir()) == []
    assert sorted(p.name for p in dest.parent.iterdir()) == ["build"]


def test_selected_members_are_written_flat_and_the_rest_skipped(tmp_path: Path, dest: Path) -> None:
    members = {"image.orig/0.jpg": b"a" * 10, "image.orig/17.jpg": b"b" * 20, "image.orig/notes.txt": b"x",
               "other/5.jpg": b"c"}
    archive = tmp_path / "test1.tar"
    archive.write_bytes(tar_bytes(members))
    assert unpack(archive, dest, pattern=PATTERN, max_bytes=MB) == ["0.jpg", "17.jpg"]
    assert (dest / "17.jpg").read_bytes() == b"b" * 20
    assert sorted(p.name for p in dest.iterdir()) == ["0.jpg", "17.jpg"]


@pytest.mark.parametrize("name", ["../evil.jpg", "image.orig/../../evil.jpg", "/etc/evil.jpg", "C:/evil.jpg"])
def test_tar_traversal_and_absolute_paths_are_refused(tmp_path: Path, dest: Path, name: str) -> None:
    archive = _tar(tmp_path / "t.tar", [_entry("image.orig/0.jpg"), _entry(name)], {"image.orig/0.jpg": b"x", name: b"y"})
    with pytest.raises(UnsafeArchiveError, match="refused member") as info:
        unpack(archive, dest, pattern=r"(.*)", max_bytes=MB)
    assert name in str(info.value)
    _nothing_written(dest)
    assert not (tmp_path / "evil.jpg").exists()


@pytest.mark.parametrize("name", ["../evil.jpg", "/abs/evil.jpg"])
def test_zip_traversal_and_absolute_paths_are_refused(tmp_path: Path, dest: Path, name: str) -> None:
    archive = tmp_path / "u.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("image.orig/0.jpg", b"x")
        handle.writestr(zipfile.ZipInfo(name), b"y")  # ZipInfo keeps the name as given
    with pytest.raises(UnsafeArchiveError, match="absolute path|leaves the archive"):
        unpack(archive, dest, pattern=PATTERN, max_bytes=MB)
    _nothing_written(dest)


@pytest.mark.parametrize(("kind", "link"), [
    (tarfile.SYMTYPE, "../../../etc/passwd"),
    (tarfile.SYMTYPE, "/etc/passwd"),
    (tarfile.LNKTYPE, "../outside.jpg"),
])
def test_tar_links_pointing_outside_are_refused(tmp_path: Path, dest: Path, kind: bytes, link: str) -> None:
    archive = _tar(tmp_path / "l.tar", [_entry("image.orig/1.jpg", kind, link)])
    with pytest.raises(UnsafeArchiveError, match="link"):
        unpack(archive, dest, pattern=PATTERN, max_bytes=MB)
    _nothing_written(dest)


def test_a_link_inside_the_archive_is_not_refused_and_not_extracted(tmp_path: Path, dest: Path) -> None:
    archive = _tar(tmp_path / "ok.tar", [_entry("image.orig/0.jpg"), _entry("image.orig/1.jpg", tarfile.SYMTYPE, "0.jpg")],
                   {"image.orig/0.jpg": b"x"})
    assert unpack(archive, dest, pattern=PATTERN, max_bytes=MB) == ["0.jpg"]
    assert not (dest / "1.jpg").exists()


def test_zip_symlink_out_is_refused(tmp_path: Path, dest: Path) -> None:
    archive = _zip_symlink(tmp_path / "s.zip", "image.orig/1.jpg", "../../../../etc/passwd")
    with pytest.raises(UnsafeArchiveError, match="link pointing outside"):
        unpack(archive, dest, pattern=PATTERN, max_bytes=MB)
    _nothing_written(dest)


@pytest.mark.parametrize("kind", [tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE])
def test_device_files_are_refused(tmp_path: Path, dest: Path, kind: bytes) -> None:
    archive = _tar(tmp_path / "d.tar", [_entry("image.orig/0.jpg"), _entry("image.orig/dev", kind)], {"image.orig/0.jpg": b"x"})
    with pytest.raises(UnsafeArchiveError, match="device or special file"):
        unpack(archive, dest, pattern=PATTERN, max_bytes=MB)
    _nothing_written(dest)


def test_zip_bomb_stops_at_the_limit(tmp_path: Path, dest: Path) -> None:
    archive = tmp_path / "bomb.zip"
    archive.write_bytes(zip_bytes({f"image.orig/{i}.jpg": bytes(4 * MB) for i in range(3)}))
    assert archive.stat().st_size < 100_000  # 12 MB of zeros in a few KB
    with pytest.raises(UnsafeArchiveError, match="more than 5,242,880 bytes.*archive bomb"):
        unpack(archive, dest, pattern=PATTERN, max_bytes=5 * MB)
    assert sum(p.stat().st_size for p in dest.iterdir()) <= 5 * MB


def test_tar_gz_bomb_stops_at_the_limit(tmp_path: Path, dest: Path) -> None:
    archive = tmp_path / "bomb.tar.gz"
    archive.write_bytes(tar_bytes({"image.orig/0.jpg": bytes(8 * MB)}, mode="w:gz"))
    with pytest.raises(UnsafeArchiveError, match="archive bomb"):
        unpack(archive, dest, pattern=PATTERN, max_bytes=MB)


def test_truncated_and_foreign_files_are_not_archives(tmp_path: Path, dest: Path) -> None:
    whole = tar_bytes({f"image.orig/{i}.jpg": jpeg_bytes((9, 9, 9), i) for i in range(50)}, mode="w:gz")
    truncated = tmp_path / "cut.tar.gz"
    truncated.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(NotAnArchiveError, match="cut.tar.gz"):
        unpack(truncated, dest, pattern=PATTERN, max_bytes=MB)
    foreign = tmp_path / "page.html"
    foreign.write_bytes(b"<html>Not found</html>")
    with pytest.raises(NotAnArchiveError, match="not a readable tar or zip archive"):
        unpack(foreign, dest, pattern=PATTERN, max_bytes=MB)


def test_two_members_with_one_flat_name_are_refused(tmp_path: Path, dest: Path) -> None:
    archive = tmp_path / "dup.tar"
    archive.write_bytes(tar_bytes({"a/1.jpg": b"x", "b/1.jpg": b"y"}))
    with pytest.raises(UnsafeArchiveError, match="second member named 1.jpg"):
        unpack(archive, dest, pattern=r"[ab]/(\d\.jpg)", max_bytes=MB)
