"""Extraction on a Dask cluster: the tasks of a local run, sent to the workers of a Dask scheduler.

Workers read the files themselves (from storage every worker sees) and send back
histograms and file facts only; the process that runs the index stays the one
writer. The task is :func:`indexer.extract._extract_many`, the function local
runs use, so a worker keeps its descriptor and quantization table from task to
task (one table per worker process and codebook). At most a few tasks per worker
thread are in flight, consumed as they complete, so the client's memory does not
grow with the collection.

Dask reruns the tasks of a worker that died. A task that keeps killing workers
(a file that crashes the decoder, or exhausts a worker's memory) ends in
``KilledWorker``: its files are then sent one per task, and the one that still
kills its worker is recorded as a failure by name.

Needs the ``distributed`` extra: ``pip install 'cbir[distributed]'``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future as _Pending
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

from cbir.descriptor import Descriptor
from cbir.errors import BadInputError, ClusterError
from indexer.dask_worker import _on_worker
from indexer.extract import Outcome, _extract_many, _sample_many, settings_of

if TYPE_CHECKING:
    from distributed import Client, Future
    from typing_extensions import Self

#: Seconds to wait for the scheduler, and for a first worker to join it.
CONNECT_SECONDS = 10.0
#: Tasks in flight per worker thread, and files per task.
TASKS_PER_THREAD = 4
FILES_PER_TASK = 32
INSTALL_HINT = "--cluster needs Dask distributed: pip install 'cbir[distributed]'"
DIED = "the worker extracting this file died every time it was tried (the decoder crashed or ran out of memory)"


def _distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise ClusterError(INSTALL_HINT) from None
    return distributed


def parse_address(address: str) -> tuple[str, int]:
    """``("local", n_workers)`` for ``local:N``, else ``("scheduler", 0)`` for a scheduler address.

    Raises
    ------
    BadInputError
        If ``address`` is neither ``local:N`` (N >= 1) nor ``[protocol://]host:port``.
    """
    if address.startswith("local:"):
        count = address.removeprefix("local:")
        if not count.isdigit() or int(count) < 1:
            raise BadInputError(f"--cluster {address!r}: expected local:N with N >= 1 worker processes")
        return "local", int(count)
    if ":" not in address.split("://")[-1]:
        raise BadInputError(f"--cluster {address!r}: expected a scheduler address such as tcp://HOST:8786, or local:N")
    return "scheduler", 0


@contextmanager
def connect(address: str, *, timeout: float = CONNECT_SECONDS) -> Iterator[Client]:
    """A Dask client of the scheduler at ``address``, or of a new local cluster for ``local:N``.

    A local cluster runs N worker processes of one thread each, and ends with the block.

    Raises
    ------
    BadInputError
        If ``address`` is malformed.
    ClusterError
        If the extra is not installed, the scheduler cannot be reached within
        ``timeout`` seconds, or no worker joins it in that time.
    """
    kind, n_workers = parse_address(address)
    distributed = _distributed()
    if kind == "local":
        local = _LocalCluster(n_workers)
        try:
            yield local.client()
        finally:
            local.join()
        return
    try:
        client = distributed.Client(address, timeout=timeout)
    except (OSError, TimeoutError) as exc:
        raise ClusterError(f"cannot reach the Dask scheduler at {address}: {_one_line(exc)}") from None
    with client:
        try:
            client.wait_for_workers(1, timeout=timeout)
        except TimeoutError:
            raise ClusterError(f"the Dask scheduler at {address} has no workers (none joined in {timeout:g} s)") from None
        yield client


@contextmanager
def extractors_for(address: str | None, *, workers: int | None = None, timeout: float = CONNECT_SECONDS,
                   ) -> Iterator[Callable[[frozenset[str]], ClusterExtractor] | None]:
    """The ``extractors`` argument of :func:`indexer.index_folder` for ``--cluster address``, connected.

    None (local processes) when ``address`` is None.

    Raises
    ------
    BadInputError
        If ``address`` is malformed or given with ``workers`` (the cluster decides the workers).
    ClusterError
        As :func:`connect`.
    """
    if address is None:
        yield None
        return
    if workers is not None:
        raise BadInputError("--workers and --cluster exclude each other: the cluster's workers do the extraction "
                            "(local:N for N local worker processes)")
    kind, n_workers = parse_address(address)
    _distributed()
    if kind == "local":  # started while the run opens its store and scans, closed once extraction is over
        local = _LocalCluster(n_workers)
        try:
            yield lambda known_hashes: ClusterExtractor(local.client(), known_hashes=known_hashes, done=local.release)
        finally:
            local.join()
        return
    with connect(address, timeout=timeout) as client:
        yield lambda known_hashes: ClusterExtractor(client, known_hashes=known_hashes)


class _LocalCluster:
    """A LocalCluster of one-thread worker processes on loopback, started and closed in a background thread.

    Its start (worker processes that import Dask and, preloaded, cbir's extraction code)
    overlaps what the run does before extraction, and its close what it does after
    (the compact vectors): on a 2-core machine they are a large part of a short run.
    """

    def __init__(self, n_workers: int) -> None:
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="cbir-local-cluster")
        self._started = self._thread.submit(self._start, n_workers)
        self._closing: _Pending | None = None

    @staticmethod
    def _start(n_workers: int) -> tuple[Any, Client]:
        distributed = _distributed()
        # The HTTP server the scheduler always runs goes on a free port (no warning about 8787).
        cluster = distributed.LocalCluster(
            n_workers=n_workers, threads_per_worker=1, processes=True, host="127.0.0.1",
            dashboard_address="127.0.0.1:0", preload=["indexer.dask_worker"],
        )
        try:
            return cluster, distributed.Client(cluster)
        except BaseException:
            cluster.close()
            raise

    def client(self) -> Client:
        """The cluster's client, once it has started (its error if it could not)."""
        return self._started.result()[1]

    def release(self) -> None:
        """Start closing the cluster: no more tasks will be sent."""
        if self._closing is None:
            self._closing = self._thread.submit(self._close)

    def _close(self) -> None:
        cluster, client = self._started.result()
        client.close()
        cluster.close()

    def join(self) -> None:
        """Close the cluster (if not yet) and wait until it is closed."""
        self.release()
        self._thread.shutdown(wait=True)


class ClusterExtractor:
    """Extraction on the workers of a Dask client, with the interface of :class:`indexer.extract.Extractor`.

    Parameters
    ----------
    client : distributed.Client
        Connected to a scheduler with at least one worker.
    known_hashes : frozenset of str
        Content hashes whose files need no decoding (moved or touched files).
    files_per_task : int
        Files per task (fewer: more scheduling; more: more work redone after a lost worker).
    done : callable, optional
        Called on leaving the ``with`` block: no more tasks will be sent (e.g. to start closing a local cluster).
    """

    def __init__(self, client: Client, *, known_hashes: frozenset[str] = frozenset(),
                 files_per_task: int = FILES_PER_TASK, done: Callable[[], None] | None = None) -> None:
        self.client = client
        self._done = done
        self.files_per_task = files_per_task
        self._known_hashes = known_hashes
        self._known: Future | frozenset[str] = frozenset()
        self._distributed = _distributed()

    def __enter__(self) -> Self:
        if self._known_hashes:
            # Sent once as a task of its own (recomputable if the worker holding it dies), not with every task.
            self._known = self.client.submit(frozenset, self._known_hashes, key=f"cbir-known-{uuid.uuid4().hex}")
        return self

    def __exit__(self, *exc: object) -> None:
        if not isinstance(self._known, frozenset):
            self._known.release()
        if self._done is not None:
            self._done()

    def _window(self) -> int:
        threads = sum(self.client.nthreads().values())
        return max(2, TASKS_PER_THREAD * threads)

    def _run(self, fn: Callable, chunks: Iterator[list], args: Callable[[list], tuple], *,
             one: Callable[[Any, str], Any]) -> Iterator[tuple[list, list]]:
        """(chunk, results) for every chunk, as tasks complete, with a bounded number in flight."""
        distributed = self._distributed
        running = distributed.as_completed()
        chunk_of: dict[Any, list] = {}

        def submit(chunk: list) -> None:
            future = self.client.submit(_on_worker, fn, *args(chunk), pure=False)
            chunk_of[future.key] = chunk
            running.add(future)

        window = self._window()
        for chunk in chunks:
            submit(chunk)
            if running.count() >= window:
                break
        for future in running:
            chunk = chunk_of.pop(future.key)
            try:
                results = future.result()
            except distributed.KilledWorker:
                results = self._one_by_one(fn, chunk, args, one)
            except Exception as exc:  # noqa: BLE001 - a task that cannot run at all (e.g. cbir missing on a worker)
                raise ClusterError(f"the Dask workers cannot run cbir's extraction: {_one_line(exc)} "
                                   "(every worker needs the same cbir installed and the files at the same paths)") from None
            finally:
                future.release()
            yield chunk, results
            following = next(chunks, None)
            if following is not None:
                submit(following)

    def _one_by_one(self, fn: Callable, chunk: list, args: Callable[[list], tuple], one: Callable[[Any, str], Any]) -> list:
        """A chunk whose task kept killing workers, one item per task: only the culprit fails.

        A dying worker takes down every task queued on it, so an item whose own task died
        beside the culprit's is tried once more, alone (one at a time): only an item whose
        task kills its worker by itself is recorded as the cause.
        """
        distributed = self._distributed
        futures = [self.client.submit(_on_worker, fn, *args([item]), pure=False) for item in chunk]
        parts: list[list] = []
        suspects: list[int] = []
        for place, future in enumerate(futures):
            try:
                parts.append(list(future.result()))
            except distributed.KilledWorker:
                parts.append([])
                suspects.append(place)
            finally:
                future.release()
        for place in suspects:
            future = self.client.submit(_on_worker, fn, *args([chunk[place]]), pure=False)
            try:
                parts[place] = list(future.result())
            except distributed.KilledWorker:
                parts[place] = [one(chunk[place], DIED)]
            finally:
                future.release()
        return [result for part in parts for result in part]

    def samples(self, paths: list[str], *, n: int, seed: int, max_side: int, max_pixels: int) -> Iterator[np.ndarray]:
        """Pixel samples of ``paths`` for codebook learning, in order (unreadable files left out).

        The same pixels as a local run's: each depends only on the file, ``seed`` and its place in ``paths``.
        """
        items = list(enumerate(paths))
        chunks = iter([items[s : s + 16] for s in range(0, len(items), 16)])
        found: dict[int, np.ndarray | None] = {}
        for chunk, pixels in self._run(_sample_many, chunks, lambda c: ((c, n, seed, max_side, max_pixels),),
                                       one=lambda item, reason: None):
            found.update((index, p) for (index, _), p in zip(chunk, pixels))
        for index in range(len(items)):
            if found.get(index) is not None:
                yield found[index]  # type: ignore[misc]

    def extract(self, paths: list[str], descriptor: Descriptor) -> Iterator[Outcome]:
        """Extract every path, in the order tasks complete; files whose hash is known are hashed but not decoded."""
        settings = settings_of(descriptor)
        size = self.files_per_task
        chunks = (paths[s : s + size] for s in range(0, len(paths), size))
        for _, outcomes in self._run(_extract_many, chunks, lambda c: (settings, c, self._known),
                                     one=lambda path, reason: Outcome(path, error=reason)):
            yield from outcomes


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
