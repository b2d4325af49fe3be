"""Index a folder into a store: learn the codebook once, then sync (add, update, move, remove).

Change detection: a file whose (size, mtime) match its row is skipped without
being read; otherwise it is hashed, and a known hash means a moved, renamed or
merely touched file, updated without decoding (each vanished row reused at most
once). Rows of files that are gone are deleted, by path and only inside the folder
synced: an index may hold several roots (see :mod:`indexer.roots`), and a sync that
would empty a root or remove most of it stops unless confirmed with ``prune``.
Results are committed in batches, so a crash loses at most the batch in progress
and the next run resumes where this one stopped.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from cbir.codebook import DEFAULT_N_COLORS, MAX_SAMPLE_IMAGES, PIXELS_PER_IMAGE, Codebook, codebook_from_pixels
from cbir.descriptor import Descriptor
from cbir.errors import BadImageError, BadInputError, CodebookMismatchError
from cbir.films.video import is_video_path
from cbir.histogram import DEFAULT_LAYOUT, parse_layout
from cbir.images import DEFAULT_MAX_PIXELS, DEFAULT_MAX_SIDE, IMAGE_EXTENSIONS
from cbir.projection import Projection, project, stored_projection
from cbir.store import Failure, FileState, ImageRecord, Store, as_stored
from indexer.extract import Extractor, Outcome
from indexer.project import update_vectors
from indexer.roots import DEFAULT_MAX_REMOVAL_SHARE, adopt_legacy_root, check_removals, root_path
from indexer.scan import FoundFile, scan
from indexer.videos import sync_videos, video_samples

#: Rows per transaction; also committed at least every COMMIT_SECONDS.
BATCH_SIZE = 500
COMMIT_SECONDS = 2.0

Progress = Callable[[int, int], None]


@dataclass
class IndexReport:
    """What an index run did."""

    scanned: int = 0
    added: int = 0
    updated: int = 0
    moved: int = 0
    touched: int = 0
    removed: int = 0
    unchanged: int = 0
    failed: list[Failure] = field(default_factory=list)
    seconds: float = 0.0
    codebook_note: str | None = None
    n_colors: int = 0
    layout: str = ""
    #: Wall seconds per phase: scan, codebook, extract (with writing), write (removals), finish (compact vectors).
    phases: dict[str, float] = field(default_factory=dict)
    #: What the projection pass did (:class:`indexer.project.VectorReport` as a dict).
    vectors: dict = field(default_factory=dict)
    #: Video files (one row per shot keyframe): found, added, updated, unchanged, removed rows, shots written.
    videos: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        data = {k: v for k, v in self.__dict__.items() if k != "failed"}
        data["failed"] = [{"path": f.path, "reason": f.reason} for f in self.failed]
        return data


def _codebook(
    store: Store, files: list[FoundFile], extractor: Extractor, *, n_colors: int | None, layout: str | None, seed: int,
    max_side: int, max_pixels: int, videos: list[FoundFile] = (),  # type: ignore[assignment]
) -> tuple[int, Codebook, str, str | None]:
    existing = store.codebook()
    if existing is not None:
        codebook_id, codebook, stored_layout = existing
        if n_colors is not None and n_colors != codebook.n_colors and codebook.params.get("requested_colors") != n_colors:
            raise CodebookMismatchError(
                f"{store.display} was indexed with {codebook.n_colors} colors, not {n_colors}; "
                "use another --db to index with a different codebook"
            )
        if layout is not None and layout != stored_layout:
            raise CodebookMismatchError(
                f"{store.display} was indexed with the {stored_layout!r} layout, not {layout!r}; "
                "use another --db to index with a different layout"
            )
        return codebook_id, codebook, stored_layout, None
    layout = layout or DEFAULT_LAYOUT
    parse_layout(layout)
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(len(files), size=min(MAX_SAMPLE_IMAGES, len(files)), replace=False))
    samples = extractor.samples(
        [files[i].path for i in chosen], n=PIXELS_PER_IMAGE, seed=seed, max_side=min(max_side, 256), max_pixels=max_pixels
    ) if files else iter(())
    if videos:  # a few frames of each video join the sample
        samples = itertools.chain(samples, video_samples([v.path for v in videos], n=PIXELS_PER_IMAGE * 4, seed=seed))
    codebook, note = codebook_from_pixels(samples, n_colors=n_colors or DEFAULT_N_COLORS, seed=seed)
    # Histograms are only comparable when made at the same resolution: it belongs to the index.
    codebook.params["max_side"] = max_side
    return store.save_codebook(codebook, layout), codebook, layout, note


def index_folder(
    folder: str | os.PathLike[str],
    store: Store,
    *,
    n_colors: int | None = None,
    layout: str | None = None,
    workers: int | None = None,
    seed: int = 0,
    max_side: int = DEFAULT_MAX_SIDE,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    batch_size: int = BATCH_SIZE,
    progress: Progress | None = None,
    prune: bool = False,
    max_removal_share: float = DEFAULT_MAX_REMOVAL_SHARE,
    extractors: Callable[[frozenset[str]], Any] | None = None,
    refit: bool = False,
    augment: int | None = None,
) -> IndexReport:
    """Build or sync the index of every image under ``folder``.

    Parameters
    ----------
    folder : path
        Searched recursively.
    store : Store
        Opened with ``create=True``.
    n_colors, layout : optional
        Codebook size and spatial layout of a new index; for an existing index
        they must match it (or be None).
    workers : int, optional
        Extraction processes; default: the number of cores.
    seed : int
        Seeds codebook learning.
    progress : callable(done, total), optional
        Called as files are processed.
    prune : bool
        Confirm removals the sync would otherwise refuse (see ``max_removal_share``).
    max_removal_share : float
        In [0, 1]. Without ``prune``, a sync that finds ``folder`` empty while the index
        holds rows in it, or that would remove more than this share of those rows,
        writes nothing and raises.
    extractors : callable(known_hashes) -> extractor, optional
        Makes the extraction backend of the run (e.g. :class:`indexer.cluster.ClusterExtractor`);
        default: ``workers`` local processes.
    refit : bool
        Fit the compact projection again on a fresh sample and re-project every image
        (see :mod:`indexer.project`).
    augment : int, optional
        Neighbours averaged into each image's search vector (DBA, :mod:`indexer.neighbours`;
        0: off); kept by the index for later runs. None: the index's current setting.

    Returns
    -------
    IndexReport

    Raises
    ------
    BadInputError
        If ``folder`` is not a folder.
    CodebookMismatchError
        If ``n_colors`` or ``layout`` disagree with the existing index.
    StoreError
        If another index run holds the database.
    MassRemovalError
        If the sync would empty the folder's rows or remove more than ``max_removal_share``
        of them, and ``prune`` is false.
    """
    started = time.perf_counter()
    root = Path(folder).expanduser()
    if augment is not None and augment < 0:
        raise BadInputError(f"augment must be 0 or more neighbours, got {augment}")
    if not root.is_dir():
        raise BadInputError(f"{folder}: not a folder")
    workers = max(1, workers or os.cpu_count() or 1)
    clock = _PhaseClock()
    with store.writer_lock():
        files, problems = scan(root)
        videos, video_problems = scan(root, accept=is_video_path)
        report = IndexReport(scanned=len(files), failed=list(problems) + list(video_problems))
        top = root_path(root)
        video_states = store.video_states(under=top)
        video_rows = {i for state in video_states.values() for i in state.ids}
        # rows of other roots are none of this run's business; a video's shot rows are synced by sync_videos
        states = {path: state for path, state in store.file_states(under=top).items() if state.id not in video_rows}
        old_failures = store.failure_states(under=top)
        on_disk = {f.path for f in files} | {v.path for v in videos}

        todo: list[FoundFile] = []
        for found in files:
            state = states.get(found.path)
            if state is not None and state.size == found.size and state.mtime == found.mtime and state.hashed:
                report.unchanged += 1
            elif state is None and old_failures.get(found.path) == (found.size, found.mtime):
                report.unchanged += 1  # the same unreadable file as last time
                report.failed.append(Failure(found.path, found.size, found.mtime, "unchanged since it last failed"))
            else:
                todo.append(found)

        if not files and not videos and (store.codebook() is None or not (states or video_states)):
            raise BadInputError(f"{folder}: no image files found (looked for {', '.join(sorted(IMAGE_EXTENSIONS))})")
        clock.lap("scan")
        # Keyed by content, but every row on its own: identical copies are removed (or reused) one by one.
        vanished: dict[str, list[FileState]] = {}
        for path in sorted(set(states) - on_disk):
            vanished.setdefault(states[path].content_hash, []).append(states[path])
        gone_videos = sorted(set(video_states) - on_disk)
        check_removals(folder, found=len(files) + len(videos), indexed=len(states) + len(video_states),
                       gone=sorted(set(states) - on_disk) + gone_videos,
                       prune=prune, max_share=max_removal_share)  # before anything is written
        adopt_legacy_root(store)
        store.add_root(top)
        # An unchanged row without a perceptual hash (an index made before them) is decoded again to get one.
        changed = {states[f.path].content_hash for f in todo
                   if f.path in states and states[f.path].hashed}
        make = extractors or (lambda known: Extractor(workers, known_hashes=known))
        with make(frozenset(vanished) | frozenset(changed)) as extractor:
            codebook_id, codebook, layout, note = _codebook(
                store, files, extractor, n_colors=n_colors, layout=layout, seed=seed, max_side=max_side,
                max_pixels=max_pixels, videos=videos,
            )
            report.codebook_note, report.n_colors, report.layout = note, codebook.n_colors, layout
            clock.lap("codebook")
            analysed_side = int(codebook.params.get("max_side", max_side))
            descriptor = Descriptor(codebook, layout=layout, max_side=analysed_side, max_pixels=max_pixels)
            sizes = {f.path: f for f in todo}
            writer = _BatchWriter(store, codebook_id, descriptor, report, batch_size)
            writer.projection = stored_projection(store, codebook.centers)
            for done, outcome in enumerate(extractor.extract([f.path for f in todo], descriptor), 1):
                _apply(outcome, sizes[outcome.path], states.get(outcome.path), vanished, writer)
                writer.maybe_flush()
                if progress is not None:
                    progress(done, len(todo))
        clock.lap("extract")
        left = [state.id for rows in vanished.values() for state in rows]
        writer.removed.extend(left)
        report.removed += len(left)
        writer.flush()
        found_videos = sync_videos(videos, store, codebook_id=codebook_id, descriptor=descriptor, failed=report.failed,
                                   under=top)
        if videos or found_videos.removed:
            report.videos = dict(found_videos.__dict__)
        gone_failures = [path for path in old_failures if path not in on_disk]
        if gone_failures:
            store.remove_failures(gone_failures)
        clock.lap("write")
        report.vectors = update_vectors(store, codebook_id, codebook, refit=refit, seed=seed, augment=augment).__dict__
    # The vector index is derived data: the first search builds it (memory here stays one batch).
    clock.lap("finish")
    report.phases = clock.laps
    report.seconds = time.perf_counter() - started
    return report


def _take(vanished: dict[str, list[FileState]], content_hash: str) -> FileState | None:
    """One vanished row with this content, taken out so that no other file reuses it."""
    rows = vanished.get(content_hash)
    if not rows:
        return None
    row = rows.pop(0)
    if not rows:
        del vanished[content_hash]
    return row


def _apply(
    outcome: Outcome, found: FoundFile, state: FileState | None, vanished: dict[str, list[FileState]], writer: _BatchWriter,
) -> None:
    report = writer.report
    if outcome.error is not None:
        failure = Failure(found.path, found.size, found.mtime, outcome.error)
        report.failed.append(failure)
        writer.failed.append(failure)
        if state is not None:  # the file was fine before and is broken now: its old row is wrong
            writer.removed.append(state.id)
            report.removed += 1
        return
    if outcome.histogram is None:  # hash already known: no decode was needed
        if state is not None and state.content_hash == outcome.content_hash:
            writer.touched.append((state.id, found.mtime))
            report.touched += 1
            return
        moved = _take(vanished, outcome.content_hash or "")
        if moved is not None and state is None:
            writer.moved.append((moved.id, found.path, found.mtime))
            report.moved += 1
            return
        # Known hash but nothing to reuse (e.g. a changed file now equals another vanished one): decode it.
        if moved is not None:
            vanished.setdefault(moved.content_hash, []).insert(0, moved)
        outcome = _redo(found.path, writer.descriptor)
        if outcome.error is not None or outcome.histogram is None:
            _apply(outcome, found, state, vanished, writer)
            return
    record = ImageRecord(
        found.path, found.size, found.mtime, outcome.content_hash or "", outcome.width, outcome.height, outcome.histogram,
        phash=outcome.phash,
    )
    if state is not None:
        writer.updated.append((state.id, record))
        report.updated += 1
    else:
        writer.added.append(record)
        report.added += 1


def _redo(path: str, descriptor: Descriptor) -> Outcome:
    try:
        found = descriptor.of_file(path)
    except BadImageError as exc:
        return Outcome(path, error=exc.reason)
    return Outcome(path, found.content_hash, found.histogram, found.width, found.height, phash=found.phash)


class _PhaseClock:
    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = round(now - self._last, 3)
        self._last = now


class _BatchWriter:
    """Collects changes and writes them in one transaction per batch."""

    def __init__(self, store: Store, codebook_id: int, descriptor: Descriptor, report: IndexReport, batch_size: int) -> None:
        self.store, self.codebook_id, self.report, self.batch_size = store, codebook_id, report, batch_size
        self.descriptor = descriptor
        #: (id, projection) the records' compact vectors are made with; None before the first fit.
        self.projection: tuple[int, Projection] | None = None
        self.last = time.monotonic()
        self._reset()

    def _reset(self) -> None:
        self.added: list[ImageRecord] = []
        self.updated: list[tuple[int, ImageRecord]] = []
        self.moved: list[tuple[int, str, float]] = []
        self.touched: list[tuple[int, float]] = []
        self.removed: list[int] = []
        self.failed: list[Failure] = []

    def pending(self) -> int:
        parts: tuple[list, ...] = (self.added, self.updated, self.moved, self.touched, self.removed, self.failed)
        return sum(len(part) for part in parts)

    def maybe_flush(self) -> None:
        if self.pending() >= self.batch_size or time.monotonic() - self.last >= COMMIT_SECONDS:
            self.flush()

    def flush(self) -> None:
        if self.pending():
            projection_id = None
            if self.projection is not None and (self.added or self.updated):
                projection_id, projection = self.projection
                records = self.added + [record for _, record in self.updated]
                vectors = project(as_stored(np.stack([r.histogram for r in records])), projection)
                with_vectors = [replace(r, vector=v) for r, v in zip(records, vectors)]
                self.added = with_vectors[: len(self.added)]
                self.updated = [(i, r) for (i, _), r in zip(self.updated, with_vectors[len(self.added) :])]
            self.store.write_batch(
                codebook_id=self.codebook_id, added=self.added, updated=self.updated, moved=self.moved,
                touched=self.touched, removed=self.removed, failed=self.failed, projection_id=projection_id,
            )
        self._reset()
        self.last = time.monotonic()
