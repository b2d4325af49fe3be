"""The near-duplicate benchmark generator: edits, reproducibility, ground truth, nothing half-written."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from cbir.cli import main
from cbir.errors import BadInputError
from cbir.evaluation.benchmarks import load_benchmark
from cbir.evaluation.transforms import EDITS, GROUND_TRUTH, make_benchmark, near_duplicate
from cbir.images import load_image
from tests.conftest import PALETTE, gradient, two_tone, write_image


def _sources(folder: Path) -> Path:
    write_image(folder / "a.png", two_tone(PALETTE["red"], PALETTE["blue"], 0.6, size=(60, 80)))
    write_image(folder / "sub" / "b.jpg", gradient(PALETTE["yellow"], PALETTE["navy"], size=(70, 50)))
    (folder / "notes.txt").write_text("not an image")
    return folder


@pytest.mark.parametrize("name", sorted(EDITS))
def test_every_edit_changes_the_image_but_keeps_it_an_rgb_image(name: str) -> None:
    rgb = gradient(PALETTE["sand"], PALETTE["green"], size=(64, 96))
    rgb[10:30, 20:50] = PALETTE["red"]
    out, description = EDITS[name](rgb, np.random.default_rng(1))
    assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3
    assert out.shape != rgb.shape or not np.array_equal(out, rgb)
    assert description


def test_near_duplicate_is_seeded_and_chains_edits() -> None:
    rgb = two_tone(PALETTE["red"], PALETTE["white"], size=(40, 60))
    first = near_duplicate(rgb, np.random.default_rng(7))
    again = near_duplicate(rgb, np.random.default_rng(7))
    assert first[1] == again[1] and np.array_equal(first[0], again[0])
    descriptions = {near_duplicate(rgb, np.random.default_rng(s))[1] for s in range(30)}
    assert any("+" in d for d in descriptions)  # some chains have several edits
    assert len(descriptions) > 20
    only = near_duplicate(rgb, np.random.default_rng(0), edits=["flip"])
    assert only[1] == "flip" and np.array_equal(only[0], rgb[:, ::-1])
    with pytest.raises(BadInputError, match="unknown edits"):
        near_duplicate(rgb, np.random.default_rng(0), edits=["warp"])


def test_make_benchmark_writes_groups_and_ground_truth(tmp_path: Path) -> None:
    source = _sources(tmp_path / "src")
    summary = make_benchmark(source, tmp_path / "out", copies=3, seed=5)
    assert (summary.groups, summary.images, summary.queries) == (2, 8, 2)
    with open(tmp_path / "out" / GROUND_TRUTH, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["path"] for r in rows][:4] == ["0000-a_00.jpg", "0000-a_01.jpg", "0000-a_02.jpg", "0000-a_03.jpg"]
    assert {r["group"] for r in rows} == {"0000-a", "0001-b"}
    assert [r["is_query"] for r in rows if r["transform"] == "original"] == ["1", "1"]
    for row in rows:
        load_image(tmp_path / "out" / row["path"])  # every listed file is a readable image
    benchmark = load_benchmark(tmp_path / "out", f"csv:{tmp_path / 'out' / GROUND_TRUTH}")
    assert benchmark.n_queries == 2 and benchmark.n_groups == 2
    # The same seed gives the same benchmark.
    again = make_benchmark(source, tmp_path / "again", copies=3, seed=5)
    assert again.images == 8
    assert (tmp_path / "again" / GROUND_TRUTH).read_text() == (tmp_path / "out" / GROUND_TRUTH).read_text()
    assert (tmp_path / "again" / "0001-b_02.jpg").read_bytes() == (tmp_path / "out" / "0001-b_02.jpg").read_bytes()


def test_make_benchmark_skips_unreadable_sources_and_can_make_every_image_a_query(tmp_path: Path) -> None:
    source = _sources(tmp_path / "src")
    (source / "broken.png").write_bytes(b"\x89PNG broken")
    summary = make_benchmark(source, tmp_path / "out", copies=2, all_queries=True)
    assert summary.groups == 2 and summary.queries == summary.images == 6
    assert [Path(p).name for p, _ in summary.skipped] == ["broken.png"]


def test_make_benchmark_refuses_bad_input_and_leaves_nothing_behind(tmp_path: Path) -> None:
    source = _sources(tmp_path / "src")
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "x.txt").write_text("keep me")
    with pytest.raises(BadInputError, match="already exists"):
        make_benchmark(source, taken)
    assert [p.name for p in taken.iterdir()] == ["x.txt"]
    with pytest.raises(BadInputError, match="inside the source"):
        make_benchmark(source, source / "out")
    with pytest.raises(BadInputError, match="copies"):
        make_benchmark(source, tmp_path / "o", copies=0)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(BadInputError, match="no image files"):
        make_benchmark(empty, tmp_path / "o")
    only_broken = tmp_path / "broken"
    only_broken.mkdir()
    (only_broken / "x.jpg").write_bytes(b"nope")
    with pytest.raises(BadInputError, match="none of the 1 image files"):
        make_benchmark(only_broken, tmp_path / "o")
    assert not (tmp_path / "o").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken", "empty", "src", "taken"]  # no staging left


def test_make_benchmark_cli(tmp_path: Path) -> None:
    source = _sources(tmp_path / "src")
    result = CliRunner().invoke(main, ["make-benchmark", str(source), str(tmp_path / "out"), "--copies", "2", "--json", "-q"])
    assert result.exit_code == 0, result.output
    assert '"images": 6' in result.stdout
    failed = CliRunner().invoke(main, ["make-benchmark", str(source), str(tmp_path / "out")])
    assert failed.exit_code == 2 and "already exists" in failed.output
