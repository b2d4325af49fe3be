"""Near-duplicate groups: pair precision/recall/F1 of ``cbir duplicates`` next to pHash and dHash, and the self-join at scale.

Run by hand (about 15 minutes on two cores; the sets are made once under --work)::

    pip install -e '.[bench]'          # imagehash and scikit-image: benchmark-only
    python tests/benchmarks/bench_duplicates.py --wang DIR [--work DIR] [--plot pr.png] [--json]
    python tests/benchmarks/bench_duplicates.py --scale 100000 [--json]

Accuracy. Three ``cbir make-benchmark`` sets whose groups are the ground truth:
``wang-dup`` (200 Wang images, 4 edited copies each), ``skimage-dup`` (scikit-image's
sample images and their quadrants, 6 copies each; built as in bench_accuracy.py) and
``photo-dup`` (the same 200 Wang images enlarged 4x to 1536 px, then 4 copies each at
up to 1536 px: photo-sized files). Each set is indexed by the real indexer with the
defaults; the groups come from :func:`search.duplicates.find_duplicates` (the path
``cbir duplicates`` runs) for every metric and threshold of a grid, and from pHash and
dHash (imagehash, 64-bit) at Hamming thresholds, grouped the same way (complete linkage).
Printed: the best threshold of each metric per set (colour alone), then the joint grid of
what ``cbir duplicates`` runs (chi2-soft threshold x Hamming bound x hash veto, compact and
hash candidates): of the settings at least as good as pHash at Hamming 10 on every set, the
one with the best mean F1 (how the defaults were chosen), and the table at the defaults.

Scale. ``--scale N`` times the self-join over N histograms: see duplicates_scale.py.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_accuracy import _wang_dup
from duplicates_scale import scale

from cbir.distances import paired_distance_function
from cbir.duplicates import group_edges, pair_scores
from cbir.evaluation.transforms import GROUND_TRUTH, make_benchmark
from cbir.perceptual import hamming as hamming_bits
from cbir.store import Store
from indexer import index_folder
from search import Searcher
from search.duplicates import (
    DEFAULT_HAMMING,
    DEFAULT_K,
    DEFAULT_THRESHOLD,
    DEFAULT_VETO,
    DUPLICATE_METRIC,
    NO_HASH,
    candidate_edges,
    combined,
    duplicate_edges,
    stored_hashes,
)

METRIC_GRIDS = {
    "chi2-soft": np.round(np.arange(0.02, 0.301, 0.01), 3),
    "chi2": np.round(np.arange(0.05, 0.601, 0.025), 3),
    "hellinger": np.round(np.arange(0.1, 0.701, 0.025), 3),
    "l1": np.round(np.arange(0.1, 1.201, 0.05), 3),
    "qfd": np.round(np.arange(0.02, 0.401, 0.02), 3),
}
#: Measured by default (QFD's full distance matrix costs minutes: --metrics qfd to add it).
DEFAULT_METRICS = ["chi2-soft", "chi2", "hellinger", "l1"]
HAMMING = list(range(2, 17, 2)) + [10]
#: The joint grid of ``cbir duplicates``: chi2-soft threshold x Hamming bound (-1: colour alone).
JOINT_T = np.round(np.arange(0.22, 0.401, 0.03), 3)
JOINT_H = [-1, 10, 12, 14]
#: Hashes more than this many bits apart rule a pair out whatever its colours. Measured before: vetoes of
#: 18-30 bits, and sparing pairs of chi2-soft <= 0.10 or 0.14 from the veto, all had a lower mean F1.
JOINT_VETO = [None, 28, 30, 32, 34, 36]
log = print


def _photo_dup(work: Path, wang: Path) -> Path:
    """200 Wang images enlarged 4x (1536 px), then make-benchmark at up to 1536 px."""
    out = work / "photo-dup"
    if (out / GROUND_TRUTH).exists():
        return out
    source = work / "wang-200-x4"
    source.mkdir(parents=True, exist_ok=True)
    for n in range(0, 1000, 5):
        target = source / f"{n}.jpg"
        if not target.exists():
            image = cv2.imread(str(wang / f"{n}.jpg"))
            big = cv2.resize(image, (image.shape[1] * 4, image.shape[0] * 4), interpolation=cv2.INTER_CUBIC)
            cv2.imwrite(str(target), big, [cv2.IMWRITE_JPEG_QUALITY, 92])
    make_benchmark(source, out, copies=4, seed=0, max_side=1536, all_queries=True)
    return out


def _second_set(work: Path) -> Path:
    """skimage-dup, built by the library (as ``cbir datasets fetch skimage-dup``) into ``work`` once."""
    from cbir.fetch.local_sets import build_skimage_dup

    out = work / "skimage-dup"
    if not (out / GROUND_TRUTH).exists():
        build_skimage_dup(out)
    return out


def _truth(folder: Path) -> list[list[str]]:
    groups: dict[str, list[str]] = {}
    with open(folder / GROUND_TRUTH, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            groups.setdefault(row["group"], []).append(str((folder / row["path"]).resolve()))
    return list(groups.values())


def _index(folder: Path, work: Path) -> Path:
    db = work / f"{folder.name}.db"
    with Store(db, create=True) as store:  # a sync: quick when up to date; fills hashes into an older index
        index_folder(folder, store, workers=2)
    return db


def cbir_curves(db: Path, truth: list[list[str]], metrics: list[str], k: int) -> dict[str, list[dict]]:
    """Per metric: pair scores at every threshold of its grid, colour alone (candidates from one self-join at the largest)."""
    searcher = Searcher.open(db)
    ids, X = searcher.histograms()
    paths = searcher.store.paths(ids)
    names = [paths[int(i)] for i in ids]
    curves = {}
    for metric in metrics:
        grid = METRIC_GRIDS[metric]
        embedding, distance = searcher.metric(metric)
        paired = paired_distance_function(metric, searcher.codebook.centers)
        left, right, exact, _ = candidate_edges(searcher, embedding, paired, ids, X, threshold=float(grid[-1]), k=k)

        # Every exact distance once: the grid groups the same candidates at many thresholds.
        X64 = X.astype(np.float64)
        full = np.stack([distance(row, X64) for row in X64])

        def pairwise(positions: np.ndarray, full=full) -> np.ndarray:  # type: ignore[no-untyped-def]
            return full[np.ix_(positions, positions)]

        curve = []
        for threshold in grid:
            groups = group_edges(len(ids), left, right, exact, threshold=float(threshold), pairwise=pairwise)
            scores = pair_scores([[names[p] for p in g] for g in groups], truth)
            curve.append({"threshold": float(threshold), **scores})
        curves[metric] = curve
    searcher.store.close()
    return curves


def joint_curves(db: Path, truth: list[list[str]], k: int) -> dict[str, list[dict]]:
    """``cbir duplicates`` as it runs (compact candidates + hash join, exact chi2-soft or Hamming, complete
    linkage) at every (threshold, hamming) of the grid: one candidate set at the largest of both."""
    searcher = Searcher.open(db)
    ids, X = searcher.histograms()
    paths = searcher.store.paths(ids)
    names = [paths[int(i)] for i in ids]
    hashes = stored_hashes(searcher.store, ids)
    if np.any(hashes == NO_HASH):
        raise SystemExit(f"{db}: {np.count_nonzero(hashes == NO_HASH)} rows without a perceptual hash; index again")
    paired = paired_distance_function(DUPLICATE_METRIC, searcher.codebook.centers)
    left, right, colour, bits = duplicate_edges(searcher, ids, X, hashes, paired, threshold=float(JOINT_T[-1]), k=k,
                                                hamming=max(JOINT_H))
    distance = searcher.metric(DUPLICATE_METRIC)[1]
    X64 = X.astype(np.float64)
    full = np.stack([distance(row, X64) for row in X64])
    full_bits = hamming_bits(hashes[:, None], hashes[None, :])
    curves: dict[str, list[dict]] = {}
    for h in JOINT_H:
        for veto in JOINT_VETO if h >= 0 else [None]:
            hamming = None if h < 0 else h
            curve = []
            for threshold in JOINT_T:
                t = float(threshold)
                exact = combined(colour, bits, threshold=t, hamming=hamming, veto=veto)
                matrix = combined(full, full_bits, threshold=t, hamming=hamming, veto=veto)
                groups = group_edges(len(ids), left, right, exact, threshold=t,
                                     pairwise=lambda p, m=matrix: m[np.ix_(p, p)])
                curve.append({"threshold": t, "hamming": h, "veto": veto,
                              **pair_scores([[names[p] for p in g] for g in groups], truth)})
            curves[_key(h, veto)] = curve
    searcher.store.close()
    return curves


def hash_curves(truth: list[list[str]]) -> dict[str, list[dict]]:
    """pHash and dHash (64 bits): all-pairs Hamming distances, complete linkage at each threshold."""
    import imagehash
    from PIL import Image

    names = sorted(p for group in truth for p in group)
    curves = {}
    for name, fn in (("phash", imagehash.phash), ("dhash", imagehash.dhash)):
        bits = []
        for path in names:
            with Image.open(path) as image:
                bits.append(fn(image).hash.reshape(-1))
        B = np.array(bits, dtype=np.uint8)
        D = (B[:, None, :] != B[None, :, :]).sum(axis=2)
        left, right = np.triu_indices(len(names), 1)
        curve = []
        for threshold in sorted(set(HAMMING)):
            near = D[left, right] <= threshold
            groups = group_edges(len(names), left[near], right[near], D[left, right][near].astype(float),
                                 threshold=float(threshold), pairwise=lambda p, D=D: D[np.ix_(p, p)].astype(float))
            scores = pair_scores([[names[p] for p in g] for g in groups], truth)
            curve.append({"threshold": float(threshold), **scores})
        curves[name] = curve
    return curves


def by_edit(folder: Path, db: Path, threshold: float) -> dict[str, dict[str, float]]:
    """Per edit: share of the copies made with it that cbir groups with their original at ``threshold``,
    and that are within Hamming 10 of it by pHash."""
    import imagehash
    from PIL import Image

    with open(folder / GROUND_TRUTH, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    searcher = Searcher.open(db)
    group_of = {m.path: g for g, group in enumerate(searcher.duplicates(threshold=threshold).groups) for m in group.members}
    searcher.store.close()
    path = {r["path"]: str((folder / r["path"]).resolve()) for r in rows}
    original = {r["group"]: path[r["path"]] for r in rows if r["transform"] == "original"}
    hashes = {}
    for file in path.values():
        with Image.open(file) as image:
            hashes[file] = imagehash.phash(image)
    counts: dict[str, list[int]] = {}
    for r in rows:
        if r["transform"] == "original":
            continue
        copy, source = path[r["path"]], original[r["group"]]
        grouped = copy in group_of and group_of.get(source) == group_of[copy]
        close = hashes[copy] - hashes[source] <= 10
        # Edits name themselves in the transform column by a word ("crop0.70x0.80", "scale0.50", "contrast...").
        for edit in {m.group(0) for m in re.finditer(r"[a-z]{3,}", r["transform"])}:
            seen = counts.setdefault(edit, [0, 0, 0])
            seen[0] += 1
            seen[1] += grouped
            seen[2] += close
    return {edit: {"copies": n, "cbir": a / n, "phash": b / n} for edit, (n, a, b) in sorted(counts.items())}


def accuracy(args: argparse.Namespace) -> dict:
    args.work.mkdir(parents=True, exist_ok=True)
    sets = {"wang-dup": _wang_dup(args.work, args.wang), "skimage-dup": _second_set(args.work),
            "photo-dup": _photo_dup(args.work, args.wang)}
    results: dict = {}
    for name, folder in sets.items():
        started = time.perf_counter()
        saved = args.work / f"{name}-curves-k{args.k}.json"
        if saved.exists():  # curves of an earlier run (delete the file to measure again)
            results[name] = json.loads(saved.read_text())
            if set(args.metrics) <= set(results[name]):
                continue
        db = _index(folder, args.work)
        truth = _truth(folder)
        results[name] = {"images": sum(len(g) for g in truth), "groups": len(truth),
                         **cbir_curves(db, truth, args.metrics, args.k), **hash_curves(truth)}
        saved.write_text(json.dumps(results[name]))
        log(f"{name}: {results[name]['images']} images, {time.perf_counter() - started:.0f} s", file=sys.stderr)
    for name, folder in sets.items():
        started = time.perf_counter()
        saved = args.work / f"{name}-joint-k{args.k}.json"
        if saved.exists() and not args.joint_again:
            results[name].update(json.loads(saved.read_text()))
            continue
        results[name].update(joint := joint_curves(_index(folder, args.work), _truth(folder), args.k))
        saved.write_text(json.dumps(joint))
        log(f"{name}: joint grid {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return results


def _key(hamming: int | None, veto: int | None) -> str:
    if hamming is None or hamming < 0:
        return "cbir-h-1"
    return f"cbir-h{hamming}" + (f"-v{veto}" if veto is not None else "")


def choose_joint(results: dict) -> dict:
    """The (threshold, hamming) of ``cbir duplicates``: of those at least as good as pHash (Hamming 10) on every
    set, the one with the best smallest margin over pHash, then the best mean F1."""
    options = []
    for key in [k for k in next(iter(results.values())) if k.startswith("cbir-h")]:
        for i, point in enumerate(next(iter(results.values()))[key]):
            f1 = [r[key][i]["f1"] for r in results.values()]
            margin = [a - _at(r["phash"], 10.0)["f1"] for a, r in zip(f1, results.values())]
            options.append((min(margin), float(np.mean(f1)), key, i, point["threshold"], key[4:]))
    # At least pHash on every set first (margin >= 0), then the best mean F1; else the best margin.
    options.sort(key=lambda o: (o[0] >= 0, o[1] if o[0] >= 0 else o[0]), reverse=True)
    log("| threshold | hamming | smallest F1 margin over pHash | mean F1 | " + " | ".join(results) + " |")
    log("|---|---|---|---|" + "---|" * len(results))
    for margin, mean, key, i, t, h in options[:12]:
        log(f"| {t:g} | {h} | {margin:+.3f} | {mean:.3f} | " + " | ".join(f"{r[key][i]['f1']:.3f}" for r in results.values()) + " |")
    margin, mean, key, i, t, h = options[0]
    default_key = _key(DEFAULT_HAMMING, DEFAULT_VETO)
    log(f"chosen: threshold {t:g}, hamming {h} (smallest margin {margin:+.3f}, mean F1 {mean:.3f}); "
        f"the defaults in the code: {DEFAULT_THRESHOLD:g}, {DEFAULT_HAMMING}")
    log("| set | method | P | R | F1 |")
    log("|---|---|---|---|---|")
    table = {}
    for name, result in results.items():
        rows = {"cbir (defaults)": _at(result[default_key], DEFAULT_THRESHOLD) if default_key in result else None,
                "cbir colour only": _at(result["cbir-h-1"], DEFAULT_THRESHOLD),
                "pHash <= 10": _at(result["phash"], 10.0), "dHash <= 10": _at(result["dhash"], 10.0)}
        table[name] = rows
        for method, point in rows.items():
            if point is not None:
                log(f"| {name} | {method} | {point['precision']:.3f} | {point['recall']:.3f} | {point['f1']:.3f} |")
    return {"chosen": {"threshold": t, "hamming": h, "smallest_margin": margin, "mean_f1": mean}, "table": table}


def _at(curve: list[dict], threshold: float) -> dict:
    return min(curve, key=lambda point: abs(point["threshold"] - threshold))


def report(results: dict, metrics: list[str]) -> dict:
    summary: dict = {"sets": {}, "shared": {}}
    methods = metrics + ["phash", "dhash"]
    for method in methods:  # the shared threshold: best mean F1 over the sets (the smallest F1 is shown too)
        thresholds = [p["threshold"] for p in next(iter(results.values()))[method]]
        f1 = np.array([[_at(r[method], t)["f1"] for r in results.values()] for t in thresholds])
        best = int(np.argmax(f1.mean(axis=1)))
        summary["shared"][method] = {"threshold": thresholds[best], "mean_f1": float(f1[best].mean()),
                                     "min_f1": float(f1[best].min())}
    log("| set | method | best threshold | P | R | F1 | F1 at shared threshold | at default / Hamming 10 (P, R, F1) |")
    log("|---|---|---|---|---|---|---|---|")
    for name, result in results.items():
        summary["sets"][name] = {}
        for method in methods:
            curve = result[method]
            best = max(curve, key=lambda p: p["f1"])
            shared = _at(curve, summary["shared"][method]["threshold"])
            fixed = _at(curve, DEFAULT_THRESHOLD if method == DUPLICATE_METRIC else 10.0) if method in (DUPLICATE_METRIC, "phash", "dhash") else None
            summary["sets"][name][method] = {"best": best, "shared": shared, "default": fixed}
            fixed_text = f"{fixed['precision']:.3f}, {fixed['recall']:.3f}, **{fixed['f1']:.3f}**" if fixed else "-"
            log(f"| {name} | {method} | {best['threshold']:g} | {best['precision']:.3f} | {best['recall']:.3f} | "
                f"{best['f1']:.3f} | {shared['f1']:.3f} (at {shared['threshold']:g}) | {fixed_text} |")
    for method, shared in summary["shared"].items():
        log(f"shared threshold of {method}: {shared['threshold']:g} (mean F1 over the sets {shared['mean_f1']:.3f}, "
            f"smallest {shared['min_f1']:.3f})")
    return summary


def plot(results: dict, metrics: list[str], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 4.5), squeeze=False)
    for ax, (name, result) in zip(axes[0], results.items()):
        for method in metrics + ["phash", "dhash"]:
            curve = result[method]
            ax.plot([p["recall"] for p in curve], [p["precision"] for p in curve], marker=".", label=method)
        joint = result.get(_key(DEFAULT_HAMMING, DEFAULT_VETO))
        if joint:  # what cbir duplicates runs: colour or hash (default hamming and veto) over the thresholds
            ax.plot([p["recall"] for p in joint], [p["precision"] for p in joint], marker="o", color="k",
                    label=f"cbir duplicates (hamming {DEFAULT_HAMMING}, veto {DEFAULT_VETO})")
            point = _at(joint, DEFAULT_THRESHOLD)
            ax.plot(point["recall"], point["precision"], "r*", markersize=14, label=f"default {DEFAULT_THRESHOLD:g}")
        ax.set(title=f"{name} ({result['images']} images)", xlabel="pair recall", ylabel="pair precision", xlim=(0, 1), ylim=(0, 1.02))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


args_wang = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "wang"


def main() -> None:
    global log, args_wang
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--wang", type=Path, default=args_wang)
    parser.add_argument("--work", type=Path, default=Path("/tmp/cbir-bench-duplicates"))
    parser.add_argument("--metrics", nargs="+", default=DEFAULT_METRICS, choices=list(METRIC_GRIDS))
    parser.add_argument("--k", type=int, default=DEFAULT_K)
    parser.add_argument("--plot", help="write the precision-recall curves to this image")
    parser.add_argument("--by-edit", action="store_true", help="also: which edits each method recovers")
    parser.add_argument("--scale", type=int, help="time the self-join over this many histograms instead")
    parser.add_argument("--scale-db", type=Path, help="with --scale: make the store here once and reuse it")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="FAISS and BLAS threads [default: every core, as cbir duplicates runs]")
    parser.add_argument("--joint-again", action="store_true", help="measure the (threshold, hamming, veto) grid again")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    args_wang = args.wang
    if args.json:
        log = lambda *a, **kw: print(*a, file=sys.stderr)
    from cbir.vectors import use_threads

    use_threads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    if args.scale:
        document = scale(args.scale, args.work, args.k, args.scale_db,
                         source=lambda: _index(_wang_dup(args.work, args.wang), args.work))
    else:
        results = accuracy(args)
        document = {"results": results, "summary": report(results, args.metrics), "joint": choose_joint(results)}
        if args.by_edit:
            document["by_edit"] = {}
            for name in results:
                folder = args.work / name
                document["by_edit"][name] = edits = by_edit(folder, _index(folder, args.work), DEFAULT_THRESHOLD)
                log(f"{name}: copies grouped with their original at {DEFAULT_THRESHOLD:g} (cbir) / within Hamming 10 (pHash): "
                    + ", ".join(f"{e} {v['cbir']:.2f}/{v['phash']:.2f}" for e, v in edits.items()))
        if args.plot:
            plot(results, args.metrics, args.plot)
            log(f"plot written to {args.plot}", file=sys.stderr)
    if args.json:
        print(json.dumps(document, indent=1))


if __name__ == "__main__":
    main()
