"""Videos in an indexed folder: one row per shot keyframe, found by a still, synced as a whole (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner
from PIL import Image

from cbir.cli import main
from cbir.store import Store
from indexer import index_folder
from tests.clips import make_clip, write_clip
from tests.conftest import solid, write_image

PLAN = [("scene", 40), ("cut", 0), ("scene", 40), ("cut", 0), ("scene", 40)]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request, tmp_path):
    if request.param == "sqlite":
        return str(tmp_path / "index.db")
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "media"
    frames, starts = make_clip(PLAN, width=240, height=180)
    (root / "films").mkdir(parents=True)
    write_clip(root / "films" / "film.avi", frames)
    write_image(root / "photo.png", solid((240, 240, 20), size=(60, 80)))
    write_image(root / "sea.png", solid((20, 60, 200), size=(60, 80)))
    return root, frames, starts


def _still(frames, index, path):
    Image.fromarray(frames[index]).save(path, quality=85)  # re-encoded as JPEG
    return path


def test_a_still_finds_the_film_and_the_time_of_its_shot(folder, db, tmp_path):
    root, frames, starts = folder
    with Store(db, create=True) as store:
        report = index_folder(root, store, n_colors=32, workers=1)
        assert report.added == 2 and not report.failed
        assert report.videos == {"videos": 1, "added": 1, "updated": 0, "removed": 0, "unchanged": 0, "shots": 3}
        assert store.count() == 5
        states = store.video_states()
        video = str(root / "films" / "film.avi")
        assert list(states) == [video] and len(states[video].ids) == 3
        frames_of = store.video_frames(states[video].ids)
        shots = sorted((f.shot_start, f.shot_end) for f in frames_of.values())
        assert shots == [(0.0, 1.6), (1.6, 3.2), (3.2, 4.8)]
        for frame in frames_of.values():
            assert frame.shot_start <= frame.seconds < frame.shot_end
            assert store.image(frame.image_id).path == f"{video}#t={frame.seconds:.1f}"
    query = _still(frames, 63, tmp_path / "still.jpg")  # a frame of the second scene
    result = CliRunner().invoke(main, ["search", str(query), "--db", db, "-k", "2", "--json"])
    assert result.exit_code == 0, result.output
    best = json.loads(result.stdout)["results"][0]
    assert best["path"].startswith(video + "#t=")
    assert best["video"]["path"] == video
    assert starts[0] / 25 <= best["video"]["time"] < starts[1] / 25  # inside the second shot
    assert (best["video"]["shot_start"], best["video"]["shot_end"]) == (1.6, 3.2)
    text = CliRunner().invoke(main, ["search", str(query), "--db", db, "-k", "1"])
    assert f"{video}#t=2.4" in text.stdout


def test_sync_replaces_a_changed_video_as_a_whole(folder, db):
    root, _, _ = folder
    video = root / "films" / "film.avi"
    with Store(db, create=True) as store:
        index_folder(root, store, n_colors=32, workers=1)
        photos = {p: s.id for p, s in store.file_states().items() if "#t=" not in p}
        old_ids = set(store.video_states()[str(video)].ids)
        old_rows = {(store.image(i).path, store.image(i).content_hash) for i in old_ids}

        again = index_folder(root, store, workers=1)
        assert again.videos["unchanged"] == 1 and again.videos["shots"] == 0
        assert set(store.video_states()[str(video)].ids) == old_ids

        frames, _ = make_clip([("scene", 30), ("cut", 0), ("scene", 30), ("cut", 0), ("scene", 30), ("cut", 0), ("scene", 30)],
                              width=240, height=180, seed=3)
        write_clip(video, frames)
        os.utime(video, (1_000_000_000, 1_000_000_000))
        changed = index_folder(root, store, workers=1)
        assert changed.videos["updated"] == 1 and changed.videos["removed"] == 3 and changed.videos["shots"] == 4
        new_ids = set(store.video_states()[str(video)].ids)
        new_rows = {(store.image(i).path, store.image(i).content_hash) for i in new_ids}
        assert len(new_rows) == 4 and not new_rows & old_rows  # every old shot row is gone
        assert sorted(f.shot_start for f in store.video_frames(new_ids).values()) == [0.0, 1.2, 2.4, 3.6]
        assert {p: s.id for p, s in store.file_states().items() if "#t=" not in p} == photos  # images untouched
        assert changed.removed == 0 and changed.unchanged == 2

        video.unlink()
        gone = index_folder(root, store, workers=1)
        assert gone.videos["removed"] == 4 and store.video_states() == {} and store.count() == 2


def test_a_truncated_video_is_a_recorded_failure(folder, db):
    root, _, _ = folder
    video = root / "films" / "film.avi"
    with Store(db, create=True) as store:
        index_folder(root, store, n_colors=32, workers=1)
        data = video.read_bytes()
        video.write_bytes(data[: len(data) // 2])
        report = index_folder(root, store, workers=1)
        assert [(f.path, f.reason.split(":")[0]) for f in report.failed] == [(str(video), "truncated or damaged")]
        assert store.video_states() == {} and store.count() == 2  # its old rows went with it
        assert [f.path for f in store.failures()] == [str(video)]
        again = index_folder(root, store, workers=1)  # unchanged since it failed: not decoded again
        assert again.failed[0].reason == "unchanged since it last failed" and store.failure_count() == 1


def test_cli_index_of_videos_only(tmp_path):
    root = tmp_path / "films"
    frames, _ = make_clip(PLAN)
    root.mkdir()
    write_clip(root / "a.avi", frames)
    (root / "broken.mp4").write_bytes(b"no video here" * 100)
    db = str(tmp_path / "v.db")
    result = CliRunner().invoke(main, ["index", str(root), "--db", db, "--colors", "16", "-q"])
    assert result.exit_code == 0, result.output
    assert "1 videos: 1 added" not in result.stderr  # two video files were found
    assert "2 videos: 1 added" in result.stderr and "3 shot keyframes written" in result.stderr
    assert f"{root / 'broken.mp4'}: not a video OpenCV can decode" in result.stderr
    info = json.loads(CliRunner().invoke(main, ["info", "--db", db, "--json"]).stdout)
    assert info["images"] == 3 and info["codebook_size"] == 16 and info["failures"] == 1


def test_web_page_shows_keyframes_with_their_time(folder, tmp_path):
    from fastapi.testclient import TestClient

    from search.http import create_app

    root, frames, _ = folder
    db = str(tmp_path / "web.db")
    with Store(db, create=True) as store:
        index_folder(root, store, n_colors=32, workers=1)
    with TestClient(create_app(db)) as client:
        query = _still(frames, 100, tmp_path / "q.jpg").read_bytes()
        response = client.post("/api/search", files={"image": ("q.jpg", query, "image/jpeg")}, params={"k": 5})
        assert response.status_code == 200, response.text
        best = response.json()["results"][0]
        assert best["name"] == "film.avi at 0:04.0" and best["video"]["shot_start"] == 3.2
        thumbnail = client.get(best["thumbnail"])
        assert thumbnail.status_code == 200 and thumbnail.headers["content-type"] == "image/jpeg"
        full = client.get(best["image"])
        assert full.status_code == 200 and full.content[:2] == b"\xff\xd8"
        photo = next(r for r in response.json()["results"] if "video" not in r or r["video"] is None)
        assert photo["name"].endswith(".png")


def test_videos_of_another_root_stay_and_a_vanished_video_folder_is_guarded(tmp_path):
    from cbir.errors import MassRemovalError

    frames, _ = make_clip(PLAN)
    films, photos = tmp_path / "films", tmp_path / "photos"
    films.mkdir()
    write_clip(films / "a.avi", frames)
    write_image(photos / "sun.png", solid((240, 240, 20), size=(60, 80)))
    with Store(tmp_path / "i.db", create=True) as store:
        index_folder(films, store, n_colors=16, workers=1)
        index_folder(photos, store, workers=1)  # another root: the film's rows are none of its business
        assert list(store.video_states()) == [str(films / "a.avi")] and store.count() == 4
        (films / "a.avi").rename(tmp_path / "elsewhere.avi")  # the folder is now empty
        with pytest.raises(MassRemovalError):
            index_folder(films, store, workers=1)
        assert store.count() == 4  # nothing written
        index_folder(films, store, workers=1, prune=True)
        assert store.video_states() == {} and store.count() == 1
