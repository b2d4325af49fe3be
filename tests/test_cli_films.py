"""`cbir shots`, and `cbir palette` / `cbir quantize` on a video or a folder of stills (CliRunner, real files)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from cbir.cli import main
from cbir.films.video import VideoReader
from tests.clips import make_clip, write_clip


@pytest.fixture(scope="module")
def film(tmp_path_factory):
    frames, starts = make_clip([("scene", 30), ("cut", 0), ("scene", 30), ("cut", 0), ("scene", 20)])
    return write_clip(tmp_path_factory.mktemp("cli") / "film.avi", frames), frames, starts


def _run(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_shots_json(film, tmp_path):
    path, frames, starts = film
    sheet = tmp_path / "sheet.png"
    result = _run("shots", path, "--json", "-q", "--sheet", sheet)
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["fps"] == 25.0 and document["frames"] == 80
    assert [s["start"] for s in document["shots"]] == [0.0, 1.2, 2.4]
    assert [s["end"] for s in document["shots"]] == [1.2, 2.4, 3.2]
    assert all(s["start"] <= s["keyframe"] < s["end"] for s in document["shots"])
    assert all(len(s["palette"]) == 5 and s["palette"][0]["hex"].startswith("#") for s in document["shots"])
    with Image.open(sheet) as image:
        assert image.width > 3 * 320  # three tiles side by side


def test_shots_text(film):
    path, _, _ = film
    result = _run("shots", path, "-q")
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 3 and "0:01.2 -    0:02.4" in lines[1]


def test_palette_of_a_film_with_barcode_and_sheet(film, tmp_path):
    path, _, _ = film
    code, sheet = tmp_path / "code.png", tmp_path / "sheet.png"
    result = _run("palette", path, "-k", "3", "--frames", "40", "--barcode", code, "--sheet", sheet, "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert len(document["colors"]) == 3 and document["frames_sampled"] == 40
    with Image.open(code) as image:
        pixels = np.asarray(image.convert("RGB"))
    assert pixels.shape[1] == 40 * (800 // 40)
    assert len({tuple(c) for c in pixels[0, :: 800 // 40]}) >= 3  # the three scenes show in the barcode
    assert sheet.stat().st_size > 0


def test_palette_of_a_folder(film, tmp_path):
    _, frames, _ = film
    for i in (0, 40, 70):
        Image.fromarray(frames[i]).save(tmp_path / f"still{i}.png")
    result = _run("palette", tmp_path, "-k", "3", "--sheet", tmp_path / "s.png")
    assert result.exit_code == 0, result.output
    assert "palette of 3 sampled stills" in result.stderr and len(result.stdout.strip().splitlines()) == 3


def test_quantize_a_video(film, tmp_path):
    path, frames, _ = film
    out = tmp_path / "dark.avi"
    result = _run("quantize", path, "-k", "4", "--out", out)
    assert result.exit_code == 0, result.output
    assert "audio track is not copied" in result.stderr
    assert "80 frames in" in result.stderr and "frames/s" in result.stderr
    with VideoReader(out) as reader:
        colors = set()
        for _, rgb in reader.frames():
            colors |= {tuple(c) for c in np.unique(rgb.reshape(-1, 3), axis=0)}
    assert len(colors) == 4


def test_quantize_mp4_says_it_is_lossy(film, tmp_path):
    path, _, _ = film
    result = _run("quantize", path, "-k", "4", "--out", tmp_path / "dark.mp4", "-q", "--per-shot")
    assert result.exit_code == 0, result.output
    assert "lossy" in result.stderr and "3 per-shot palettes" in result.stderr


@pytest.mark.parametrize("command", [["shots"], ["palette"], ["quantize", "--out"]])
def test_broken_videos_are_one_line_errors(film, tmp_path, command):
    path, _, _ = film
    cut = tmp_path / "cut.avi"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    out = tmp_path / "out.avi"
    result = _run(command[0], cut, *command[1:], *([out] if command[0] == "quantize" else []))
    assert result.exit_code == 2
    assert "Traceback" not in result.output and "cut.avi: truncated or damaged" in result.stderr
    assert not out.exists()  # no half-written video is left behind


def test_usage_errors(film, tmp_path):
    path, frames, _ = film
    image = tmp_path / "a.png"
    Image.fromarray(frames[0]).save(image)
    assert _run("palette", image, "--barcode", tmp_path / "b.png").exit_code == 2
    assert _run("quantize", path, "--out", tmp_path / "o.avi", "--side-by-side").exit_code == 2
    result = _run("quantize", path, "--out", tmp_path / "o.gif")
    assert result.exit_code == 2 and "o.gif" in result.stderr
