"""Extraction in worker processes: file -> (hash, histogram) or the reason it failed.

Workers are forked once per run and share one lazily filled 24-bit quantization
table in anonymous shared memory, so every color is looked up about once per run
whatever the number of workers, and the memory goes away with the processes, even
after kill -9. A process with other threads running (a server, a test session)
starts its workers from a fork server instead, each with a table of its own. The same pool decodes the codebook sample first. Tasks carry the
descriptor settings (a codebook is 1.5 KB), so the pool exists before the codebook does.
A task is up to 32 files: decoded one by one, then quantized together, so the colors
new to the run are looked up once per task (near-duplicates share most of theirs).
"""

from __future__ import annotations

import mmap
import multiprocessing
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np
from threadpoolctl import threadpool_limits

from cbir.codebook import Codebook, sample_pixels
from cbir.color import N_COLORS_24BIT, QuantizationTable
from cbir.descriptor import Descriptor, content_hash
from cbir.errors import BadImageError
from cbir.images import DecodedImage, load_image, read_bytes
from cbir.perceptual import perceptual_hash

# Set in the parent before the workers are forked and inherited (the table), or sent to each worker (the hashes).
_shared_table: mmap.mmap | None = None
_known_hashes: frozenset[str] = frozenset()
# Per process: the descriptor of the current settings, with its quantization table (filled as colors are
# met), kept from task to task; and how many times it was made (once per process and codebook).
_descriptor: tuple[tuple, Descriptor] | None = None
_descriptor_builds = 0

Settings = tuple[bytes, int, str, int, int]  # centers (float32 bytes), n_colors, layout, max_side, max_pixels


@dataclass(frozen=True)
class Outcome:
    """What a worker found for one file: a histogram, a known hash (no decode needed) or an error."""

    path: str
    content_hash: str | None = None
    histogram: np.ndarray | None = None
    width: int = 0
    height: int = 0
    error: str | None = None
    #: Perceptual hash of the decoded pixels (:mod:`cbir.perceptual`).
    phash: int | None = None


def settings_of(descriptor: Descriptor) -> Settings:
    """The picklable settings a worker needs to rebuild ``descriptor``."""
    codebook = descriptor.codebook
    return (codebook.centers.tobytes(), codebook.n_colors, descriptor.layout, descriptor.max_side, descriptor.max_pixels)


def _descriptor_for(settings: Settings) -> Descriptor:
    global _descriptor, _descriptor_builds
    if _descriptor is None or _descriptor[0] != settings:
        _descriptor_builds += 1
        centers, n_colors, layout, max_side, max_pixels = settings
        codebook = Codebook(np.frombuffer(centers, dtype=np.float32).reshape(n_colors, 3))
        if _shared_table is not None:
            codebook.use_table_buffer(_shared_table)
        if multiprocessing.parent_process() is not None:
            # Parallelism comes from the processes: decoder and BLAS threads inside each worker only
            # oversubscribe the cores (two workers were slower than one before this). A forked worker
            # already has one OpenCV thread (see Extractor); touching a pool inherited from the parent
            # would hang in a forked child.
            if cv2.getNumThreads() != 1:
                cv2.setNumThreads(1)
            threadpool_limits(limits=1)
        _descriptor = (settings, Descriptor(codebook, layout=layout, max_side=max_side, max_pixels=max_pixels))
    return _descriptor[1]


def _set_known_hashes(known: frozenset[str]) -> None:
    global _known_hashes
    _known_hashes = known


def _failed(path: str, exc: BaseException) -> Outcome:
    if isinstance(exc, BadImageError):
        return Outcome(path, error=exc.reason)
    if isinstance(exc, MemoryError):
        return Outcome(path, error="out of memory while decoding")
    return Outcome(path, error=f"unexpected decoder error ({type(exc).__name__}: {exc})")


def _decode(descriptor: Descriptor, path: str, known: frozenset[str]) -> Outcome | tuple[str, DecodedImage]:
    try:
        data = read_bytes(path)
        digest = content_hash(data)
        if digest in known:
            return Outcome(path, content_hash=digest)
        return digest, descriptor.decode(data, path=path)
    except Exception as exc:  # noqa: BLE001 - a decoder bug on one hostile file must not stop the batch
        return _failed(path, exc)


def _extract_many(settings: Settings, paths: list[str], known: frozenset[str] | None = None) -> list[Outcome]:
    """Decode every file, then quantize them together: colors new to the run are looked up once per task.

    The task of local and cluster runs alike. ``known``: content hashes that need no decoding (default:
    the ones this process was given at start, see :class:`Extractor`).
    """
    descriptor = _descriptor_for(settings)
    known = _known_hashes if known is None else known
    outcomes: list = [_decode(descriptor, path, known) for path in paths]
    batch = [(i, *found) for i, found in enumerate(outcomes) if not isinstance(found, Outcome)]
    try:
        histograms: list = descriptor.of_decoded_many([image for _, _, image in batch])
    except Exception:  # noqa: BLE001 - retried one by one below, so that only the image at fault fails
        histograms = [None] * len(batch)
    for (i, digest, image), found in zip(batch, histograms):
        try:
            found = descriptor.of_decoded_many([image])[0] if found is None else found
            outcomes[i] = Outcome(paths[i], digest, found, image.width, image.height, phash=perceptual_hash(image.rgb))
        except Exception as exc:  # noqa: BLE001
            outcomes[i] = _failed(paths[i], exc)
    return outcomes


def _sample_many(job: tuple[list[tuple[int, str]], int, int, int, int]) -> list[np.ndarray | None]:
    items, n, seed, max_side, max_pixels = job
    out: list[np.ndarray | None] = []
    for index, path in items:
        try:
            out.append(sample_pixels(load_image(path, max_side=max_side, max_pixels=max_pixels), n, seed=seed, index=index))
        except BadImageError:
            out.append(None)
        except Exception:  # noqa: BLE001 - a hostile file is skipped here and reported by extraction
            out.append(None)
    return out


class _InProcess(Executor):
    def submit(self, fn: Callable, /, *args, **kwargs) -> Future:  # type: ignore[override, type-arg]
        future: Future = Future()  # type: ignore[type-arg]
        future.set_result(fn(*args, **kwargs))
        return future


class Extractor:
    """A pool of extraction workers for one index run (use as a context manager).

    Parameters
    ----------
    workers : int
        Processes; 1 runs everything in this process.
    known_hashes : frozenset of str
        Content hashes whose files need no decoding (moved or touched files).
    """

    def __init__(self, workers: int, *, known_hashes: frozenset[str] = frozenset()) -> None:
        global _shared_table, _known_hashes, _descriptor
        self.workers = workers
        _known_hashes = known_hashes
        _descriptor = None
        # Forking is only safe while no other thread can hold a lock at the moment of the fork
        # (a long-lived process with server or pool threads): then forkserver, one table per worker.
        fork = "fork" in multiprocessing.get_all_start_methods() and threading.active_count() == 1
        _shared_table = mmap.mmap(-1, N_COLORS_24BIT * 2) if fork or workers == 1 else None
        self._table = _shared_table
        self._limits = None
        # OpenCV's thread pool does not survive a fork (a forked child that reconfigures it hangs):
        # the workers are forked while this process runs OpenCV on one thread, restored on exit.
        self._cv_threads = cv2.getNumThreads()
        cv2.setNumThreads(1)
        if workers <= 1:
            self._pool: Executor = _InProcess()
            self._limits = threadpool_limits(limits=1)  # as in the workers; undone on exit
        else:
            # Fork: the workers inherit the shared table and the known hashes. Workers are
            # forked at the first task, before this process has started any OpenMP threads.
            methods = multiprocessing.get_all_start_methods()
            context = multiprocessing.get_context("fork" if fork else "forkserver" if "forkserver" in methods else "spawn")
            self._pool = ProcessPoolExecutor(
                max_workers=workers, mp_context=context, initializer=_set_known_hashes, initargs=(known_hashes,)
            )

    def __enter__(self) -> Extractor:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        cv2.setNumThreads(self._cv_threads)
        if self._limits is not None:
            self._limits.restore_original_limits()

    def _ordered(self, tasks: Iterable[tuple[Callable, tuple]]) -> Iterator:  # type: ignore[type-arg]
        # At most a few tasks per worker in flight: memory does not grow with the number of files.
        pending: deque[Future] = deque()  # type: ignore[type-arg]
        for fn, args in tasks:
            pending.append(self._pool.submit(fn, *args))
            if len(pending) >= 4 * self.workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()

    def samples(self, paths: list[str], *, n: int, seed: int, max_side: int, max_pixels: int) -> Iterator[np.ndarray]:
        """Pixel samples of ``paths`` for codebook learning, in order (unreadable files left out)."""
        items = list(enumerate(paths))
        size = max(1, min(16, len(items) // (self.workers * 4) or 1))
        jobs = ((_sample_many, ((items[s : s + size], n, seed, max_side, max_pixels),)) for s in range(0, len(items), size))
        for chunk in self._ordered(jobs):
            yield from (pixels for pixels in chunk if pixels is not None)

    def extract(self, paths: list[str], descriptor: Descriptor) -> Iterator[Outcome]:
        """Extract every path, in the given order; files whose hash is known are hashed but not decoded."""
        if self._table is not None:
            QuantizationTable.fresh_buffer(self._table, descriptor.codebook.n_colors)
            descriptor.codebook.use_table_buffer(self._table)
        settings = settings_of(descriptor)
        size = max(1, min(32, len(paths) // (self.workers * 4) or 1))
        jobs = ((_extract_many, (settings, paths[s : s + size])) for s in range(0, len(paths), size))
        for chunk in self._ordered(jobs):
            yield from chunk
