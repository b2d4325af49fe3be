"""Evaluation: how well the engine retrieves, measured on labelled benchmarks.

``metrics``     AP, mAP, P@k, R@k, the N-S score, interpolated precision: pure functions of a relevance vector
``protocol``    the protocol runner: rankings of every query -> an :class:`EvaluationReport`
``benchmarks``  benchmark datasets on disk (classes, wang, holidays, ukbench, csv) -> items and groups
``transforms``  the near-duplicate benchmark generator (``cbir make-benchmark``)
``peers``       peer descriptors re-implemented as baselines
``plots``       precision-recall and per-class AP plots (matplotlib, imported when drawn)

This package uses the core (distances, images, errors) and never ``cbir.cli``, ``indexer`` or ``search``:
a ranker is passed in as a function.
"""

from cbir.evaluation.benchmarks import Benchmark, load_benchmark
from cbir.evaluation.metrics import (
    RECALL_LEVELS,
    average_precision,
    interpolated_precision,
    mean_average_precision,
    ns_score,
    precision_at,
    recall_at,
)
from cbir.evaluation.peers import PeerIndex, peer
from cbir.evaluation.plots import plot_reports
from cbir.evaluation.protocol import CUTOFFS, EvaluationReport, Item, QueryResult, evaluate, score_ranking
from cbir.evaluation.transforms import EDITS, GROUND_TRUTH, make_benchmark, near_duplicate

__all__ = [
    "CUTOFFS",
    "EDITS",
    "GROUND_TRUTH",
    "RECALL_LEVELS",
    "Benchmark",
    "EvaluationReport",
    "Item",
    "PeerIndex",
    "QueryResult",
    "average_precision",
    "evaluate",
    "interpolated_precision",
    "load_benchmark",
    "make_benchmark",
    "mean_average_precision",
    "near_duplicate",
    "ns_score",
    "peer",
    "plot_reports",
    "precision_at",
    "recall_at",
    "score_ranking",
]
