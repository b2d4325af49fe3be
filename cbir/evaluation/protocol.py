"""Retrieval accuracy: the protocol runner over rankings (the metrics are :mod:`cbir.evaluation.metrics`).

A *ranking* is the list of result paths of one query, best first, as the search
path returns them (ties already broken, by row id). The metric functions take a
boolean relevance vector in rank order; they never re-sort, so an AP computed
here can be recomputed by hand from ``cbir search --json`` output.

Conventions (the usual ones for Wang, INRIA Holidays and UKBench):

* The query itself is dropped from its own ranking (by path) before AP, P@k
  and R@k are computed (leave-one-out); relevant images are the *other*
  members of the query's group.
* ``AP = sum over relevant positions r of P@r, divided by the number of
  relevant images in the collection`` (relevant images never retrieved count
  as zero precision), computed over the full ranking.
* A query whose group has no other member has no AP: it is left out of mAP
  and counted in ``queries_without_relevant``.
* The N-S score (UKBench) is the number of the query's group in the top 4 of
  the ranking *with* the query in it, averaged over queries (4.0 is perfect).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from cbir.errors import BadInputError
from cbir.evaluation.metrics import (
    RECALL_LEVELS,
    average_precision,
    interpolated_precision,
    mean_average_precision,
    ns_score,
    precision_at,
    recall_at,
)

#: Cut-offs reported for precision and recall.
CUTOFFS = (1, 5, 10, 20)


@dataclass(frozen=True)
class Item:
    """One image of a benchmark: absolute path, relevance group, whether it is a query."""

    path: str
    group: Hashable
    is_query: bool = True


@dataclass
class QueryResult:
    """Scores of one query."""

    query: str
    group: Hashable
    n_relevant: int
    ap: float
    precision_at: dict[int, float]
    recall_at: dict[int, float]
    ns: float | None = None

    def to_dict(self) -> dict:
        data = {
            "query": self.query,
            "group": _json_key(self.group),
            "n_relevant": self.n_relevant,
            "ap": None if math.isnan(self.ap) else self.ap,
            "precision_at": {str(k): v for k, v in self.precision_at.items()},
        }
        if self.ns is not None:
            data["ns"] = self.ns
        return data


@dataclass
class EvaluationReport:
    """Accuracy of one configuration on one benchmark."""

    protocol: str
    metric: str
    config: dict
    per_query: list[QueryResult]
    pr_curve: np.ndarray
    seconds: float = 0.0
    ns_score: float | None = None
    extra: dict = field(default_factory=dict)

    @property
    def queries(self) -> int:
        return len(self.per_query)

    @property
    def queries_without_relevant(self) -> int:
        return sum(1 for q in self.per_query if q.n_relevant == 0)

    @property
    def mean_ap(self) -> float:
        return mean_average_precision(q.ap for q in self.per_query)

    def precision_at(self, k: int) -> float:
        """Mean P@k over all queries."""
        return float(np.mean([q.precision_at[k] for q in self.per_query]))

    def recall_at(self, k: int) -> float:
        """Mean R@k over queries that have relevant images."""
        values = [q.recall_at[k] for q in self.per_query if q.n_relevant > 0]
        return float(np.mean(values)) if values else math.nan

    def per_class(self) -> dict[Hashable, float]:
        """Mean AP of the queries of each group, groups in sorted order."""
        by_group: dict[Hashable, list[float]] = {}
        for q in self.per_query:
            by_group.setdefault(q.group, []).append(q.ap)
        return {g: mean_average_precision(by_group[g]) for g in sorted(by_group, key=_sort_key)}

    def to_dict(self) -> dict:
        """The JSON document of ``cbir evaluate --json``."""
        data = {
            "protocol": self.protocol,
            "metric": self.metric,
            "config": self.config,
            "queries": self.queries,
            "queries_without_relevant": self.queries_without_relevant,
            "mAP": _finite(self.mean_ap),
            "precision_at": {str(k): self.precision_at(k) for k in CUTOFFS},
            "recall_at": {str(k): _finite(self.recall_at(k)) for k in CUTOFFS},
            "per_class": {str(_json_key(g)): _finite(ap) for g, ap in self.per_class().items()},
            "pr_curve": {
                "recall": [float(r) for r in RECALL_LEVELS],
                "precision": [_finite(float(p)) for p in self.pr_curve],
            },
            "seconds": round(self.seconds, 3),
            "per_query": [q.to_dict() for q in self.per_query],
        }
        if self.ns_score is not None:
            data["ns_score"] = self.ns_score
        data.update(self.extra)
        return data


def _finite(value: float) -> float | None:
    return None if math.isnan(value) else value


def _json_key(group: Hashable) -> str | int:
    return group if isinstance(group, (int, str)) else str(group)


def _sort_key(group: Hashable) -> tuple[int, object]:
    return (0, group) if isinstance(group, (int, np.integer)) else (1, str(group))


#: Ranks the collection for a batch of query paths: one list of result paths (best first) per query.
Ranker = Callable[[Sequence[str]], Iterable[Sequence[str]]]


def score_ranking(
    query: str,
    ranking: Sequence[str],
    group_of: Mapping[str, Hashable],
    group_sizes: Mapping[Hashable, int],
    *,
    with_ns: bool = False,
) -> tuple[QueryResult, np.ndarray]:
    """Score one query's ranking (the query's own entry is dropped before AP, P@k, R@k).

    Parameters
    ----------
    query : str
        The query's path, as it appears in rankings.
    ranking : sequence of str
        Result paths, best first; paths outside ``group_of`` are distractors.
    group_of : mapping path -> group
    group_sizes : mapping group -> number of images in it

    Returns
    -------
    result : QueryResult
    curve : ndarray, shape (len(RECALL_LEVELS),)
        Interpolated precision of this query (NaN without relevant images).

    Raises
    ------
    BadInputError
        If the query is not in ``group_of``.
    """
    if query not in group_of:
        raise BadInputError(f"query {query} is not part of the benchmark")
    group = group_of[query]
    n_relevant = group_sizes[group] - 1
    full = np.fromiter((group_of.get(path, _NO_GROUP) == group for path in ranking), dtype=bool, count=len(ranking))
    own = np.fromiter((path == query for path in ranking), dtype=bool, count=len(ranking))
    rel = full[~own]
    result = QueryResult(
        query=query,
        group=group,
        n_relevant=n_relevant,
        ap=average_precision(rel, n_relevant),
        precision_at={k: precision_at(rel, k) for k in CUTOFFS},
        recall_at={k: recall_at(rel, k, n_relevant) for k in CUTOFFS},
        ns=ns_score(full) if with_ns else None,
    )
    return result, interpolated_precision(rel, n_relevant)


_NO_GROUP = object()


def evaluate(
    items: Sequence[Item],
    ranker: Ranker,
    *,
    protocol: str,
    metric: str,
    config: Mapping | None = None,
    with_ns: bool = False,
    batch_size: int = 64,
    progress: Callable[[int, int], None] | None = None,
) -> EvaluationReport:
    """Run every query of a benchmark through ``ranker`` and score the rankings.

    Parameters
    ----------
    items : sequence of Item
        The benchmark (see :mod:`cbir.evaluation.benchmarks`); paths must be spelled as the ranker returns them.
    ranker : callable(list of query paths) -> iterable of rankings
        Rankings must cover the whole collection for AP to be exact.
    protocol, metric, config :
        Recorded in the report.
    with_ns : bool
        Also compute the UKBench N-S score.
    progress : callable(done, total), optional

    Returns
    -------
    EvaluationReport

    Raises
    ------
    BadInputError
        If there are no queries, or the ranker returns a different number of rankings than queries.
    """
    started = time.perf_counter()
    group_of = {item.path: item.group for item in items}
    sizes: dict[Hashable, int] = {}
    for item in items:
        sizes[item.group] = sizes.get(item.group, 0) + 1
    queries = [item.path for item in items if item.is_query]
    if not queries:
        raise BadInputError("the benchmark has no queries")
    results: list[QueryResult] = []
    curves = []
    for start in range(0, len(queries), batch_size):
        batch = queries[start : start + batch_size]
        rankings = list(ranker(batch))
        if len(rankings) != len(batch):
            raise BadInputError(f"the ranker returned {len(rankings)} rankings for {len(batch)} queries")
        for query, ranking in zip(batch, rankings):
            result, curve = score_ranking(query, ranking, group_of, sizes, with_ns=with_ns)
            results.append(result)
            curves.append(curve)
        if progress is not None:
            progress(len(results), len(queries))
    defined = [c for c in curves if not np.isnan(c).all()]
    pr_curve = np.mean(defined, axis=0) if defined else np.full(len(RECALL_LEVELS), np.nan)
    report = EvaluationReport(
        protocol=protocol,
        metric=metric,
        config=dict(config or {}),
        per_query=results,
        pr_curve=pr_curve,
        ns_score=float(np.mean([r.ns for r in results])) if with_ns else None,
    )
    report.seconds = time.perf_counter() - started
    return report
