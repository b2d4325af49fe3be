"""Accuracy plots: precision-recall curves and per-class AP bars of one or more evaluations, as a PNG."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cbir.errors import BadInputError

#: Beyond this many classes the per-class panel shows sorted AP curves instead of bars.
MAX_BARS = 40


def plot_reports(reports: Sequence[tuple[str, dict]], path: str | os.PathLike[str], *, title: str | None = None) -> Path:
    """Draw evaluation reports side by side and write a PNG atomically.

    Parameters
    ----------
    reports : sequence of (label, document)
        Documents as made by :meth:`cbir.evaluation.EvaluationReport.to_dict` (``pr_curve``,
        ``per_class`` and ``mAP`` are used); one line / bar series per report.
    path : path
        The PNG to write (replaced whole, or left untouched on error).
    title : str, optional

    Returns
    -------
    Path

    Raises
    ------
    BadInputError
        If no report is given, a document lacks the fields used, or the file cannot be written.
    """
    if not reports:
        raise BadInputError("nothing to plot")
    for label, document in reports:
        if not all(key in document for key in ("pr_curve", "per_class", "mAP")):
            raise BadInputError(f"report {label!r} is not an evaluation report (needs pr_curve, per_class, mAP)")
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    target = Path(path).expanduser()
    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 5), gridspec_kw={"width_ratios": [1, 1.6]})
    try:
        for label, document in reports:
            curve = document["pr_curve"]
            precision = np.array([np.nan if p is None else p for p in curve["precision"]], dtype=float)
            left.plot(curve["recall"], precision, marker="o", markersize=3, label=f"{label} (mAP {_fmt(document['mAP'])})")
        left.set_xlabel("recall")
        left.set_ylabel("interpolated precision")
        left.set_xlim(0, 1)
        left.set_ylim(0, 1.02)
        left.grid(alpha=0.3)
        left.legend(fontsize=8)
        left.set_title("precision-recall")

        classes = list(dict.fromkeys(c for _, document in reports for c in document["per_class"]))
        if len(classes) <= MAX_BARS:
            width = 0.8 / len(reports)
            x = np.arange(len(classes))
            for i, (label, document) in enumerate(reports):
                values = [document["per_class"].get(c) for c in classes]
                right.bar(x + (i - (len(reports) - 1) / 2) * width, [v or 0.0 for v in values], width, label=label)
            right.set_xticks(x)
            right.set_xticklabels([str(c) for c in classes], rotation=45 if len(classes) > 12 else 0, ha="right" if len(classes) > 12 else "center", fontsize=8)
            right.set_xlabel("class")
        else:
            for label, document in reports:
                values = sorted((v for v in document["per_class"].values() if v is not None), reverse=True)
                right.plot(np.arange(1, len(values) + 1), values, label=label)
            right.set_xlabel(f"class, sorted by AP ({len(classes)} classes)")
        right.set_ylabel("AP")
        right.set_ylim(0, 1.02)
        right.grid(alpha=0.3, axis="y")
        right.legend(fontsize=8)
        right.set_title("per-class average precision")
        if title:
            figure.suptitle(title)
        figure.tight_layout()
        tmp = target.with_name(f".{target.name}.tmp{os.getpid()}.png")
        try:
            figure.savefig(tmp, dpi=110)
            os.replace(tmp, target)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise BadInputError(f"cannot write the plot {target}: {exc.strerror or exc}") from None
    finally:
        plt.close(figure)
    return target


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
