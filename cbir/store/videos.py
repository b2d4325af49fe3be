"""The Store's videos: one image row per shot keyframe, and a table that ties those rows to their video."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import delete, insert, inspect, select
from sqlalchemy.engine import Engine

from cbir.store.engine import now
from cbir.store.records import Failure, ImageRecord, VideoFrame, VideoState
from cbir.store.schema import FailureRow, ImageRow, VideoFrameRow
from cbir.store.statements import bump_generation, image_values, inside


class VideosPart:
    """Videos of :class:`cbir.store.Store` (a part of it, not used alone)."""

    engine: Engine
    _video_table: bool  # whether the video_frames table is known to exist

    def _has_video_table(self) -> bool:
        if self._video_table:
            return True
        with self.engine.connect() as conn:  # an index made before videos were indexed has none until written
            self._video_table = inspect(conn).has_table(VideoFrameRow.__tablename__)
        return self._video_table

    def video_states(self, *, under: str | None = None) -> dict[str, VideoState]:
        """Video path -> state of every indexed video (only those inside folder ``under`` if given)."""
        if not self._has_video_table():
            return {}
        query = (
            select(VideoFrameRow.video, ImageRow.id, ImageRow.size, ImageRow.mtime)
            .join(ImageRow, ImageRow.id == VideoFrameRow.image_id)
            .order_by(VideoFrameRow.video, ImageRow.id)
        )
        if under is not None:
            query = query.where(inside(VideoFrameRow.video, under))
        found: dict[str, list] = {}
        with self.engine.connect() as conn:
            for r in conn.execute(query):
                found.setdefault(r.video, [r.size, r.mtime, []])[2].append(r.id)
        return {path: VideoState(path, size, mtime, tuple(ids)) for path, (size, mtime, ids) in found.items()}

    def video_frames(self, ids: Iterable[int]) -> dict[int, VideoFrame]:
        """Id -> :class:`VideoFrame` for the given ids that are video keyframes (others are left out)."""
        wanted = [int(i) for i in ids]
        if not wanted or not self._has_video_table():
            return {}
        out: dict[int, VideoFrame] = {}
        for start in range(0, len(wanted), 500):
            with self.engine.connect() as conn:
                rows = conn.execute(select(VideoFrameRow).where(VideoFrameRow.image_id.in_(wanted[start : start + 500])))
                out.update({r.image_id: VideoFrame(r.image_id, r.video, r.seconds, r.shot_start, r.shot_end) for r in rows})
        return out

    def replace_video(
        self,
        video: str,
        *,
        codebook_id: int,
        shots: Sequence[tuple[ImageRecord, float, float, float]] = (),
        failure: Failure | None = None,
    ) -> int:
        """Replace every row of a video, in one transaction: a changed video is re-indexed as a whole.

        Parameters
        ----------
        video : str
            The video's path.
        shots : sequence of (record, keyframe seconds, shot start, shot end)
            One keyframe row per shot (``record.path`` is ``video#t=SECONDS``); empty to remove the video.
        failure : Failure, optional
            Record the video as unreadable (its old rows are removed).

        Returns
        -------
        int
            The number of old rows removed.
        """
        stamp = now()
        with self.engine.begin() as conn:
            old = [r.image_id for r in conn.execute(select(VideoFrameRow.image_id).where(VideoFrameRow.video == video))]
            for start in range(0, len(old), 500):
                chunk = old[start : start + 500]
                conn.execute(delete(VideoFrameRow).where(VideoFrameRow.image_id.in_(chunk)))
                conn.execute(delete(ImageRow).where(ImageRow.id.in_(chunk)))
            conn.execute(delete(FailureRow).where(FailureRow.path == video))
            for record, seconds, shot_start, shot_end in shots:
                result = conn.execute(insert(ImageRow).values(**image_values(record, codebook_id, stamp, None)))
                conn.execute(insert(VideoFrameRow).values(
                    image_id=int(result.inserted_primary_key[0]),  # type: ignore[index]
                    video=video, seconds=seconds, shot_start=shot_start, shot_end=shot_end,
                ))
            if failure is not None:
                conn.execute(insert(FailureRow).values(
                    path=failure.path, size=failure.size, mtime=failure.mtime, reason=failure.reason, failed_at=stamp
                ))
            if old or shots:
                bump_generation(conn)
        return len(old)
