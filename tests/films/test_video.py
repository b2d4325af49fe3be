"""Video files through cbir.films.video: reading, sampling, seeking, writing, frame paths, and broken files."""

from __future__ import annotations

import numpy as np
import pytest

from cbir.errors import BadImageError, BadInputError, BadVideoError
from cbir.films.video import VideoReader, VideoWriter, frame_path, is_video_path, split_frame_path, writer_fourcc
from tests.clips import make_clip, write_clip


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    frames, starts = make_clip([("scene", 30), ("cut", 0), ("scene", 30)])
    return write_clip(tmp_path_factory.mktemp("video") / "clip.avi", frames, fourcc="FFV1"), frames


def test_reads_every_frame_exactly_from_a_lossless_file(clip):
    path, frames = clip
    with VideoReader(path) as reader:
        assert (reader.info.fps, reader.info.frames, reader.info.width, reader.info.height) == (25.0, 60, 160, 120)
        decoded = list(reader.frames())
    assert [i for i, _ in decoded] == list(range(60))
    assert all(np.array_equal(a, b) for (_, a), b in zip(decoded, frames))


def test_step_and_max_side(clip):
    path, frames = clip
    with VideoReader(path) as reader:
        kept = list(reader.frames(step=7, max_side=40))
        assert reader.frames_read == 60
    assert [i for i, _ in kept] == list(range(0, 60, 7))
    assert kept[0][1].shape == (30, 40, 3)
    assert abs(kept[1][1].astype(float).mean() - frames[7].astype(float).mean()) < 2


def test_sample_spreads_over_the_video(clip):
    path, _ = clip
    with VideoReader(path) as reader:
        sampled = reader.sample(5)
    indices = [i for i, _ in sampled]
    assert len(indices) == 5 and indices[0] == 0 and indices[-1] >= 50


def test_sample_by_seeking_a_long_video(clip):
    path, frames = clip
    with VideoReader(path) as reader:
        sampled = reader.sample(3)  # 60 > 8 * 3 frames: reached by seeking
    assert [i for i, _ in sampled] == [0, 30, 59]
    assert np.array_equal(sampled[1][1], frames[30])


def test_frame_at_seeks(clip):
    path, frames = clip
    with VideoReader(path) as reader:
        assert np.array_equal(reader.frame_at(1.6), frames[40])


def test_truncated_video_is_a_named_error(tmp_path, clip):
    path, _ = clip
    data = path.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) * 6 // 10])
    with pytest.raises(BadVideoError, match=r"cut\.avi: truncated or damaged: decoded \d+ of the 60 frames"):
        with VideoReader(cut) as reader:
            for _ in reader.frames():
                pass


@pytest.mark.parametrize("content", [b"", b"not a video at all" * 50])
def test_not_a_video(tmp_path, content):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(content)
    with pytest.raises(BadVideoError, match="bad.mp4"):
        VideoReader(bad)


def test_missing_file_and_error_tree(tmp_path):
    with pytest.raises(BadVideoError, match="no such file") as caught:
        VideoReader(tmp_path / "gone.avi")
    assert isinstance(caught.value, BadImageError)  # indexing treats it like a bad image


def test_frame_paths():
    assert frame_path("/films/a.mp4", 73.44) == "/films/a.mp4#t=73.4"
    assert split_frame_path("/films/a.mp4#t=73.4") == ("/films/a.mp4", 73.4)
    assert split_frame_path("/photos/a#t=3.jpg") is None
    assert split_frame_path("/photos/odd.jpg#t=3") is None  # an image with a fragment-like name is no frame
    assert is_video_path("A.MKV") and not is_video_path("a.jpg")


def test_writer_round_trip_and_codecs(tmp_path):
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (24, 32, 3), dtype=np.uint8) for _ in range(4)]
    out = tmp_path / "out.mkv"
    with VideoWriter(out, fps=10, size=(32, 24)) as writer:
        for f in frames:
            writer.write(f)
    with VideoReader(out) as reader:
        assert all(np.array_equal(a, b) for (_, a), b in zip(reader.frames(), frames))
    assert writer_fourcc("x.avi") == "FFV1" and writer_fourcc("x.mp4") == "mp4v" and writer_fourcc("x.avi", "MJPG") == "MJPG"
    with pytest.raises(BadInputError, match="x.gif"):
        writer_fourcc("x.gif")
    with pytest.raises(BadInputError, match="FourCC"):
        writer_fourcc("x.avi", "H26")
