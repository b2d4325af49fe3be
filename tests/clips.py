"""Generated test clips: scenes of different colors with noise and motion, joined by cuts, fades and dissolves."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

#: Scene colors (sRGB): background and moving object of each scene.
SCENES = [
    ((200, 60, 40), (240, 200, 60)),
    ((30, 90, 170), (220, 230, 240)),
    ((40, 140, 60), (120, 60, 20)),
    ((230, 210, 170), (60, 40, 90)),
    ((90, 90, 90), (200, 40, 160)),
]


def scene_frame(scene: int, t: int, *, width: int = 160, height: int = 120, seed: int = 0, speed: float = 1.0,
                noise: float = 6.0) -> np.ndarray:
    """Frame ``t`` of a scene: a shaded background, a moving rectangle, sensor-like noise; uint8 RGB (H, W, 3).

    ``speed`` scales the motion (at 4 the rectangle crosses the frame in about a second), ``noise`` is the grain's sigma.
    """
    background, thing = (np.array(c, dtype=np.float32) for c in SCENES[scene % len(SCENES)])
    shade = np.linspace(0.75, 1.15, width, dtype=np.float32)[None, :, None]
    frame = np.broadcast_to(background * shade, (height, width, 3)).copy()
    size = width // 4 if speed <= 1 else width // 3
    x = int((width - size) * (0.5 + 0.45 * np.sin(speed * t / 9.0 + scene)))
    y = int((height - size) * (0.5 + 0.45 * np.cos(speed * t / 13.0 + scene)))
    frame[y : y + size, x : x + size] = thing
    rng = np.random.default_rng([seed, scene, t])
    frame += rng.normal(0.0, noise, frame.shape).astype(np.float32)
    return np.clip(frame, 0, 255).astype(np.uint8)


def make_clip(plan: list[tuple[str, int]], *, width: int = 160, height: int = 120, seed: int = 0, speed: float = 1.0,
              noise: float = 6.0) -> tuple[list[np.ndarray], list[int]]:
    """Frames of a clip and the true first frame of every scene after the first.

    ``plan`` is a list of steps: ``("scene", n)`` shows the next scene for n frames;
    ``("cut", 0)`` starts the next scene at once; ``("fade", n)`` fades the current scene
    to black in n frames and the next in from black in n; ``("dissolve", n)`` blends into
    the next scene over n frames. The true boundary of a fade or dissolve is its middle.
    """
    frames: list[np.ndarray] = []
    starts: list[int] = []
    scene, t = 0, 0

    def shot(n: int) -> None:
        nonlocal t
        for _ in range(n):
            frames.append(scene_frame(scene, t, width=width, height=height, seed=seed, speed=speed, noise=noise))
            t += 1

    for kind, n in plan:
        if kind == "scene":
            shot(n)
        elif kind == "cut":
            scene, t = scene + 1, 0
            starts.append(len(frames))
        elif kind == "fade":
            for i in range(n):
                frames.append((scene_frame(scene, t + i, width=width, height=height, seed=seed, speed=speed, noise=noise) * (1 - (i + 1) / n)).astype(np.uint8))
            scene, t = scene + 1, 0
            starts.append(len(frames))
            for i in range(n):
                frames.append((scene_frame(scene, t, width=width, height=height, seed=seed, speed=speed, noise=noise) * ((i + 1) / n)).astype(np.uint8))
                t += 1
        elif kind == "dissolve":
            old = scene
            starts.append(len(frames) + n // 2)
            for i in range(n):
                alpha = (i + 1) / (n + 1)
                a = scene_frame(old, t, width=width, height=height, seed=seed, speed=speed, noise=noise).astype(np.float32)
                b = scene_frame(old + 1, i, width=width, height=height, seed=seed, speed=speed, noise=noise).astype(np.float32)
                frames.append(np.clip(a * (1 - alpha) + b * alpha, 0, 255).astype(np.uint8))
                t += 1
            scene, t = old + 1, n
    return frames, starts


def write_clip(path: str | Path, frames: list[np.ndarray], *, fps: float = 25.0, fourcc: str = "MJPG") -> Path:
    """Write RGB frames to a video file with OpenCV (MJPG in .avi by default, FFV1 for lossless)."""
    path = Path(path)
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (width, height))
    assert writer.isOpened(), f"cannot write {fourcc} to {path}"
    for rgb in frames:
        writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    writer.release()
    return path
