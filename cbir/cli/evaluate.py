"""``cbir evaluate`` (retrieval accuracy on a labelled set) and ``cbir make-benchmark`` (a near-duplicate set)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from typing import Any

import click

from cbir.cli.common import check_expand, db_option, emit_json, handle_errors, progress_bar, tqdm_class
from cbir.distances import COMPACT, SEARCH_METRICS

#: Descriptors ``cbir evaluate`` can measure: the project's own, and the peer baselines of cbir.evaluation.peers.
DESCRIPTORS = ("cbir", "rgb-grid3", "hsv-regions")


def _benchmark_ranker(benchmark: Any, db: str, *, metric: str, n_colors: int | None, layout: str | None,
                      workers: int | None, quiet: bool, expand: int | None = None) -> tuple[Any, Callable[[Any], Any], dict]:
    """Index the benchmark into ``db`` (or sync it) and rank through Searcher.search_image, as 'cbir search' does."""

    from cbir.errors import BadInputError
    from cbir.store import Store
    from indexer import index_folder
    from search import Searcher

    store = Store(db, create=True)
    root = benchmark.root.rstrip(os.sep) + os.sep
    outside = [path for path in store.file_states() if not path.startswith(root)]
    if outside:
        store.close()
        raise BadInputError(
            f"{db} also indexes {len(outside)} image(s) outside {benchmark.root} (e.g. {outside[0]}); "
            "they would be ranked with the dataset's images: use another --db"
        )
    with progress_bar("indexing", quiet=quiet) as progress:
        report = index_folder(benchmark.root, store, n_colors=n_colors, layout=layout, workers=workers, progress=progress)
    wanted = {item.path for item in benchmark.items}
    failed = [f for f in report.failed if f.path in wanted]
    if failed:
        store.close()
        shown = "; ".join(f"{f.path}: {f.reason}" for f in failed[:3])
        raise BadInputError(f"{len(failed)} image(s) of the dataset could not be read ({shown}); remove or fix them")
    searcher = Searcher(store)
    if expand is not None:
        searcher.expand = expand
    n = store.count()

    def ranker(queries: Any) -> list[list[str]]:
        return [[r.path for r in results] for results in searcher.search_images(list(queries), k=n, metric=metric)]

    config = {
        "descriptor": "cbir",
        "db": db,
        "n_colors": searcher.codebook.n_colors,
        "layout": searcher.descriptor.layout,
        "max_side": searcher.descriptor.max_side,
        "codebook_fingerprint": searcher.codebook.fingerprint,
        "images": n,
    }
    if metric == COMPACT:
        config["expand"] = searcher.expand
        config["augment"] = store.meta("augment")
    return store, ranker, config


def _peer_ranker(benchmark: Any, name: str, *, quiet: bool) -> tuple[Callable[[Any], Any], dict]:
    """Describe every image with a peer baseline and rank by brute force."""
    from cbir.evaluation.peers import PeerIndex, peer

    tqdm = tqdm_class()

    chosen = peer(name)
    with tqdm(total=len(benchmark.items), unit="img", file=sys.stderr, disable=quiet or None, desc=name) as bar:
        index = PeerIndex.build(chosen, [item.path for item in benchmark.items], progress=lambda done, total: bar.update(1))
    config = {"descriptor": name, "summary": chosen.summary, "images": len(index.paths)}
    return index.rank_paths, config


def _run_evaluation(benchmark: Any, *, descriptor: str, metric: str | None, db: str, n_colors: int | None,
                    layout: str | None, workers: int | None, quiet: bool, expand: int | None = None) -> Any:
    """One evaluation of DESCRIPTOR (and METRIC) on a benchmark: the report."""
    from cbir.distances import SIMPLE_METRICS
    from cbir.errors import BadInputError
    from cbir.evaluation import evaluate as run
    from cbir.evaluation.peers import peer

    store = None
    if descriptor == "cbir":
        metric = metric or COMPACT
        click.echo(f"evaluating with the index at {db}", err=True)
        store, ranker, config = _benchmark_ranker(
            benchmark, db, metric=metric, n_colors=n_colors, layout=layout, workers=workers, quiet=quiet,
            expand=expand,
        )
    else:
        metric = metric or peer(descriptor).metric
        if metric not in SIMPLE_METRICS:
            raise BadInputError(f"the {descriptor} baseline is not a codebook histogram; use one of {', '.join(SIMPLE_METRICS)}")
        ranker, config = _peer_ranker(benchmark, descriptor, quiet=quiet)
    try:
        with tqdm_class()(total=benchmark.n_queries, unit="query", file=sys.stderr, disable=quiet or None, desc="queries") as bar:
            return run(
                benchmark.items, ranker, protocol=benchmark.protocol, metric=metric, config=config,
                with_ns=benchmark.with_ns, progress=lambda done, total: bar.update(done - bar.n),
            )
    finally:
        if store is not None:
            store.close()


def _print_report(document: dict) -> None:
    config = document["config"]
    what = config["descriptor"]
    if what == "cbir":
        what += f" ({config['n_colors']} colors, {config['layout']} layout)"
    click.echo(f"{document['protocol']} protocol, {document['queries']} queries, {what}, metric {document['metric']}")
    click.echo(f"  mAP    {_num(document['mAP'])}")
    click.echo("  " + "  ".join(f"P@{k} {_num(v)}" for k, v in document["precision_at"].items()))
    click.echo("  " + "  ".join(f"R@{k} {_num(v)}" for k, v in document["recall_at"].items()))
    if "ns_score" in document:
        click.echo(f"  N-S    {document['ns_score']:.3f} (of 4)")
    if document["queries_without_relevant"]:
        click.echo(f"  {document['queries_without_relevant']} queries have no relevant image (left out of mAP)")
    per_class = document["per_class"]
    shown = list(per_class.items())[:30]
    click.echo(f"  per-class AP ({len(per_class)} classes):")
    for group, ap in shown:
        click.echo(f"    {group:>12}  {_num(ap)}")
    if len(per_class) > len(shown):
        click.echo(f"    ... {len(per_class) - len(shown)} more (see --json)")
    click.echo(f"  {document['seconds']:.1f} s")


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _label(document: dict) -> str:
    config = document.get("config", {})
    name = config.get("descriptor", "?")
    if name == "cbir":
        name = f"cbir k={config.get('n_colors')} {config.get('layout')}"
    expanded = f" expand={config['expand']}" if config.get("expand") else ""
    return f"{name} / {document.get('metric', '?')}{expanded}"


@click.command()
@click.argument("dataset", type=str)
@db_option
@click.option("--protocol", default=None,
              help="classes (one sub-folder per class), wang, holidays, ukbench, or csv:FILE (columns path, group[, is_query]) "
                   "[default: a fetched set's own, else classes].")
@click.option("--metric", type=click.Choice(SEARCH_METRICS), default=None,
              help=f"Distance [default: {COMPACT}, as 'cbir search'; a peer baseline's own for --descriptor].")
@click.option("--descriptor", type=click.Choice(DESCRIPTORS), default="cbir", show_default=True,
              help="cbir's codebook histogram (through the index, as 'cbir search'), or a peer baseline: "
                   "rgb-grid3 (pochih/CBIR), hsv-regions (PyImageSearch 2014).")
@click.option("--colors", "n_colors", type=click.IntRange(16, 1024), default=None, help="Codebook size of a new index.")
@click.option("--layout", default=None, help="Spatial layout of a new index.")
@click.option("--workers", type=click.IntRange(1, 256), default=None, help="Extraction processes.")
@click.option("--compare", "compare", multiple=True, metavar="METRIC|DESCRIPTOR|expand=N|REPORT.json",
              help="Also evaluate another metric or descriptor, the compact search with query expansion N (expand=N), "
                   "or load an earlier --json report, and put it on the plot. Repeatable.")
@click.option("--expand", type=click.IntRange(0), default=None, metavar="N",
              help="Compact search with query expansion over the first N results (as 'cbir search --expand').")
@click.option("--plot", "plot_file", type=click.Path(dir_okay=False), default=None,
              help="Write a PNG: precision-recall curve and per-class AP bars.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
@handle_errors
def evaluate(dataset: str, db: str, protocol: str | None, metric: str | None, descriptor: str, n_colors: int | None,
             layout: str | None, workers: int | None, compare: tuple[str, ...], expand: int | None,
             plot_file: str | None, as_json: bool, quiet: bool) -> None:
    """Measure retrieval accuracy on a labelled DATASET (a folder, or a set fetched by 'cbir datasets fetch')."""
    from cbir.errors import BadInputError
    from cbir.evaluation.benchmarks import load_benchmark
    from cbir.fetch.catalog import resolve_dataset

    dataset, protocol = resolve_dataset(dataset, protocol)
    benchmark = load_benchmark(dataset, protocol)  # bad names or an empty folder: fail before writing anything
    check_expand(expand, metric)
    others: list[tuple[str, str | None, dict | None, int | None]] = []
    for spec in compare:
        if spec in SEARCH_METRICS:
            others.append((descriptor, spec, None, None))
        elif spec in DESCRIPTORS:
            others.append((spec, None, None, None))
        elif spec.startswith("expand=") and spec[7:].isdigit():
            others.append(("cbir", COMPACT, None, int(spec[7:])))
        elif spec.endswith(".json"):
            try:
                with open(spec, encoding="utf-8") as handle:
                    others.append(("", None, json.load(handle), None))
            except (OSError, ValueError) as exc:
                raise BadInputError(f"--compare {spec}: cannot read the report ({exc})") from None
        else:
            raise BadInputError(f"--compare {spec!r}: not a metric ({', '.join(SEARCH_METRICS)}), a descriptor "
                                f"({', '.join(DESCRIPTORS)}), expand=N or a .json report")
    options: dict[str, Any] = {"db": db, "n_colors": n_colors, "layout": layout, "workers": workers, "quiet": quiet}
    document = _run_evaluation(benchmark, descriptor=descriptor, metric=metric, expand=expand, **options).to_dict()
    documents = [document]
    for other_descriptor, other_metric, loaded, other_expand in others:
        if loaded is None:
            loaded = _run_evaluation(benchmark, descriptor=other_descriptor, metric=other_metric, expand=other_expand,
                                     **options).to_dict()
        documents.append(loaded)
    if len(documents) > 1:
        document["compare"] = [
            {"label": _label(d), "mAP": d.get("mAP"), "precision_at": d.get("precision_at"), "config": d.get("config")}
            for d in documents[1:]
        ]
    if plot_file:
        from cbir.evaluation.plots import plot_reports

        plot_reports([(_label(d), d) for d in documents], plot_file,
                     title=f"{os.path.basename(benchmark.root)} ({benchmark.protocol} protocol)")
        click.echo(f"plot written to {plot_file}", err=True)
    if as_json:
        emit_json(document)
        return
    for d in documents:
        _print_report(d)


@click.command("make-benchmark")
@click.argument("source", type=str)
@click.argument("out", type=str)
@click.option("--copies", type=click.IntRange(1, 50), default=6, show_default=True, help="Edited copies per source image.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds the edits.")
@click.option("--max-side", type=click.IntRange(16), default=1024, show_default=True, help="Sources are read at up to this side.")
@click.option("--all-queries", is_flag=True, help="Make every image a query (default: only the originals).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@handle_errors
def make_benchmark(source: str, out: str, copies: int, seed: int, max_side: int, all_queries: bool,
                   as_json: bool, quiet: bool) -> None:
    """Make a near-duplicate benchmark in OUT from the images under SOURCE (with groundtruth.csv)."""

    from cbir.evaluation.transforms import make_benchmark as make

    with progress_bar("copies", quiet=quiet) as progress:
        summary = make(source, out, copies=copies, seed=seed, max_side=max_side, all_queries=all_queries, progress=progress)
    if as_json:
        emit_json(summary.to_dict())
        return
    click.echo(f"{summary.images} images in {summary.groups} groups ({summary.queries} queries) written to {summary.out}", err=True)
    for path, reason in summary.skipped:
        click.echo(f"  skipped {path}: {reason}", err=True)
    click.echo(f"measure with: cbir evaluate {summary.out} --protocol csv:{summary.ground_truth} --db {summary.out}.db", err=True)
