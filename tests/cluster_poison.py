"""A Dask worker preload (``dask worker --preload tests/cluster_poison.py``): files named ``poison*`` kill the worker.

It stands in for a file that crashes the decoder (a libjpeg abort, a segfault): the
worker process dies by a real SIGKILL the moment it opens such a file, in the codebook
sample or in extraction. Every other file goes through cbir's own reader untouched.
"""

from __future__ import annotations

import os
import signal
from typing import Any

import indexer.extract


def _deadly(read: Any) -> Any:
    def read_or_die(path: Any, *args: Any, **kwargs: Any) -> Any:
        if os.path.basename(str(path)).startswith("poison"):
            os.kill(os.getpid(), signal.SIGKILL)
        return read(path, *args, **kwargs)

    return read_or_die


def dask_setup(worker: Any) -> None:
    indexer.extract.read_bytes = _deadly(indexer.extract.read_bytes)
    indexer.extract.load_image = _deadly(indexer.extract.load_image)
