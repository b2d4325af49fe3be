"""Retrieval accuracy of descriptor configurations on Wang and on a near-duplicate set: the tuning table.

Run by hand (about 10-20 minutes on two cores), after fetching the two sets by name::

    cbir datasets fetch wang
    pip install scikit-image && cbir datasets fetch skimage-dup
    python tests/benchmarks/bench_accuracy.py [--wang-dup] [--quick] [--work DIR]

The sets are found by name where ``cbir datasets fetch`` put them (``--wang DIR`` and
``--skimage-dup DIR`` point elsewhere). The second set is ``cbir make-benchmark`` (every
image a query) applied to the sample images that ship inside scikit-image (``skimage/data``:
each image whole and its four quadrants, 130 sources, 6 edited copies each: 910 images; see
``cbir/fetch/local_sets.py``), so it shares no image with Wang and rewards other things:
near-duplicates under crops, rescaling, JPEG, brightness/contrast and hue shifts, flips,
rotations and blur, half of them grayscale. With ``--wang-dup`` a third set is the generator
applied to 200 Wang images (made under ``--work``).

For every (codebook size, analysis resolution) the images are decoded and quantized
once, with the codebook a real ``cbir index`` run learns (one database per size and resolution); layouts, metrics
and query expansion are then evaluated on those code maps with the library's own
functions (``cbir.histogram.histogram``, ``cbir.distances.distance_function``,
``cbir.evaluation``), leave-one-out, ties broken by path order as the index does.
The peers are measured with ``cbir.evaluation.peers``. The final default is confirmed through
the real command: ``cbir evaluate wang``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from cbir.distances import chi2, distance_function, soft_similarity, soften
from cbir.evaluation import Item, evaluate
from cbir.evaluation.benchmarks import load_benchmark
from cbir.evaluation.peers import PeerIndex, peer
from cbir.evaluation.transforms import GROUND_TRUTH, make_benchmark
from cbir.fetch import find_dataset
from cbir.histogram import DEFAULT_LAYOUT, histogram
from cbir.images import decode_image, read_bytes
from cbir.store import Store
from indexer import index_folder
from indexer.scan import scan


@dataclass(frozen=True)
class Config:
    """One row of the table."""

    label: str
    n_colors: int
    max_side: int
    layout: str
    metric: str
    expand: tuple[int, int] = (0, 0)  # (query weight, results averaged in); (0, 0): none
    power: float | None = None  # chi2-soft's root-normalization exponent; None: the library's SOFT_POWER


LITERAL = Config("design card taken literally", 128, 512, "global", "chi2")
DEFAULT = Config("**default**", 128, 192, DEFAULT_LAYOUT, "chi2-soft")
ROWS = [
    LITERAL,
    Config("... analysed at 192 px", 128, 192, "global", "chi2"),
    Config("hellinger", 128, 192, "global", "hellinger"),
    Config("qfd (QBIC)", 128, 192, "global", "qfd"),
    Config("64 colors", 64, 192, "global", "chi2"),
    Config("256 colors", 256, 192, "global", "chi2"),
    Config("layout global+grid3", 128, 192, "global+grid3", "chi2"),
    Config("layout bic+grid3", 128, 192, "bic+grid3", "chi2"),
    Config("bic+grid3, chi2-soft with square root (the previous default)", 128, 192, "bic+grid3", "chi2-soft", power=0.5),
    Config("bic+grid3, chi2-soft, power 0.35", 128, 192, "bic+grid3", "chi2-soft", power=0.35),
    Config("layout classes+grid3 (3 pixel classes)", 128, 192, "classes+grid3", "chi2-soft", power=0.5),
    Config("layout grid3-classes+classes, chi2", 128, 192, DEFAULT_LAYOUT, "chi2"),
    Config("layout grid3-classes+classes, chi2-soft with square root", 128, 192, DEFAULT_LAYOUT, "chi2-soft", power=0.5),
    Config("layout grid3-classes+bic", 128, 192, "grid3-classes+bic", "chi2-soft"),
    DEFAULT,
    Config("default at 256 px", 128, 256, DEFAULT_LAYOUT, "chi2-soft"),
    Config("default with 256 colors", 256, 192, DEFAULT_LAYOUT, "chi2-soft"),
    Config("default + query expansion (query x2 + 2 results)", 128, 192, DEFAULT_LAYOUT, "chi2-soft", (1, 3)),
]
QUICK = [LITERAL, DEFAULT]


@dataclass
class Dataset:
    name: str
    root: Path
    items: list[Item]
    paths: list[str]
    files: list  # indexer.scan.FoundFile, in id order


def _dataset(name: str, folder: Path, protocol: str) -> Dataset:
    benchmark = load_benchmark(folder, protocol)
    files, _ = scan(folder)
    paths = [f.path for f in files]
    known = {item.path for item in benchmark.items}
    if set(paths) != known:
        raise SystemExit(f"{folder}: scan and benchmark disagree on the images")
    return Dataset(name, Path(benchmark.root), benchmark.items, paths, files)


def _fetched(name: str, given: Path | None) -> Path:
    """A set's folder: the one given, else the one ``cbir datasets fetch NAME`` made."""
    if given is not None:
        return given
    found = find_dataset(name)
    if found is None:
        raise SystemExit(f"the {name} set is not fetched: run 'cbir datasets fetch {name}' (or pass --{name} DIR)")
    return found


def _wang_dup(work: Path, wang: Path) -> Path:
    out = work / "wang-dup"
    if (out / GROUND_TRUTH).exists():
        return out
    source = work / "wang-200"
    source.mkdir(parents=True, exist_ok=True)
    for n in range(0, 1000, 5):
        target = source / f"{n}.jpg"
        if not target.exists():
            os.symlink(wang / f"{n}.jpg", target)
    make_benchmark(source, out, copies=4, seed=0, all_queries=True)
    return out


def _analysed(path: str, max_side: int) -> np.ndarray:
    """The pixels a histogram is made of: decoded exactly as ``cbir.descriptor.Descriptor.of_bytes`` decodes."""
    return decode_image(read_bytes(path), path=path, max_side=max_side).rgb


_codes_cache: dict[tuple[str, int, int], tuple[np.ndarray, list[np.ndarray]]] = {}


def _codes(data: Dataset, n_colors: int, max_side: int, work: Path) -> tuple[np.ndarray, list[np.ndarray]]:
    """Codebook centers and code maps: the codebook is learned by a real ``cbir index`` run (its own database)."""
    key = (data.name, n_colors, max_side)
    if key not in _codes_cache:
        db = work / f"{data.name}-k{n_colors}-s{max_side}.db"
        with Store(db, create=True) as store:
            index_folder(data.root, store, n_colors=n_colors, layout="global", max_side=max_side, workers=1)
            found = store.codebook()
        if found is None:
            raise SystemExit(f"indexing {data.root} learned no codebook")
        codebook = found[1]
        codes = [codebook.quantize(_analysed(p, max_side)) for p in data.paths]
        _codes_cache[key] = (codebook.centers, codes)
    return _codes_cache[key]


def _measure(data: Dataset, config: Config, work: Path) -> tuple[float, float]:
    centers, codes = _codes(data, config.n_colors, config.max_side, work)
    X = np.stack([histogram(c, config.n_colors, layout=config.layout) for c in codes])
    distance = distance_function(config.metric, centers)
    if config.power is not None:
        spread = soft_similarity(centers)
        X = soften(X, spread, power=config.power)  # then plain chi2 against softened rows
        distance = chi2
    row = {p: i for i, p in enumerate(data.paths)}
    order_key = np.arange(len(X))
    weight, m = config.expand

    def rank(query: np.ndarray) -> np.ndarray:
        return np.lexsort((order_key, distance(query, X)))

    def ranker(batch: list[str]) -> list[list[str]]:
        out = []
        for path in batch:
            query = X[row[path]]
            order = rank(query)
            if m:
                query = (weight * query + X[order[:m]].sum(axis=0)) / (weight + m)
                order = rank(query)
            out.append([data.paths[i] for i in order])
        return out

    report = evaluate(data.items, ranker, protocol=data.name, metric=config.metric)
    return report.mean_ap, report.precision_at(10)


def _measure_peer(data: Dataset, name: str) -> tuple[float, float]:
    index = PeerIndex.build(peer(name), data.paths)
    report = evaluate(data.items, index.rank_paths, protocol=data.name, metric=peer(name).metric)
    return report.mean_ap, report.precision_at(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--wang", type=Path, default=None, help="Wang's folder [default: the fetched set 'wang'].")
    parser.add_argument("--skimage-dup", type=Path, default=None, help="[default: the fetched set 'skimage-dup'].")
    parser.add_argument("--work", type=Path, default=Path("/tmp/cbir-bench-accuracy"))
    parser.add_argument("--wang-dup", action="store_true", help="Also measure the generator applied to 200 Wang images.")
    parser.add_argument("--quick", action="store_true", help="Only the literal card, the default and QE.")
    parser.add_argument("--no-peers", action="store_true")
    args = parser.parse_args()

    args.work.mkdir(parents=True, exist_ok=True)
    args.wang = _fetched("wang", args.wang)
    second = _fetched("skimage-dup", args.skimage_dup)
    sets = [
        _dataset("wang", args.wang, "wang"),
        _dataset("skimage-dup", second, f"csv:{second / GROUND_TRUTH}"),
    ]
    if args.wang_dup:
        dup = _wang_dup(args.work, args.wang)
        sets.append(_dataset("wang-dup", dup, f"csv:{dup / GROUND_TRUTH}"))
    print(f"sets: {', '.join(f'{d.name} ({len(d.paths)} images)' for d in sets)}", file=sys.stderr)

    header = "| configuration | colors | px | layout | metric | " + " | ".join(f"{d.name} mAP | P@10" for d in sets) + " |"
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    if not args.no_peers:
        for name in ("rgb-grid3", "hsv-regions"):
            cells = []
            for data in sets:
                mean_ap, p10 = _measure_peer(data, name)
                cells.append(f"{mean_ap:.4f} | {p10:.4f}")
            print(f"| peer: {peer(name).summary} | - | 512 | - | {peer(name).metric} | " + " | ".join(cells) + " |", flush=True)
    for config in QUICK if args.quick else ROWS:
        started = time.perf_counter()
        cells = []
        for data in sets:
            mean_ap, p10 = _measure(data, config, args.work)
            cells.append(f"{mean_ap:.4f} | {p10:.4f}")
        metric = config.metric + (f" (power {config.power})" if config.power is not None else "")
        metric += f" + QE({config.expand[0]}+{config.expand[1]})" if config.expand[1] else ""
        print(
            f"| {config.label} | {config.n_colors} | {config.max_side} | {config.layout} | {metric} | " + " | ".join(cells) + " |",
            flush=True,
        )
        print(f"  ({time.perf_counter() - started:.0f} s)", file=sys.stderr)


if __name__ == "__main__":
    main()
