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
