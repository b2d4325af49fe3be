"""cbir.fetch: sets fetched from real servers on loopback (HTTP with Range, FTP with REST), checked, laid out."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import pytest

from cbir.errors import BadInputError
from cbir.evaluation.benchmarks import load_benchmark
from cbir.fetch import catalog
from cbir.fetch.archives import UnsafeArchiveError
from cbir.fetch.catalog import MANIFEST, default_dir, find_dataset, resolve_dataset
from cbir.fetch.download import DownloadError, download, part_path
from cbir.fetch.install import fetch_dataset
from tests.fetch_helpers import (
    ftp_server,
    holidays_members,
    http_server,
    jpeg_bytes,
    tar_bytes,
    ukbench_members,
    wang_members,
    zip_bytes,
)


@pytest.fixture(scope="module")
def wang_tar() -> bytes:
    return tar_bytes(wang_members())


@pytest.fixture()
def sets_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "sets"
    monkeypatch.setenv("CBIR_DATASETS", str(folder))
    return folder


def _leftovers(folder: Path) -> list[str]:
    """Build or swap folders left beside the sets (there must never be any)."""
    return sorted(p.name for p in folder.iterdir() if ".build" in p.name or ".old" in p.name) if folder.exists() else []


def test_wang_over_http_is_laid_out_for_its_protocol_with_a_manifest(sets_dir: Path, wang_tar: bytes) -> None:
    with http_server({"test1.tar": wang_tar}) as server:
        report = fetch_dataset("wang", sources=[server.url + "test1.tar"])
    folder = sets_dir / "wang"
    assert report.folder == str(folder) and report.images == 1000 and not report.already_present
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted([f"{i}.jpg" for i in range(1000)] + [MANIFEST])
    assert (folder / "417.jpg").read_bytes() == wang_members()["image.orig/417.jpg"]
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["images"] == 1000 and manifest["protocol"] == "wang"
    assert manifest["archives"][0]["sha256"] == hashlib.sha256(wang_tar).hexdigest()
    assert manifest["archives"][0]["bytes"] == len(wang_tar)
    assert manifest["archives"][0]["checksum_verified"] is False  # nothing published to check against
    benchmark = load_benchmark(folder, "wang")
    assert benchmark.n_queries == 1000 and benchmark.n_groups == 10
    # The download and the work folder are gone; nothing else was left beside the set.
    assert sorted(p.name for p in sets_dir.iterdir()) == ["wang"]
    assert find_dataset("wang") == folder.resolve()
    assert resolve_dataset("wang", None) == (str(folder.resolve()), "wang")


def test_a_dropped_connection_keeps_the_part_and_the_next_run_resumes_with_range(
    sets_dir: Path, wang_tar: bytes
) -> None:
    with http_server({"test1.tar": wang_tar}) as server:
        server.drop_once.add("test1.tar")
        with pytest.raises(DownloadError, match="run again to resume"):
            fetch_dataset("wang", sources=[server.url + "test1.tar"], retries=0)
        assert not (sets_dir / "wang").exists() and _leftovers(sets_dir) == []
        part = part_path(sets_dir / ".wang.fetch" / "test1.tar")
        kept = part.stat().st_size
        assert 0 < kept < len(wang_tar)
        assert wang_tar.startswith(part.read_bytes())

        report = fetch_dataset("wang", sources=[server.url + "test1.tar"], retries=0)
    assert server.ranges == [("test1.tar", None), ("test1.tar", f"bytes={kept}-")]
    assert report.archives[0]["sha256"] == hashlib.sha256(wang_tar).hexdigest()
    assert report.images == 1000


def test_a_drop_is_resumed_within_one_run(tmp_path: Path) -> None:
    data = bytes(range(256)) * 4000
    with http_server({"f.bin": data}) as server:
        server.drop_once.add("f.bin")
        seen = []
        target = download(server.url + "f.bin", tmp_path / "f.bin", retries=1, progress=lambda d, t: seen.append((d, t)))
    assert target.read_bytes() == data and not part_path(target).exists()
    # The second request asked only for what the first one did not deliver.
    name, header = server.ranges[1]
    resumed_at = int(header.removeprefix("bytes=").rstrip("-"))
    assert name == "f.bin" and 0 < resumed_at <= len(data) // 2
    assert seen[-1] == (len(data), len(data))


def test_a_server_that_ignores_range_is_read_again_from_the_start(tmp_path: Path) -> None:
    data = b"0123456789" * 5000
    part = part_path(tmp_path / "f.bin")
    part.write_bytes(b"garbage-")
    with http_server({"f.bin": data}) as server:
        server.ignore_range = True
        download(server.url + "f.bin", tmp_path / "f.bin", retries=0)
    assert (tmp_path / "f.bin").read_bytes() == data


def test_http_errors_and_other_schemes_are_one_line_download_errors(tmp_path: Path) -> None:
    with http_server({}) as server, pytest.raises(DownloadError, match="HTTP 404"):
        download(server.url + "missing.tar", tmp_path / "m.tar", retries=2)
    assert not part_path(tmp_path / "m.tar").exists()
    with pytest.raises(DownloadError, match="use http, https or ftp"):
        download("gopher://example/x", tmp_path / "x")


def test_holidays_over_ftp_from_two_archives_and_rest_resume(tmp_path: Path, sets_dir: Path) -> None:
    served = tmp_path / "ftp" / "pub"
    served.mkdir(parents=True)
    jpg1 = tar_bytes(holidays_members(range(800)), mode="w:gz")
    jpg2 = tar_bytes(holidays_members(range(800, 1491)), mode="w:gz")
    (served / "jpg1.tar.gz").write_bytes(jpg1)
    (served / "jpg2.tar.gz").write_bytes(jpg2)
    # An earlier run stopped in the middle of jpg2.tar.gz: the next one resumes it with REST.
    work = sets_dir / ".holidays.fetch"
    work.mkdir(parents=True)
    part_path(work / "jpg2.tar.gz").write_bytes(jpg2[:1000])
    with ftp_server(tmp_path / "ftp") as server:
        report = fetch_dataset("holidays", sources=[server.url + "pub/"])
    assert server.rest_offsets == [1000]
    assert report.images == 1491
    assert [a["sha256"] for a in report.archives] == [hashlib.sha256(jpg1).hexdigest(), hashlib.sha256(jpg2).hexdigest()]
    benchmark = load_benchmark(sets_dir / "holidays", "holidays")
    assert len(benchmark.items) == 1491 and benchmark.n_queries == 15  # ids 100000..101490: every 100th is a query
    assert not work.exists()


def test_holidays_tar_gz_from_an_http_mirror_folder(sets_dir: Path) -> None:
    jpg1 = tar_bytes(holidays_members(range(700)), mode="w:gz")
    jpg2 = tar_bytes(holidays_members(range(700, 1491)), mode="w:gz")
    with http_server({"mirror/jpg1.tar.gz": jpg1, "mirror/jpg2.tar.gz": jpg2}) as server:
        server.drop_once.add("mirror/jpg2.tar.gz")
        report = fetch_dataset("holidays", sources=[server.url + "mirror/"], retries=1)
    assert report.images == 1491
    assert [name for name, _ in server.ranges] == ["mirror/jpg1.tar.gz", "mirror/jpg2.tar.gz", "mirror/jpg2.tar.gz"]
    assert server.ranges[2][1] is not None  # the dropped one was resumed, not restarted
    assert report.archives[1]["sha256"] == hashlib.sha256(jpg2).hexdigest()


def test_ukbench_zip_keeps_only_the_full_size_images(sets_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The real set has 10,200 images; the same layout with 40 keeps the test quick.
    monkeypatch.setitem(catalog.DATASETS, "ukbench", dataclasses.replace(catalog.DATASETS["ukbench"], images=40))
    with http_server({"mirror/ukbench.zip": zip_bytes(ukbench_members(40))}) as server:
        report = fetch_dataset("ukbench", sources=[server.url + "mirror/ukbench.zip"])
    names = sorted(p.name for p in Path(report.folder).iterdir() if p.suffix == ".jpg")
    assert names == [f"ukbench{i:05d}.jpg" for i in range(40)]
    benchmark = load_benchmark(report.folder, "ukbench")
    assert benchmark.with_ns and benchmark.n_groups == 10


def test_a_wrong_image_count_installs_nothing(sets_dir: Path) -> None:
    archive = sets_dir.parent / "test1.tar"
    archive.write_bytes(tar_bytes(wang_members(999)))
    with pytest.raises(BadInputError, match="holds 999 image.s. where 1000 are expected"):
        fetch_dataset("wang", sources=[str(archive)])
    assert not (sets_dir / "wang").exists() and _leftovers(sets_dir) == []
    assert archive.exists()  # the user's own file is never removed


def test_an_undecodable_image_is_named_and_installs_nothing(sets_dir: Path) -> None:
    members = wang_members()
    members["image.orig/523.jpg"] = b"\xff\xd8\xff\xe0 this is not a JPEG"
    archive = sets_dir.parent / "test1.tar"
    archive.write_bytes(tar_bytes(members))
    with pytest.raises(BadInputError, match=r"1 image\(s\) cannot be decoded: 523\.jpg"):
        fetch_dataset("wang", sources=[str(archive)])
    assert not (sets_dir / "wang").exists() and _leftovers(sets_dir) == []


def test_a_hostile_archive_installs_nothing(sets_dir: Path) -> None:
    members = wang_members()
    members["image.orig/../../escaped.jpg"] = b"x"
    archive = sets_dir.parent / "test1.tar"
    archive.write_bytes(tar_bytes(members))
    with pytest.raises(UnsafeArchiveError, match="refused member"):
        fetch_dataset("wang", sources=[str(archive)])
    assert not (sets_dir / "wang").exists() and _leftovers(sets_dir) == []
    assert not (sets_dir.parent / "escaped.jpg").exists()


def test_a_bomb_stops_at_the_sets_limit(sets_dir: Path) -> None:
    members = wang_members()
    members["image.orig/0.jpg"] = bytes(3 << 20)
    archive = sets_dir.parent / "test1.tar"
    archive.write_bytes(tar_bytes(members, mode="w:gz"))
    with pytest.raises(UnsafeArchiveError, match="archive bomb"):
        fetch_dataset("wang", sources=[str(archive)], max_unpacked=2 << 20)
    assert not (sets_dir / "wang").exists()


def test_a_damaged_download_is_removed_so_the_next_run_fetches_it_anew(sets_dir: Path, wang_tar: bytes) -> None:
    with http_server({"test1.tar": b"<html>mirror error page</html>"}) as server:
        with pytest.raises(BadInputError, match="not a readable tar or zip archive.*download was removed"):
            fetch_dataset("wang", sources=[server.url + "test1.tar"])
        assert not (sets_dir / ".wang.fetch" / "test1.tar").exists()
        server.files["test1.tar"] = wang_tar
        assert fetch_dataset("wang", sources=[server.url + "test1.tar"]).images == 1000


def test_published_checksums_are_checked(sets_dir: Path, wang_tar: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = catalog.DATASETS["wang"]
    wrong = dataclasses.replace(spec, archives=(dataclasses.replace(spec.archives[0], sha256="0" * 64),))
    monkeypatch.setitem(catalog.DATASETS, "wang", wrong)
    with http_server({"test1.tar": wang_tar}) as server:
        with pytest.raises(DownloadError, match="does not match the published 0000"):
            fetch_dataset("wang", sources=[server.url + "test1.tar"])
        assert not (sets_dir / ".wang.fetch" / "test1.tar").exists() and not (sets_dir / "wang").exists()
        right = dataclasses.replace(spec, archives=(dataclasses.replace(spec.archives[0], sha256=hashlib.sha256(wang_tar).hexdigest()),))
        monkeypatch.setitem(catalog.DATASETS, "wang", right)
        report = fetch_dataset("wang", sources=[server.url + "test1.tar"])
    assert report.archives[0]["checksum_verified"] is True


def test_present_sets_are_kept_unless_forced_and_foreign_folders_refused(tmp_path: Path, wang_tar: bytes) -> None:
    archive = tmp_path / "test1.tar"
    archive.write_bytes(wang_tar)
    target = tmp_path / "mine" / "wang"
    fetch_dataset("wang", folder=target, sources=[str(archive)])
    (target / "0.jpg").write_bytes(b"changed")
    again = fetch_dataset("wang", folder=target, sources=[str(archive)])
    assert again.already_present and (target / "0.jpg").read_bytes() == b"changed"
    fetch_dataset("wang", folder=target, sources=[str(archive)], force=True)
    assert (target / "0.jpg").read_bytes() == wang_members()["image.orig/0.jpg"]
    assert sorted(p.name for p in target.parent.iterdir()) == ["wang"]

    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "holiday.jpg").write_bytes(jpeg_bytes((1, 2, 3), 0))
    with pytest.raises(BadInputError, match="photos exists and is not a fetched cbir dataset"):
        fetch_dataset("wang", folder=foreign, sources=[str(archive)])
    assert sorted(p.name for p in foreign.iterdir()) == ["holiday.jpg"]


def test_from_must_match_the_sets_archives(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match=r"holidays needs 2 archive\(s\) \(jpg1.tar.gz, jpg2.tar.gz\); got 1"):
        fetch_dataset("holidays", folder=tmp_path / "h", sources=[str(tmp_path / "jpg1.tar.gz")])
    with pytest.raises(BadInputError, match="no such file"):
        fetch_dataset("wang", folder=tmp_path / "w", sources=[str(tmp_path / "missing.tar")])
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # not even a work folder


def test_where_sets_go(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("CBIR_DATASETS", raising=False)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert default_dir("wang") == tmp_path / "xdg" / "cbir" / "datasets" / "wang"
    checkout = tmp_path / "checkout"
    (checkout / "datasets").mkdir(parents=True)
    (checkout / "pyproject.toml").write_text('[project]\nname = "cbir"\n')
    (checkout / "src").mkdir()
    monkeypatch.chdir(checkout / "src")
    assert default_dir("wang") == checkout.resolve() / "datasets" / "wang"
    monkeypatch.setenv("CBIR_DATASETS", str(tmp_path / "chosen"))
    assert default_dir("wang") == tmp_path / "chosen" / "wang"


def test_evaluate_by_name_of_a_set_not_fetched_gives_the_command(sets_dir: Path) -> None:
    with pytest.raises(BadInputError, match="run: cbir datasets fetch holidays"):
        resolve_dataset("holidays", None)
    # A path still works as before, and a fetched set's folder given as a path keeps its protocol.
    assert resolve_dataset(str(sets_dir.parent), None) == (str(sets_dir.parent), "classes")
    archive = sets_dir.parent / "test1.tar"
    archive.write_bytes(tar_bytes(wang_members()))
    fetch_dataset("wang", sources=[str(archive)])
    assert resolve_dataset(str(sets_dir / "wang"), None) == (str(sets_dir / "wang"), "wang")
    assert resolve_dataset(str(sets_dir / "wang"), "classes") == (str(sets_dir / "wang"), "classes")


@pytest.mark.slow
def test_skimage_dup_is_built_locally_and_read_by_its_ground_truth(sets_dir: Path) -> None:
    skimage = pytest.importorskip("skimage")
    report = fetch_dataset("skimage-dup")
    manifest = json.loads((sets_dir / "skimage-dup" / MANIFEST).read_text())
    assert manifest["built_with"]["scikit-image"] == skimage.__version__
    groups = manifest["built_with"]["groups"]
    assert groups > 50 and report.images == 7 * groups  # each source and 6 edited copies
    folder, protocol = resolve_dataset("skimage-dup", None)
    assert protocol == f"csv:{Path(folder) / 'groundtruth.csv'}"
    benchmark = load_benchmark(folder, protocol)
    assert benchmark.n_groups == groups and benchmark.n_queries == report.images
    assert sorted(p.name for p in sets_dir.iterdir()) == ["skimage-dup"]
