"""Which vector index the compact vectors get, by collection size and a memory budget (as autofaiss chooses).

* ``flat`` below :data:`COMPACT_ANN_MIN_SIZE` vectors: an exact scan, already fast there.
* ``ivf`` (IVF-Flat, about sqrt(n) lists, :data:`COMPACT_NPROBE` visited) from that size while
  the full vectors fit the memory budget: n x 128 x 4 bytes (512 MB at a million).
* ``ivfpq`` when they do not: IVF lists of product-quantized codes (:data:`PQ_BYTES` bytes a vector),
  whose candidates are re-ranked exactly from the full vectors, kept in a file beside the index
  and memory-mapped, so only the pages of the candidates read are resident.

HNSW was not chosen: its graph adds 2 x 32 links x 4 bytes = 256 bytes per vector at the base level
(half the 512 bytes of a 128-d vector again), FAISS cannot memory-map it nor remove from it, and adding
to it is slow; IVF adds and removes vectors without retraining (:mod:`cbir.compact_index`), which is
what index runs need.

The budget is ``CBIR_INDEX_MEMORY`` (bytes, or with a K/M/G suffix: ``CBIR_INDEX_MEMORY=500M``),
2 GB by default.
"""

from __future__ import annotations

import os

from cbir.errors import BadInputError

#: From this many images the compact vectors are searched through IVF lists (approximate); below, a flat scan
#: (exact). Measured by tests/benchmarks/bench_ann_threshold.py on 128-d vectors derived from Wang photos, one
#: thread, top 10, loaded machine: IVF at the smallest nprobe reaching recall@10 >= 0.95 is faster than the flat
#: scan at every size tried (10,000: 0.024 against 0.075 ms), but the flat scan costs nothing next to a ~3 ms
#: query until the vectors leave the CPU caches: 0.26 ms at 30,000, 0.38-0.44 ms at 40,000, 0.71-0.87 ms at
#: 50,000, 1.2-1.3 ms at 70,000, then 8.5-10 ms at 100,000 (IVF: 0.07 ms) and 48-53 ms at 300,000 (IVF:
#: 0.11 ms). So exact below 50,000, where a flat scan stays under ~1 ms; ``search.searcher.APPROX_MIN_SIZE``
#: is the same number.
COMPACT_ANN_MIN_SIZE = 50_000
#: IVF lists visited per compact query: measured recall@10 >= 0.95 at 1M (bench_search.py --compact).
COMPACT_NPROBE = 24
#: Bytes of one IVF-PQ code (128-d vectors: 32 sub-quantizers of 8 bits, 4 dimensions each).
PQ_BYTES = 32
#: Candidates an IVF-PQ search takes per wanted result before the exact re-ranking.
PQ_CANDIDATES = 10
#: Default memory budget for the full compact vectors of the index (bytes).
DEFAULT_MEMORY_BUDGET = 2 * 1024**3

_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def parse_bytes(text: str) -> int:
    """``"2G"``, ``"500M"``, ``"1048576"`` -> bytes; a one-line error for anything else."""
    value = str(text).strip().upper().removesuffix("B")
    unit = value[-1:] if value[-1:] in _UNITS and value[-1:] else ""
    try:
        number = float(value[: len(value) - len(unit)])
    except ValueError:
        raise BadInputError(f"memory budget {text!r} is not a size like 2G, 500M or 1048576") from None
    if number <= 0:
        raise BadInputError(f"memory budget {text!r} must be positive")
    return int(number * _UNITS[unit])


def memory_budget() -> int:
    """The budget for the full compact vectors: ``CBIR_INDEX_MEMORY`` or :data:`DEFAULT_MEMORY_BUDGET`."""
    configured = os.environ.get("CBIR_INDEX_MEMORY")
    return parse_bytes(configured) if configured else DEFAULT_MEMORY_BUDGET


def compact_kind(count: int, dim: int = 128, *, budget: int | None = None) -> str:
    """``"flat"``, ``"ivf"`` or ``"ivfpq"`` for ``count`` compact vectors of ``dim`` float32 (see the module doc)."""
    if count * dim * 4 > (memory_budget() if budget is None else budget):
        return "ivfpq"
    return "ivf" if count >= COMPACT_ANN_MIN_SIZE else "flat"
