"""The set-up of a Dask worker process for cbir's extraction; also a worker preload.

Every task cbir sends runs through :func:`_on_worker`, which sets the worker process
up once. Starting workers with ``dask worker --preload indexer.dask_worker`` does it
(and imports the extraction code) when the worker starts, before any run.
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Callable
from typing import Any

#: glibc's malloc: the largest block it serves from the heap (not mmap), and the free heap top it keeps.
MMAP_THRESHOLD = 32 << 20
TRIM_THRESHOLD = 64 << 20
_worker_ready = False


def _on_worker(fn: Callable, *args: Any) -> Any:
    """``fn(*args)`` on a Dask worker, the worker process set up for extraction first (once)."""
    global _worker_ready
    if not _worker_ready:
        _set_up_worker()
        _worker_ready = True
    return fn(*args)


def _set_up_worker() -> None:
    """One thread per task, and glibc's malloc set as in a local worker.

    Parallelism comes from the worker's threads and processes: OpenCV's and BLAS's own
    threads only oversubscribe the cores (a worker without a nanny, which sets no
    OMP/OPENBLAS variables, used 4x the CPU time). A Dask nanny also sets
    ``MALLOC_TRIM_THRESHOLD_=65536``, which fixes glibc's mmap threshold at 128 KiB: every
    decoded image and distance block is then a fresh mmap that faults its pages in again
    (a third more CPU time per worker). Workers keep freed memory for the next task instead,
    as glibc's adaptive default would; it is one task's worth (32 images).
    """
    import cv2
    from threadpoolctl import threadpool_limits

    if cv2.getNumThreads() != 1:
        cv2.setNumThreads(1)
    threadpool_limits(limits=1)
    if "MALLOC_TRIM_THRESHOLD_" in os.environ and sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL("libc.so.6")
        except OSError:  # not glibc (e.g. musl): nothing to undo
            return
        m_trim_threshold, m_mmap_threshold = -1, -3
        libc.mallopt(m_mmap_threshold, MMAP_THRESHOLD)
        libc.mallopt(m_trim_threshold, TRIM_THRESHOLD)


def dask_setup(worker: Any = None) -> None:
    """Dask's preload hook: import the extraction code and set this worker process up now."""
    global _worker_ready
    import indexer.extract  # noqa: F401 - the import is the point: OpenCV, numpy and cbir loaded before the first task

    if not _worker_ready:
        _set_up_worker()
        _worker_ready = True
