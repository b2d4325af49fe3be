"""Retrieval metrics on hand-computed cases, and the protocol runner over given rankings."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cbir.errors import BadInputError
from cbir.evaluation import (
    Item,
    average_precision,
    evaluate,
    interpolated_precision,
    mean_average_precision,
    ns_score,
    precision_at,
    recall_at,
    score_ranking,
)


def test_average_precision_hand_computed() -> None:
    # Relevant at ranks 1 and 3 of 3 relevant in the collection: (1/1 + 2/3) / 3.
    assert average_precision([1, 0, 1, 0, 0], 3) == pytest.approx((1 + 2 / 3) / 3)
    # Same ranking, the ranking covers the collection: (1 + 2/3) / 2.
    assert average_precision([True, False, True]) == pytest.approx((1 + 2 / 3) / 2)
    assert average_precision([0, 0, 0, 1]) == pytest.approx(0.25)
    assert average_precision([1, 1, 1]) == 1.0


def test_average_precision_without_relevant_images_is_nan_and_left_out_of_map() -> None:
    assert math.isnan(average_precision([0, 0, 0], 0))
    assert mean_average_precision([0.5, math.nan, 1.0]) == pytest.approx(0.75)
    assert math.isnan(mean_average_precision([math.nan]))


def test_average_precision_rejects_inconsistent_counts() -> None:
    with pytest.raises(BadInputError, match="n_relevant=1"):
        average_precision([1, 1], 1)
    with pytest.raises(BadInputError, match="1-D"):
        average_precision([[1, 0]], 1)


def test_precision_recall_and_ns() -> None:
    rel = [1, 0, 1, 1, 0, 0]
    assert precision_at(rel, 1) == 1.0
    assert precision_at(rel, 4) == 0.75
    assert precision_at(rel, 10) == 0.3  # missing ranks count as misses
    assert recall_at(rel, 3, 4) == 0.5
    assert math.isnan(recall_at(rel, 3, 0))
    assert ns_score([1, 1, 0, 1, 1]) == 3.0
    with pytest.raises(BadInputError):
        precision_at(rel, 0)


def test_interpolated_precision() -> None:
    # Precision 1 at recall 0.5, 2/4 at recall 1.0.
    curve = interpolated_precision([1, 0, 0, 1], 2, levels=(0.0, 0.5, 0.6, 1.0))
    assert curve == pytest.approx([1.0, 1.0, 0.5, 0.5])
    assert np.isnan(interpolated_precision([0, 0], 0)).all()


def test_score_ranking_drops_the_query_wherever_a_tie_put_it() -> None:
    # b is an exact duplicate of the query a (distance 0, tie broken by id before a).
    group_of = {"a": 1, "b": 1, "c": 2, "d": 1}
    sizes = {1: 3, 2: 1}
    result, _ = score_ranking("a", ["b", "a", "c", "d"], group_of, sizes)
    # Without a: b (rel), c, d (rel) -> (1/1 + 2/3) / 2.
    assert result.n_relevant == 2
    assert result.ap == pytest.approx((1 + 2 / 3) / 2)
    assert result.precision_at[1] == 1.0
    assert result.recall_at[1] == 0.5


def test_score_ranking_counts_unlisted_images_as_distractors_and_ns_keeps_the_query() -> None:
    group_of = {"q": 0, "r": 0, "s": 0, "t": 0}
    sizes = {0: 4}
    result, _ = score_ranking("q", ["q", "x", "r", "s", "y", "t"], group_of, sizes, with_ns=True)
    assert result.ns == 3.0  # q, r, s in the top 4 (x is a distractor)
    assert result.ap == pytest.approx((1 / 2 + 2 / 3 + 3 / 5) / 3)


def test_evaluate_over_a_ranker() -> None:
    items = [Item("a", 0), Item("b", 0), Item("c", 1), Item("d", 1), Item("e", 2, is_query=False)]
    rankings = {
        "a": ["a", "b", "c", "d", "e"],  # AP 1
        "b": ["b", "c", "a", "d", "e"],  # AP 1/2
        "c": ["c", "e", "a", "b", "d"],  # AP 1/4
        "d": ["d", "c", "a", "b", "e"],  # AP 1
    }
    seen: list[list[str]] = []

    def ranker(batch: list[str]) -> list[list[str]]:
        seen.append(list(batch))
        return [rankings[q] for q in batch]

    report = evaluate(items, ranker, protocol="test", metric="chi2", config={"x": 1}, batch_size=3)
    assert seen == [["a", "b", "c"], ["d"]]  # e is not a query
    assert report.queries == 4
    assert report.mean_ap == pytest.approx((1 + 0.5 + 0.25 + 1) / 4)
    assert report.per_class() == {0: pytest.approx(0.75), 1: pytest.approx(0.625)}
    assert report.precision_at(1) == pytest.approx(0.5)
    document = report.to_dict()
    assert document["mAP"] == pytest.approx(0.6875)
    assert document["precision_at"]["1"] == pytest.approx(0.5)
    assert [q["ap"] for q in document["per_query"]] == pytest.approx([1, 0.5, 0.25, 1])
    assert document["per_class"] == {"0": pytest.approx(0.75), "1": pytest.approx(0.625)}
    assert "ns_score" not in document


def test_evaluate_refuses_a_benchmark_without_queries() -> None:
    with pytest.raises(BadInputError, match="no queries"):
        evaluate([Item("a", 0, False)], lambda batch: [], protocol="p", metric="m")


# --- cbir evaluate, end to end -----------------------------------------------------------------

import json
from pathlib import Path

from click.testing import CliRunner

from cbir.cli import main
from cbir.distances import COMPACT
from cbir.histogram import DEFAULT_LAYOUT
from tests.conftest import PALETTE, noisy, two_tone, write_image

_CLASSES = {"warm": ("red", "yellow"), "cold": ("blue", "navy"), "light": ("white", "sand"), "green": ("green", "black")}


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    """A 4-class dataset of 16 small images, evaluated once into a database with a 16-color codebook."""
    root = tmp_path_factory.mktemp("eval")
    dataset = root / "dataset"
    for c, (name, (a, b)) in enumerate(_CLASSES.items()):
        for i in range(4):
            share = 0.35 + 0.1 * i
            write_image(dataset / name / f"{name}{i}.png", noisy(two_tone(PALETTE[a], PALETTE[b], share), 25, seed=10 * c + i))
    db = root / "eval.db"
    result = CliRunner().invoke(
        main, ["evaluate", str(dataset), "--db", str(db), "--colors", "16", "--workers", "1", "--json", "-q"]
    )
    assert result.exit_code == 0, result.output
    return dataset, db, json.loads(result.stdout)


def test_evaluate_json_document(evaluated: tuple[Path, Path, dict]) -> None:
    dataset, db, document = evaluated
    assert document["protocol"] == "classes" and document["metric"] == COMPACT
    assert document["queries"] == 16 and len(document["per_query"]) == 16
    assert set(document["per_class"]) == set(_CLASSES)
    assert 0.0 < document["mAP"] <= 1.0
    assert set(document["precision_at"]) >= {"1", "10"}
    assert document["config"]["n_colors"] == 16 and document["config"]["descriptor"] == "cbir"
    aps = [q["ap"] for q in document["per_query"]]
    assert document["mAP"] == pytest.approx(sum(aps) / len(aps))
    assert all(Path(q["query"]).is_absolute() and Path(q["query"]).is_relative_to(dataset.resolve()) for q in document["per_query"])


def test_cbir_search_reproduces_every_per_query_ap(evaluated: tuple[Path, Path, dict]) -> None:
    dataset, db, document = evaluated
    runner = CliRunner()
    for entry in document["per_query"]:
        result = runner.invoke(main, ["search", entry["query"], "--db", str(db), "--json", "-k", "16"])
        assert result.exit_code == 0, result.output
        ranking = [r["path"] for r in json.loads(result.stdout)["results"]]
        assert len(ranking) == 16
        group = Path(entry["query"]).parent.name
        relevance = [Path(p).parent.name == group for p in ranking if p != entry["query"]]
        assert average_precision(relevance, 3) == pytest.approx(entry["ap"], abs=1e-12)


def test_evaluate_reuses_an_up_to_date_index(evaluated: tuple[Path, Path, dict]) -> None:
    dataset, db, document = evaluated
    from cbir.store import Store

    with Store(db) as store:
        before = store.generation()
    again = CliRunner().invoke(main, ["evaluate", str(dataset), "--db", str(db), "--json", "-q"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["mAP"] == document["mAP"]
    with Store(db) as store:
        assert store.generation() == before  # nothing re-indexed
    assert f"evaluating with the index at {db}" in again.stderr


def test_evaluate_refuses_another_configuration_of_the_same_db(evaluated: tuple[Path, Path, dict]) -> None:
    dataset, db, _ = evaluated
    result = CliRunner().invoke(main, ["evaluate", str(dataset), "--db", str(db), "--colors", "32"])
    assert result.exit_code == 2
    assert "another --db" in result.output and "16 colors" in result.output


def test_evaluate_never_wipes_an_index_of_other_images(evaluated: tuple[Path, Path, dict], tmp_path: Path) -> None:
    dataset, db, _ = evaluated
    other = tmp_path / "other"
    for name in ("0.jpg", "1.jpg"):
        write_image(other / name, two_tone(PALETTE["red"], PALETTE["blue"]))
    result = CliRunner().invoke(main, ["evaluate", str(other), "--db", str(db), "--protocol", "wang"])
    assert result.exit_code == 2
    assert "outside" in result.output and "use another --db" in result.output
    from cbir.store import Store

    with Store(db) as store:
        assert store.count() == 16


def test_evaluate_bad_dataset_writes_nothing(tmp_path: Path) -> None:
    dataset = tmp_path / "flat"
    write_image(dataset / "a.png", two_tone(PALETTE["red"], PALETTE["blue"]))
    write_image(dataset / "holiday.png", two_tone(PALETTE["red"], PALETTE["blue"]))
    db = tmp_path / "new.db"
    runner = CliRunner()
    result = runner.invoke(main, ["evaluate", str(dataset), "--db", str(db), "--protocol", "wang", "--plot", str(tmp_path / "p.png")])
    assert result.exit_code == 2
    assert "do not fit the wang protocol" in result.output and "holiday.png" in result.output
    (tmp_path / "empty").mkdir()
    result = runner.invoke(main, ["evaluate", str(tmp_path / "empty"), "--db", str(db)])
    assert result.exit_code == 2 and "no image files" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "flat"]  # no database, no plot


def test_evaluate_peer_and_comparison_plot(evaluated: tuple[Path, Path, dict], tmp_path: Path) -> None:
    dataset, db, document = evaluated
    plot = tmp_path / "pr.png"
    result = CliRunner().invoke(
        main,
        ["evaluate", str(dataset), "--db", str(db), "--json", "-q", "--plot", str(plot),
         "--compare", "l1", "--compare", "hsv-regions"],
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["mAP"] == document["mAP"]
    labels = [c["label"] for c in out["compare"]]
    assert labels == [f"cbir k=16 {DEFAULT_LAYOUT} / l1", "hsv-regions / chi2"]
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from PIL import Image

    with Image.open(plot) as image:
        assert image.size[0] > 800
    peer_only = CliRunner().invoke(main, ["evaluate", str(dataset), "--descriptor", "rgb-grid3", "--json", "-q"])
    assert peer_only.exit_code == 0, peer_only.output
    peer_doc = json.loads(peer_only.stdout)
    assert peer_doc["metric"] == "l1" and peer_doc["queries"] == 16 and peer_doc["config"]["descriptor"] == "rgb-grid3"
    assert peer_doc["mAP"] > 0.5  # two-tones of distinct colors: the peer finds its class too
