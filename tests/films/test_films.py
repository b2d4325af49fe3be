"""Films: shots with keyframes and palettes, film palettes, barcodes, contact sheets, posterized videos."""

from __future__ import annotations

import numpy as np
import pytest

from cbir.color import pack_rgb
from cbir.errors import BadInputError, BadVideoError
from cbir.films.filmstrips import barcode, contact_sheet, frame_color, timestamp
from cbir.films.posterize import decode_encode_seconds, posterize_video
from cbir.films.stills import film_palette, film_shots, film_stills
from cbir.films.video import VideoReader
from cbir.palette import extract_palette
from tests.clips import SCENES, make_clip, write_clip

PLAN = [("scene", 40), ("cut", 0), ("scene", 35), ("fade", 12), ("scene", 40), ("cut", 0), ("scene", 30)]


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    frames, starts = make_clip(PLAN)
    return write_clip(tmp_path_factory.mktemp("films") / "film.avi", frames), frames, starts


def _near(hex_color: str, rgb) -> bool:
    value = np.array([int(hex_color[i : i + 2], 16) for i in (1, 3, 5)], dtype=float)
    return float(np.abs(value - np.array(rgb, dtype=float)).max()) < 40


def test_film_shots(clip):
    path, frames, starts = clip
    found = film_shots(path)
    assert found.frames == len(frames) and found.info.fps == 25.0
    assert starts == [40, 87, 139]
    assert len(found.shots) == 4 and found.shots[0].start == 0
    assert all(abs(shot.start - true) <= 1 for shot, true in zip(found.shots[1:], starts))
    assert [shot.end for shot in found.shots] == [shot.start for shot in found.shots[1:]] + [len(frames)]
    for shot, scene in zip(found.shots, range(4)):
        assert shot.start <= shot.keyframe < shot.end
        assert abs(shot.keyframe - (shot.start + shot.end - 1) / 2) <= 4  # near the middle
        assert max(shot.image.shape[:2]) == 160  # the clip is smaller than KEYFRAME_SIDE
        assert len(shot.palette) == 5
        # the scene's background color leads the palette of its shot
        assert any(_near(c.hex, SCENES[scene][0]) for c in shot.palette.colors[:2]), (scene, shot.palette.to_dict())
    document = found.to_dict()
    assert set(document) == {"fps", "frames", "shots"}
    assert document["shots"][1]["start"] == 1.6 and document["shots"][1]["end"] == pytest.approx(found.shots[2].start / 25)
    assert set(document["shots"][0]["palette"][0]) == {"hex", "proportion"}
    assert sum(c["proportion"] for c in document["shots"][0]["palette"]) == pytest.approx(1.0, abs=1e-3)


def test_shot_frames_kept_stay_bounded(tmp_path):
    from cbir.films import stills as films

    frames, _ = make_clip([("scene", 140)])
    path = write_clip(tmp_path / "long.avi", frames)
    seen = []
    original = films._ShotFrames.add

    def spy(self, index, rgb):
        original(self, index, rgb)
        seen.append(len(self.items))

    films._ShotFrames.add = spy
    try:
        found = film_shots(path)
    finally:
        films._ShotFrames.add = original
    assert len(found.shots) == 1 and max(seen) <= films.SHOT_SAMPLES
    assert 60 <= found.shots[0].keyframe <= 80


def test_film_palette_of_a_video_and_of_a_folder(clip, tmp_path):
    path, frames, _ = clip
    stills = film_stills(path, n=50)
    assert 45 <= len(stills) <= 50 and max(stills[0].shape[:2]) == 96
    palette = film_palette(stills, k=4)
    assert len(palette) == 4
    for background, _ in SCENES[:4]:
        assert any(_near(c.hex, background) for c in palette.colors)
    from PIL import Image

    folder = tmp_path / "stills"
    folder.mkdir()
    for i in (0, 45, 100, 150):
        Image.fromarray(frames[i]).save(folder / f"{i:03d}.png")
    (folder / "broken.jpg").write_bytes(b"not an image")
    from_folder = film_stills(folder, n=10)
    assert len(from_folder) == 4  # the broken still is skipped
    assert len(film_palette(from_folder, k=4)) == 4


def test_film_stills_errors(tmp_path):
    with pytest.raises(BadInputError, match="no image files"):
        film_stills(tmp_path)
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(BadInputError, match="notes.txt: not a video"):
        film_stills(tmp_path / "notes.txt")
    with pytest.raises(BadInputError, match="at least 1"):
        film_stills(tmp_path, n=0)


def test_truncated_video_is_refused_not_half_read(clip, tmp_path):
    path, _, _ = clip
    data = path.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(BadVideoError, match="cut.avi: truncated"):
        film_shots(cut)


def test_frame_color_and_barcode():
    frame = np.zeros((10, 10, 3), np.uint8)
    frame[:, :7] = (200, 20, 20)
    frame[:, 7:] = (0, 0, 250)
    assert frame_color(frame, mode="average").tolist() == [140, 14, 89]
    assert frame_color(frame, mode="dominant").tolist() == [200, 20, 20]
    colors = np.array([[1, 2, 3], [4, 5, 6]], np.uint8)
    image = barcode(colors, height=5, column_width=3)
    assert image.shape == (5, 6, 3)
    assert (image[:, :3] == [1, 2, 3]).all() and (image[:, 3:] == [4, 5, 6]).all()
    with pytest.raises(BadInputError, match="dominant"):
        frame_color(frame, mode="median")
    with pytest.raises(BadInputError, match=r"\(n, 3\)"):
        barcode(np.zeros((0, 3), np.uint8))


def test_contact_sheet_layout():
    frames = [np.full((90, 160, 3), value, np.uint8) for value in (10, 120, 240)]
    palettes = [extract_palette(np.full((4, 4, 3), value, np.uint8), k=1) for value in (10, 120, 240)]
    sheet = contact_sheet(frames, palettes, ["0:00.0", "0:01.6", "0:03.4"], columns=2, width=160)
    gap = 4
    assert sheet.shape[1] == 2 * (160 + gap) + gap
    # the first tile's keyframe sits at (gap, gap); the third tile starts the second row
    assert (sheet[gap + 5, gap + 100] == 10).all()
    tile_height = (sheet.shape[0] - gap) // 2 - gap
    assert (sheet[gap + tile_height + gap + 5, gap + 100] == 240).all()
    with pytest.raises(BadInputError, match="as many palettes"):
        contact_sheet(frames, palettes[:2])
    assert timestamp(73.44) == "1:13.4" and timestamp(3723.0) == "1:02:03.0"


def test_posterize_video_keeps_frames_and_one_palette(clip, tmp_path):
    path, frames, _ = clip
    out = tmp_path / "dark.avi"
    result = posterize_video(path, out, k=6)
    assert result.frames == len(frames) and result.lossless and len(result.palettes) == 1
    allowed = set(pack_rgb(result.palettes[0].rgb[None]).ravel().tolist())
    assert len(allowed) == 6
    seen: set[int] = set()
    with VideoReader(out) as reader:
        count = 0
        for _, rgb in reader.frames():
            colors = set(np.unique(pack_rgb(rgb)).tolist())
            assert len(colors) <= 6 and colors <= allowed  # every frame drawn from the one palette
            seen |= colors
            count += 1
    assert count == len(frames)
    assert len(seen) >= 4  # the scenes use different palette colors


def test_posterize_video_per_shot(clip, tmp_path):
    path, frames, _ = clip
    out = tmp_path / "shots.mkv"
    result = posterize_video(path, out, k=3, per_shot=True)
    assert len(result.palettes) == 4
    with VideoReader(out) as reader:
        decoded = [rgb for _, rgb in reader.frames()]
    assert len(decoded) == len(frames)
    for index, palette in ((10, result.palettes[0]), (100, result.palettes[2])):
        colors = set(np.unique(pack_rgb(decoded[index])).tolist())
        assert colors <= set(pack_rgb(palette.rgb[None]).ravel().tolist())


def test_posterize_errors_and_baseline(clip, tmp_path):
    path, frames, _ = clip
    with pytest.raises(BadInputError, match="overwrite"):
        posterize_video(path, path, k=4)
    with pytest.raises(BadInputError, match="between 1 and 256"):
        posterize_video(path, tmp_path / "x.avi", k=0)
    count, seconds = decode_encode_seconds(path, tmp_path / "copy.avi")
    assert count == len(frames) and seconds > 0
