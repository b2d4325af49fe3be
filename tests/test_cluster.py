"""Extraction on a Dask cluster: real ``dask scheduler`` / ``dask worker`` processes on 127.0.0.1, the real PostgreSQL.

Faults are real too: workers and the indexing client are killed with SIGKILL mid-run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from cbir.errors import BadInputError, ClusterError, StoreError
from cbir.store import Store
from search import Searcher
from tests.conftest import gradient, make_color_folder, noisy, write_image

distributed = pytest.importorskip("distributed")

from indexer.cluster import ClusterExtractor, connect, parse_address
from indexer.extract import Extractor

DASK = str(Path(sys.executable).with_name("dask"))
POISON_PRELOAD = str(Path(__file__).with_name("cluster_poison.py"))
N_IMAGES = 300


class Cluster:
    """A ``dask scheduler`` and worker subprocesses on 127.0.0.1, each in its own process group."""

    def __init__(self, workdir: Path, n_workers: int = 2, *, preload: str | None = None) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.scheduler_file = workdir / "scheduler.json"
        # One retry of a task whose worker died (Dask's default is 3): the fault tests stay short.
        env = {**os.environ, "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "1"}
        self.scheduler = self._start([DASK, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                                      "--scheduler-file", str(self.scheduler_file)], env, workdir / "scheduler.log")
        deadline = time.monotonic() + 60
        while not self.scheduler_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        self.address = json.loads(self.scheduler_file.read_text())["address"]
        extra = ["--preload", preload] if preload else []
        self.workers = [
            self._start([DASK, "worker", self.address, "--nthreads", "1", "--no-dashboard", "--memory-limit", "0",
                         "--host", "127.0.0.1", *extra], env, workdir / f"worker{i}.log")
            for i in range(n_workers)
        ]
        if n_workers:
            with distributed.Client(self.address, timeout=30) as client:
                client.wait_for_workers(n_workers, timeout=120)

    @staticmethod
    def _start(command: list[str], env: dict, log: Path) -> subprocess.Popen:
        return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=open(log, "w"),
                                start_new_session=True)

    def kill_worker(self, index: int) -> None:
        """SIGKILL a worker and its nanny: the worker is lost for good."""
        os.killpg(self.workers[index].pid, signal.SIGKILL)
        self.workers[index].wait(timeout=30)

    def close(self) -> None:
        for process in [*self.workers, self.scheduler]:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=30)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[Cluster]:
    """Two workers that die on files named poison* (see tests/cluster_poison.py), shared by the module."""
    running = Cluster(tmp_path_factory.mktemp("dask"), preload=POISON_PRELOAD)
    yield running
    running.close()


@pytest.fixture(scope="module")
def many_folder(tmp_path_factory) -> Path:
    """N_IMAGES distinct photos-like JPEGs, large enough that a run lasts a few seconds."""
    folder = tmp_path_factory.mktemp("many")
    rng = np.random.default_rng(0)
    for i in range(N_IMAGES):
        a, b = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
        write_image(folder / f"d{i % 5}" / f"img_{i:04d}.jpg", noisy(gradient(tuple(a), tuple(b), size=(240, 320)), 8, i))
    return folder


def cbir_index(folder: Path, db: str, *extra: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cbir", "index", str(folder), "--db", db, "--colors", "16", "-q",
                           "--json", *extra], capture_output=True, text=True, timeout=timeout, check=False)


def start_cbir_index(folder: Path, db: str, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "cbir", "index", str(folder), "--db", db, "--colors", "16", "-q",
                             "--batch-size", "10", *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def rows(db: str) -> dict[str, tuple]:
    """path -> (size, mtime, content hash, width, height, histogram bytes) of every row."""
    with Store(db) as store:
        ids, histograms = store.all_histograms()
        paths = store.paths(ids)
        states = store.file_states()
        out = {}
        for image_id, histogram in zip(ids, histograms):
            path = paths[int(image_id)]
            row = store.image(int(image_id))
            state = states[path]
            out[path] = (state.size, state.mtime, state.content_hash, row.width, row.height, histogram.tobytes())
        return out


def count_rows(db: str) -> int:
    try:
        with Store(db) as store:
            return store.count()
    except StoreError:  # no tables yet
        return 0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_cluster_addresses_are_checked():
    assert parse_address("local:3") == ("local", 3)
    assert parse_address("tcp://10.0.0.5:8786") == ("scheduler", 0)
    for bad in ["local:0", "local:x", "tcp://nohost"]:
        with pytest.raises(BadInputError, match="--cluster"):
            parse_address(bad)


def test_cluster_without_the_extra_says_how_to_install_it(tmp_path):
    make_color_folder(tmp_path / "images")
    code = "import sys; sys.modules['distributed'] = None; from cbir.cli import main; main()"
    result = subprocess.run([sys.executable, "-c", code, "index", str(tmp_path / "images"), "--db", str(tmp_path / "x.db"),
                             "--cluster", "local:2"], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 2
    assert result.stderr.strip() == "Error: --cluster needs Dask distributed: pip install 'cbir[distributed]'"
    assert not (tmp_path / "x.db").exists()


def test_workers_and_cluster_exclude_each_other(tmp_path):
    make_color_folder(tmp_path / "images")
    result = cbir_index(tmp_path / "images", str(tmp_path / "x.db"), "--workers", "2", "--cluster", "local:2")
    assert result.returncode == 2 and "--workers and --cluster exclude each other" in result.stderr
    assert not (tmp_path / "x.db").exists()


def test_a_scheduler_without_workers_is_a_clear_error(tmp_path):
    own = Cluster(tmp_path / "dask", n_workers=0)
    try:
        with pytest.raises(ClusterError, match=f"the Dask scheduler at {own.address} has no workers"), \
                connect(own.address, timeout=2):
            pass
    finally:
        own.close()


@pytest.mark.slow
def test_local_cluster_indexes_like_local_workers_and_says_only_the_summary(tmp_path):
    folder = make_color_folder(tmp_path / "images")
    local_db, cluster_db = str(tmp_path / "local.db"), str(tmp_path / "cluster.db")
    assert cbir_index(folder, local_db, "--workers", "2").returncode == 0
    result = subprocess.run([sys.executable, "-m", "cbir", "index", str(folder), "--db", cluster_db, "--colors", "16",
                             "-q", "--cluster", "local:2"], capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("24 images found: 24 added"), result.stderr  # no Dask chatter
    assert rows(cluster_db) == rows(local_db)


@pytest.mark.postgres
def test_unreachable_scheduler_is_one_line_exit_2_and_nothing_written(tmp_path, postgres_url):
    make_color_folder(tmp_path / "images")
    address = f"tcp://127.0.0.1:{free_port()}"
    result = cbir_index(tmp_path / "images", postgres_url, "--cluster", address)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: cannot reach the Dask scheduler at {address}"), result.stderr
    import psycopg

    with psycopg.connect(postgres_url) as conn:
        tables = conn.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'").fetchone()
    assert tables[0] == 0


@pytest.mark.slow
@pytest.mark.postgres
def test_cluster_run_equals_local_run_then_syncs_the_same_way(cluster, tmp_path, postgres_url):
    folder = make_color_folder(tmp_path / "images")
    local_db = str(tmp_path / "local.db")
    local = cbir_index(folder, local_db, "--workers", "2")
    remote = cbir_index(folder, postgres_url, "--cluster", cluster.address)
    assert local.returncode == 0 and remote.returncode == 0, local.stderr + remote.stderr
    assert json.loads(remote.stdout)["added"] == 24
    with Store(local_db) as a, Store(postgres_url) as b:
        assert a.codebook()[1].fingerprint == b.codebook()[1].fingerprint  # sample extracted on the workers
    assert rows(local_db) == rows(postgres_url)
    # The same rankings, by path (row ids follow the order tasks complete on a cluster).
    with Store(local_db) as a, Store(postgres_url) as b:
        for query in sorted(folder.rglob("*.png"))[:6]:
            ranked = [[(r.path, round(r.distance, 6)) for r in Searcher(s).search_image(query, k=8)] for s in (a, b)]
            assert ranked[0] == ranked[1]

    # Incremental sync on the cluster, as locally: a move, a touch, an edit, a removal.
    (folder / "red.png").rename(folder / "noisy" / "red_moved.png")
    os.utime(folder / "blue.png", (time.time() + 5, time.time() + 5))
    write_image(folder / "green.png", gradient((0, 0, 0), (255, 255, 255)))
    (folder / "navy.png").unlink()
    local = cbir_index(folder, local_db, "--workers", "2")
    remote = cbir_index(folder, postgres_url, "--cluster", cluster.address)
    assert local.returncode == 0 and remote.returncode == 0, local.stderr + remote.stderr
    report = json.loads(remote.stdout)
    assert (report["moved"], report["touched"], report["updated"], report["removed"]) == (1, 1, 1, 1)
    assert {k: v for k, v in report.items() if k not in ("seconds", "phases")} == \
        {k: v for k, v in json.loads(local.stdout).items() if k not in ("seconds", "phases")}
    assert rows(local_db) == rows(postgres_url)
    info = subprocess.run([sys.executable, "-m", "cbir", "info", "--db", postgres_url, "--json"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert info.returncode == 0 and json.loads(info.stdout)["images"] == 23


@pytest.mark.slow
def test_table_built_once_per_worker_and_tasks_in_flight_bounded(cluster, tmp_path):
    folder = make_color_folder(tmp_path / "images")
    paths = sorted(str(p) for p in folder.rglob("*.*"))
    from cbir.codebook import learn_codebook
    from cbir.descriptor import Descriptor
    from cbir.images import load_image

    codebook, _ = learn_codebook([load_image(p) for p in paths], n_colors=20, seed=7)  # new to these workers
    descriptor = Descriptor(codebook, layout="global")

    def builds() -> int:
        import indexer.extract

        return indexer.extract._descriptor_builds

    with distributed.Client(cluster.address, timeout=30) as client:
        before = client.run(builds)
        in_flight = []
        with ClusterExtractor(client, files_per_task=1) as extractor:
            outcomes = []
            for outcome in extractor.extract(paths, descriptor):
                outcomes.append(outcome)
                in_flight.append(len(client.futures))
        after = client.run(builds)
    assert sorted(o.path for o in outcomes) == paths  # 24 tasks of one file each
    assert all(o.error is None for o in outcomes)
    window = 4 * len(after)
    assert max(in_flight) <= window and max(in_flight) >= 2
    # 24 tasks, one descriptor (and quantization table) per worker process.
    assert sum(after[w] - before.get(w, 0) for w in after) <= len(after)
    with Extractor(1) as local:
        expected = {o.path: o.histogram.tobytes() for o in local.extract(paths, descriptor)}
    assert {o.path: o.histogram.tobytes() for o in outcomes} == expected


@pytest.mark.slow
def test_tasks_run_on_one_thread_and_keep_freed_memory_with_or_without_a_nanny(tmp_path):
    """One worker without a nanny (no OMP/OPENBLAS variables), one with (MALLOC_TRIM_THRESHOLD_=65536)."""
    from indexer.dask_worker import _on_worker

    own = Cluster(tmp_path / "dask", 1)
    try:
        own.workers.append(own._start([DASK, "worker", own.address, "--nthreads", "1", "--no-dashboard", "--no-nanny",
                                       "--memory-limit", "0", "--host", "127.0.0.1"], dict(os.environ),
                                      tmp_path / "no-nanny.log"))

        def probe() -> tuple[int, list[int], int]:
            import resource

            import cv2
            from threadpoolctl import threadpool_info

            faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            for _ in range(50):  # a decoded image's worth, allocated, written and freed again and again
                block = np.ones(4 << 20, dtype=np.uint8)
                del block
            faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
            return cv2.getNumThreads(), [pool["num_threads"] for pool in threadpool_info()], faults

        with distributed.Client(own.address, timeout=30) as client:
            client.wait_for_workers(2, timeout=120)
            found = {address: client.submit(_on_worker, probe, workers=[address], pure=False).result()
                     for address in client.nthreads()}
    finally:
        own.close()
    assert len(found) == 2
    for cv_threads, blas_threads, faults in found.values():
        assert cv_threads == 1 and set(blas_threads) <= {1}
        # Freed blocks reused: about 1,000 faults. 50 fresh mmaps (Dask's malloc setting) fault about 25,000.
        assert faults < 5 * 1024, faults


@pytest.mark.slow
@pytest.mark.postgres
def test_a_file_that_kills_its_worker_is_recorded_by_name(cluster, tmp_path, postgres_url):
    folder = make_color_folder(tmp_path / "images")
    shutil.copy(folder / "red.png", folder / "noisy" / "poison.png")
    result = cbir_index(folder, postgres_url, "--cluster", cluster.address)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["added"] == 24
    assert [f["path"] for f in report["failed"]] == [str(folder / "noisy" / "poison.png")]
    assert "worker extracting this file died" in report["failed"][0]["reason"]
    with Store(postgres_url) as store:
        assert [f.path for f in store.failures()] == [str(folder / "noisy" / "poison.png")]
        assert len(store.file_states()) == 24
    again = cbir_index(folder, postgres_url, "--cluster", cluster.address)
    assert again.returncode == 0 and json.loads(again.stdout)["unchanged"] == 25  # not retried while unchanged


@pytest.mark.slow
@pytest.mark.postgres
def test_sigkill_a_worker_mid_run_loses_nothing(many_folder, tmp_path, postgres_url):
    own = Cluster(tmp_path / "dask")
    try:
        process = start_cbir_index(many_folder, postgres_url, "--cluster", own.address)
        deadline = time.monotonic() + 120
        while count_rows(postgres_url) < 10 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert process.poll() is None, process.stderr.read()
        own.kill_worker(0)
        killed_at = count_rows(postgres_url)
        _, err = process.communicate(timeout=300)
    finally:
        own.close()
    assert process.returncode == 0, err
    assert killed_at < N_IMAGES  # the worker died mid-run
    assert "Traceback" not in err
    reference = str(tmp_path / "reference.db")
    assert cbir_index(many_folder, reference, "--workers", "2").returncode == 0
    assert rows(postgres_url) == rows(reference)  # exactly one row per file, as a local run


@pytest.mark.slow
@pytest.mark.postgres
def test_sigkill_the_client_mid_run_then_resume(cluster, many_folder, tmp_path, postgres_url):
    process = start_cbir_index(many_folder, postgres_url, "--cluster", cluster.address)
    deadline = time.monotonic() + 120
    while count_rows(postgres_url) < 10 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    done = count_rows(postgres_url)
    assert 10 <= done < N_IMAGES
    resumed = cbir_index(many_folder, postgres_url, "--cluster", cluster.address)
    assert resumed.returncode == 0, resumed.stderr
    report = json.loads(resumed.stdout)
    assert report["added"] == N_IMAGES - done and report["removed"] == 0
    reference = str(tmp_path / "reference.db")
    assert cbir_index(many_folder, reference, "--workers", "2").returncode == 0
    assert rows(postgres_url) == rows(reference)
