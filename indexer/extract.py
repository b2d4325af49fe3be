"""Extraction in worker processes: file -> (hash, histogram) or the reason it failed."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterable, Iterator
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np

from cbir.codebook import Codebook
from cbir.descriptor import Descriptor, content_hash
from cbir.errors import BadImageError
from cbir.images import read_bytes

_descriptor: Descriptor | None = None
_known_hashes: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Outcome:
    """What a worker found for one file: a histogram, a known hash (no decode needed) or an error."""

    path: str
    content_hash: str | None = None
    histogram: np.ndarray | None = None
    width: int = 0
    height: int = 0
    error: str | None = None


def _init(centers: np.ndarray, layout: str, max_side: int, max_pixels: int, known: frozenset[str]) -> None:
    global _descriptor, _known_hashes
    codebook = Codebook(centers)
    _descriptor = Descriptor(codebook, layout=layout, max_side=max_side, max_pixels=max_pixels)
    _known_hashes = known


def _extract(path: str) -> Outcome:
    if _descriptor is None:
        raise RuntimeError("worker not initialised")
    try:
        data = read_bytes(path)
        digest = content_hash(data)
        if digest in _known_hashes:
            return Outcome(path, content_hash=digest)
        found = _descriptor.of_bytes(data, path=path)
        return Outcome(path, digest, found.histogram, found.width, found.height)
    except BadImageError as exc:
        return Outcome(path, error=exc.reason)
    except MemoryError:
        return Outcome(path, error="out of memory while decoding")
    except Exception as exc:  # a decoder bug on one hostile file must not stop the batch
        return Outcome(path, error=f"unexpected decoder error ({type(exc).__name__}: {exc})")


def _extract_many(paths: list[str]) -> list[Outcome]:
    return [_extract(path) for path in paths]


def extract_all(
    paths: Iterable[str],
    descriptor: Descriptor,
    *,
    workers: int,
    known_hashes: frozenset[str] = frozenset(),
) -> Iterator[Outcome]:
    """Extract every path, in the given order, with ``workers`` processes (1: in this process).

    Files whose content hash is in ``known_hashes`` are hashed but not decoded.
    At most a few tasks per worker are in flight, so memory does not grow with the
    number of files.
    """
    args = (descriptor.codebook.centers, descriptor.layout, descriptor.max_side, descriptor.max_pixels, known_hashes)
    paths = list(paths)
    if workers <= 1 or len(paths) < 4 * workers:
        _init(*args)
        yield from map(_extract, paths)
        return
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    size = max(1, min(32, len(paths) // (workers * 4)))
    tasks = (paths[start : start + size] for start in range(0, len(paths), size))
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init, initargs=args) as pool:
        pending: deque[Future[list[Outcome]]] = deque()
        for task in tasks:
            pending.append(pool.submit(_extract_many, task))
            if len(pending) >= 4 * workers:
                yield from pending.popleft().result()
        while pending:
            yield from pending.popleft().result()
