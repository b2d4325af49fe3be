"""Shot detection on generated clips (written to disk and decoded back): cuts, fades, dissolves, noise and motion."""

from __future__ import annotations

import numpy as np
import pytest

from cbir.films.shots import ShotDetector, detect_boundaries, frame_signature, shot_codebook
from cbir.films.video import VideoReader
from tests.clips import make_clip, scene_frame, write_clip

PLANS = {
    "cuts": [("scene", 30), ("cut", 0), ("scene", 20), ("cut", 0), ("scene", 25), ("cut", 0), ("scene", 30), ("cut", 0), ("scene", 12)],
    "mixed": [("scene", 40), ("cut", 0), ("scene", 35), ("fade", 12), ("scene", 40), ("dissolve", 16), ("scene", 40),
              ("cut", 0), ("scene", 30)],
    "slow": [("scene", 30), ("fade", 25), ("scene", 30), ("dissolve", 30), ("scene", 30)],
}


def _decoded(tmp_path, plan, *, seed=0, fourcc="MJPG"):
    frames, starts = make_clip(plan, seed=seed)
    path = write_clip(tmp_path / f"clip-{seed}.avi", frames, fourcc=fourcc)
    with VideoReader(path) as reader:
        decoded = [rgb for _, rgb in reader.frames()]
    assert len(decoded) == len(frames)
    return decoded, starts


@pytest.mark.parametrize("name", sorted(PLANS))
@pytest.mark.parametrize("seed", [0, 1])
def test_boundaries_within_one_frame_of_the_truth(tmp_path, name, seed):
    decoded, starts = _decoded(tmp_path, PLANS[name], seed=seed)
    found = detect_boundaries(decoded)
    assert found.starts[0] == 0 and found.frames == len(decoded)
    detected = list(found.starts[1:])
    assert len(detected) == len(starts), (detected, starts)
    assert all(abs(d - s) <= 1 for d, s in zip(detected, starts)), (detected, starts)


@pytest.mark.parametrize("name", sorted(PLANS))
@pytest.mark.parametrize(("speed", "noise"), [(4, 6), (1, 30), (6, 20)])
def test_fast_motion_and_heavy_grain(name, speed, noise):
    frames, starts = make_clip(PLANS[name], seed=1, speed=speed, noise=noise)
    detected = list(detect_boundaries(frames).starts[1:])
    assert len(detected) == len(starts) and all(abs(d - s) <= 1 for d, s in zip(detected, starts)), (detected, starts)


def test_cuts_are_exact(tmp_path):
    decoded, starts = _decoded(tmp_path, PLANS["cuts"])
    assert list(detect_boundaries(decoded).starts[1:]) == starts


def test_noise_and_motion_alone_make_one_shot():
    frames = [scene_frame(3, t, seed=5) for t in range(120)]
    found = detect_boundaries(frames)
    assert found.starts == (0,) and found.spans() == [(0, 120)]


def test_a_flash_shorter_than_a_shot_is_not_two_shots():
    frames = [scene_frame(0, t) for t in range(30)] + [np.full((120, 160, 3), 255, np.uint8)] + [scene_frame(0, t) for t in range(31, 60)]
    assert detect_boundaries(frames).starts == (0,)


def _flickering(scene, n, *, amount=0.1):
    return [np.clip(scene_frame(scene, t) * (1 + amount * np.sin(1.3 * t)), 0, 255).astype(np.uint8) for t in range(n)]


def test_thresholds_adapt_to_a_flickering_shot():
    frames = _flickering(1, 150) + _flickering(2, 60)
    assert detect_boundaries(frames).starts == (0, 150)
    # Fixed thresholds (the floors alone) take the flicker for one long transition and miss the cut.
    assert detect_boundaries(frames, cut_k=0, gradual_k=0).starts == (0,)
    still, flickering = ShotDetector(), ShotDetector()
    for a, b in zip([scene_frame(1, 0)] * 150, frames[:150]):
        still.push(frame_signature(a))
        flickering.push(frame_signature(b))
    assert still.thresholds() == (still.gradual_floor, still.cut_floor)
    assert flickering.thresholds()[0] > 2 * still.thresholds()[0]


def test_signature_is_a_smoothed_histogram_of_the_fixed_codebook():
    codebook = shot_codebook()
    assert codebook.n_colors == 216
    signature = frame_signature(scene_frame(0, 0))
    assert signature.shape == (216,)
    assert signature.sum() == pytest.approx(1.0)
    # Smoothing spreads a solid color over neighbouring codewords but keeps most of it in its own.
    solid = frame_signature(np.full((30, 40, 3), 255, np.uint8))
    assert solid.argmax() == 215 and 0.5 < solid.max() < 1.0


def test_empty_input_has_no_shots():
    found = detect_boundaries([])
    assert found.starts == () and found.frames == 0 and found.spans() == []


def test_bad_frame_is_a_named_error():
    from cbir.errors import BadInputError

    with pytest.raises(BadInputError, match="expected"):
        frame_signature(np.zeros((4, 4), np.uint8))


def test_signature_is_the_engines_softened_histogram():
    from cbir.distances import soft_similarity, soften
    from cbir.films.shots import LAYOUT, SMOOTHING_SIGMA
    from cbir.histogram import histogram

    frame = scene_frame(2, 5)
    codebook = shot_codebook()
    expected = soften(histogram(codebook.quantize(frame), codebook.n_colors, layout=LAYOUT),
                      soft_similarity(codebook.centers, sigma=SMOOTHING_SIGMA), power=1.0)
    np.testing.assert_allclose(frame_signature(frame), expected, atol=1e-12)
