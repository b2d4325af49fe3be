"""``cbir duplicates`` end to end through the command: text, --json, --csv, --keep and bad options."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from cbir.cli import main
from search.duplicates import DEFAULT_HAMMING, DEFAULT_VETO
from tests.test_duplicates import make_duplicates_folder, make_flipped_folder


@pytest.fixture(scope="module")
def indexed(tmp_path_factory) -> tuple[str, dict[str, list[str]]]:
    folder = tmp_path_factory.mktemp("photos")
    expected = make_duplicates_folder(folder)
    db = str(tmp_path_factory.mktemp("db") / "cli.db")
    result = CliRunner().invoke(main, ["index", str(folder), "--db", db, "--workers", "1", "-q"])
    assert result.exit_code == 0, result.output
    return db, expected


def invoke(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, ["duplicates", *args])


def test_json_lists_every_group_with_the_kept_image(indexed):
    db, expected = indexed
    result = invoke("--db", db, "--json", "--keep", "largest")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert set(document) >= {"threshold", "groups", "pairs"}
    names = sorted(sorted(Path(image["path"]).name for image in group["images"]) for group in document["groups"])
    assert names == sorted(expected.values())
    # Four images a group, all pairs within the threshold: six pairs each.
    assert document["pairs"] == 5 * 6
    for group in document["groups"]:
        assert set(group["images"][0]) >= {"id", "path", "distance", "keep"}
        kept = [Path(image["path"]).name for image in group["images"] if image["keep"]]
        assert len(kept) == 1 and kept[0].endswith("_big.jpg")


def test_csv_has_one_line_per_group_and_image(indexed):
    db, _ = indexed
    result = invoke("--db", db, "--csv", "--keep", "oldest")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 20
    assert sorted({row["group"] for row in rows}) == ["1", "2", "3", "4", "5"]
    assert sum(int(row["keep"]) for row in rows) == 5
    assert all(float(row["distance"]) >= 0 for row in rows)


def test_text_output_and_a_threshold_that_finds_nothing(indexed):
    db, _ = indexed
    result = invoke("--db", db)
    assert result.exit_code == 0, result.output
    assert result.stdout.count("group ") == 5
    assert "5 groups, 20 images of 26" in result.stderr
    none = invoke("--db", db, "--threshold", "0", "--hamming", "-1", "--json")
    assert json.loads(none.stdout)["groups"] == [] and json.loads(none.stdout)["hamming"] is None
    # At threshold 0 the hash test alone still pairs the copies whose hashes are within the bound.
    hashed = json.loads(invoke("--db", db, "--threshold", "0", "--json").stdout)
    assert hashed["groups"] and hashed["hamming"] == DEFAULT_HAMMING and hashed["unhashed"] == 0


@pytest.mark.parametrize(("args", "message"), [
    (["--threshold", "-0.5"], "threshold must be a finite number >= 0, got -0.5"),
    (["--threshold", "nan"], "threshold must be a finite number >= 0, got nan"),
    (["--k", "0"], "0 is not in the range 1<=x<=100"),
    (["--hamming", "65"], "65 is not in the range -1<=x<=64"),
    (["--json", "--csv"], "give at most one of --json and --csv"),
    (["--hash-veto", "65"], "hash veto must be 'off' or an integer between 0 and 64, got 65"),
    (["--hash-veto", "none"], "hash veto must be 'off' or an integer between 0 and 64, got 'none'"),
])
def test_bad_options_get_a_one_line_error(indexed, args, message):
    result = invoke("--db", indexed[0], *args)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_a_missing_index_is_named(tmp_path):
    result = invoke("--db", str(tmp_path / "none.db"))
    assert result.exit_code == 2
    assert f"no index at {tmp_path / 'none.db'}" in result.output


def test_hash_veto_off_groups_a_flipped_copy(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    pair = sorted(make_flipped_folder(folder))
    db = str(tmp_path / "flipped.db")  # the mirror is 0.299 from its original in colour: within 0.31 the veto decides
    assert CliRunner().invoke(main, ["index", str(folder), "--db", db, "--workers", "1", "-q"]).exit_code == 0
    default = invoke("--db", db, "--threshold", "0.31", "--json")
    assert default.exit_code == 0, default.output
    assert json.loads(default.stdout)["groups"] == [] and json.loads(default.stdout)["veto"] == DEFAULT_VETO
    off = invoke("--db", db, "--threshold", "0.31", "--json", "--hash-veto", "off")
    document = json.loads(off.stdout)
    assert document["veto"] is None
    assert [sorted(Path(image["path"]).name for image in group["images"]) for group in document["groups"]] == [pair]
    text = invoke("--db", db, "--threshold", "0.31", "--hash-veto", "off")
    assert "1 groups, 2 images of 8" in text.stderr and "no hash veto" in text.stderr
    assert f"hash veto above {DEFAULT_VETO} bits" in invoke("--db", db, "--threshold", "0.31").stderr
