"""Protocols: file names (or a CSV) -> (path, group, is_query), and clear errors for datasets that do not fit."""

from __future__ import annotations

from pathlib import Path

import pytest

from cbir.errors import BadInputError
from cbir.evaluation.benchmarks import load_benchmark
from tests.conftest import solid, write_image


def _touch(folder: Path, *names: str) -> Path:
    for name in names:
        write_image(folder / name, solid((10 * len(name) % 250, 80, 120), size=(8, 8)))
    return folder


def _groups(benchmark) -> dict[str, object]:  # type: ignore[no-untyped-def]
    return {Path(item.path).name: item.group for item in benchmark.items}


def test_wang_groups_by_hundreds_and_every_image_is_a_query(tmp_path: Path) -> None:
    folder = _touch(tmp_path / "wang", "0.jpg", "99.jpg", "100.jpg", "250.jpg")
    (folder / "README.md").write_text("not an image")  # ignored
    benchmark = load_benchmark(folder, "wang")
    assert _groups(benchmark) == {"0.jpg": 0, "99.jpg": 0, "100.jpg": 1, "250.jpg": 2}
    assert benchmark.n_queries == 4
    assert all(Path(item.path).is_absolute() for item in benchmark.items)
    assert benchmark.with_ns is False


def test_holidays_queries_are_the_hundreds(tmp_path: Path) -> None:
    folder = _touch(tmp_path / "h", "100000.jpg", "100001.jpg", "100002.png", "100100.jpg", "100101.jpg")
    benchmark = load_benchmark(folder, "holidays")
    by_name = {Path(i.path).name: (i.group, i.is_query) for i in benchmark.items}
    assert by_name == {
        "100000.jpg": (1000, True), "100001.jpg": (1000, False), "100002.png": (1000, False),
        "100100.jpg": (1001, True), "100101.jpg": (1001, False),
    }


def test_ukbench_groups_of_four_with_ns(tmp_path: Path) -> None:
    folder = _touch(tmp_path / "u", *[f"ukbench{i:05d}.jpg" for i in range(8)])
    benchmark = load_benchmark(folder, "ukbench")
    assert [item.group for item in benchmark.items] == [0, 0, 0, 0, 1, 1, 1, 1]
    assert benchmark.with_ns and benchmark.n_queries == 8


def test_classes_uses_the_first_sub_folder(tmp_path: Path) -> None:
    folder = _touch(tmp_path / "c", "cats/a.png", "cats/deep/b.png", "dogs/c.jpg")
    assert _groups(load_benchmark(folder, "classes")) == {"a.png": "cats", "b.png": "cats", "c.jpg": "dogs"}


def test_names_that_do_not_fit_are_named(tmp_path: Path) -> None:
    folder = _touch(tmp_path / "w", "1.jpg", "cat.jpg", "sub/2.jpg", "x.png")
    with pytest.raises(BadInputError) as caught:
        load_benchmark(folder, "wang")
    message = str(caught.value)
    assert "3 file(s)" in message and "wang protocol" in message
    assert "cat.jpg" in message and "x.png" in message and "sub/2.jpg" in message
    with pytest.raises(BadInputError, match="holidays protocol.*1.jpg"):
        load_benchmark(folder, "holidays")
    loose = _touch(tmp_path / "loose", "top.png", "k/in.png")
    with pytest.raises(BadInputError, match="classes protocol.*top.png"):
        load_benchmark(loose, "classes")


def test_many_offenders_are_summarized(tmp_path: Path) -> None:
    folder = _touch(tmp_path / "w", *[f"img{i}.png" for i in range(9)])
    with pytest.raises(BadInputError, match=r"9 file\(s\).*and 4 more"):
        load_benchmark(folder, "wang")


def test_empty_or_missing_dataset(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("x")
    with pytest.raises(BadInputError, match="no image files"):
        load_benchmark(tmp_path / "empty", "wang")
    with pytest.raises(BadInputError, match="not a folder"):
        load_benchmark(tmp_path / "missing", "wang")
    with pytest.raises(BadInputError, match="unknown protocol 'corel'"):
        load_benchmark(tmp_path / "empty", "corel")


def test_csv_protocol(tmp_path: Path) -> None:
    folder = _touch(tmp_path / "d", "a.jpg", "b.jpg", "sub/c.jpg", "extra.jpg")
    truth = tmp_path / "truth.csv"
    truth.write_text("path,group,is_query\na.jpg,g1,1\nb.jpg,g1,0\nsub/c.jpg,g2,yes\n")
    benchmark = load_benchmark(folder, f"csv:{truth}")
    items = {Path(i.path).name: (i.group, i.is_query) for i in benchmark.items}
    assert items["a.jpg"] == ("g1", True) and items["b.jpg"] == ("g1", False) and items["c.jpg"] == ("g2", True)
    # An unlisted image stays in the collection as a distractor: no query, a group of its own.
    assert items["extra.jpg"][1] is False and items["extra.jpg"][0] not in ("g1", "g2")
    assert benchmark.protocol == "csv"


def test_csv_protocol_without_is_query_makes_every_listed_image_a_query(tmp_path: Path) -> None:
    folder = _touch(tmp_path / "d", "a.jpg", "b.jpg")
    truth = tmp_path / "t.csv"
    truth.write_text("group,path\nx,a.jpg\nx,b.jpg\n")
    assert load_benchmark(folder, f"csv:{truth}").n_queries == 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("path,group\na.jpg,g\nmissing.jpg,g\n", "not image files.*missing.jpg"),
        ("file,label\na.jpg,g\n", "must name the columns path and group"),
        ("path,group,is_query\na.jpg,g,maybe\n", "is_query='maybe'"),
        ("path,group\na.jpg,\n", "empty group"),
        ("path,group\n", "lists no images"),
    ],
)
def test_bad_csv_is_refused_with_the_reason(tmp_path: Path, text: str, message: str) -> None:
    folder = _touch(tmp_path / "d", "a.jpg")
    truth = tmp_path / "t.csv"
    truth.write_text(text)
    with pytest.raises(BadInputError, match=message):
        load_benchmark(folder, f"csv:{truth}")
    with pytest.raises(BadInputError, match="no such file"):
        load_benchmark(folder, f"csv:{tmp_path / 'nope.csv'}")
