"""Shot boundaries of a video, found by comparing consecutive frames' color histograms.

Every frame (read at :data:`ANALYSIS_SIDE` pixels) becomes the engine's own
histogram (:func:`cbir.histogram.histogram`, ``global`` layout: motion inside the frame barely moves it) over a fixed
216-color codebook (a 6-level sRGB grid, assigned in L*a*b*), smoothed across
neighbouring colors (:func:`cbir.distances.soften`) so a color drifting from one
bin to the next during a fade changes the histogram gradually. Consecutive frames
are compared with chi-squared (:func:`cbir.distances.chi2`).

The threshold adapts to the film (twin comparison with robust statistics): over
the last :data:`WINDOW` frame-to-frame distances inside the shot, a *cut* is a
distance above ``max(CUT_FLOOR, median + CUT_K * MAD)`` that carries most of its
run; a run of distances above the lower ``max(GRADUAL_FLOOR, median + GRADUAL_K * MAD)``
is a fade or dissolve, with its boundary in the middle of the run (after the
darkest frames of a fade through black). Either is kept
only when the frames before and after the run are as far apart as a cut
(``GRADUAL_TOTAL``), which rules out flashes and passing objects. Noise and motion
raise the median and MAD, so they raise the thresholds with them.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from cbir.codebook import Codebook
from cbir.color import rgb_to_lab
from cbir.distances import chi2, soft_similarity
from cbir.histogram import histogram

#: Longer side, in pixels, of the frames whose histograms are compared.
ANALYSIS_SIDE = 160
#: Levels per sRGB channel of the fixed codebook (6**3 = 216 colors).
GRID_LEVELS = 6
LAYOUT = "global"
#: Lab scale of the cross-color smoothing (about half the distance between neighbouring grid colors).
SMOOTHING_SIGMA = 12.0
#: Frame-to-frame distances the running statistics are taken over.
WINDOW = 48
CUT_K = 10.0
CUT_FLOOR = 0.25
GRADUAL_K = 4.0
GRADUAL_FLOOR = 0.005
#: A gradual transition is kept when the frames on either side are this far apart.
GRADUAL_TOTAL = 0.25
#: Frames below the low threshold that may interrupt a transition (the darkest frames of a fade barely change).
GRADUAL_GAP = 4
#: A frame where one color holds this share is blank (it does not end a transition).
BLANK_SHARE = 0.9
#: Frames a transition may last; a longer run of change is the shot's normal (flicker, a moving camera).
MAX_RUN = 2 * WINDOW
#: A frame whose mean L* is below this is dark (the bottom of a fade to black).
DARK_LIGHTNESS = 12.0
#: A run of high distances is a cut at its largest when that one carries this share of the run's sum.
PEAK_SHARE = 0.5
#: Fewest frames of a shot (a flash or a single odd frame is not a shot).
MIN_SHOT = 6


@lru_cache(maxsize=1)
def shot_codebook() -> Codebook:
    """The fixed codebook of shot detection: a 6-level sRGB grid as L*a*b* codewords, 216 colors."""
    levels = np.linspace(0, 255, GRID_LEVELS).round().astype(np.uint8)
    grid = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), axis=-1).reshape(-1, 3)
    return Codebook(rgb_to_lab(grid), params={"kind": "shot grid", "levels": GRID_LEVELS})


@lru_cache(maxsize=1)
def _spread_t() -> np.ndarray:
    """The transposed spreading matrix of :func:`cbir.distances.soft_similarity`, C-contiguous."""
    return np.ascontiguousarray(soft_similarity(shot_codebook().centers, sigma=SMOOTHING_SIGMA).T)


def frame_signature(rgb: np.ndarray) -> np.ndarray:
    """The smoothed global histogram shot detection compares, shape (216,) float64.

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3), uint8
        A frame (best at about :data:`ANALYSIS_SIDE` pixels).

    Raises
    ------
    BadInputError
        If ``rgb`` is not a non-empty uint8 (H, W, 3) array.
    """
    codebook = shot_codebook()
    counts = histogram(codebook.quantize(rgb), codebook.n_colors, layout=LAYOUT)
    # soften(counts, spread, power=1.0) without its generality: the spread is column-stochastic, so
    # one product keeps the mass (the same values; this runs on every frame).
    return counts.astype(np.float64) @ _spread_t()


class ShotDetector:
    """Streaming shot-boundary detection: push one frame signature at a time.

    Parameters
    ----------
    window, cut_k, cut_floor, gradual_k, gradual_floor, gradual_total, min_shot
        See the module docstring; the defaults were measured on generated clips
        with cuts, fades and dissolves under noise and motion.

    Attributes
    ----------
    last_distance : float
        The distance of the last pushed frame to the one before (only a few recent ones are kept).
    """

    def __init__(
        self,
        *,
        window: int = WINDOW,
        cut_k: float = CUT_K,
        cut_floor: float = CUT_FLOOR,
        gradual_k: float = GRADUAL_K,
        gradual_floor: float = GRADUAL_FLOOR,
        gradual_total: float = GRADUAL_TOTAL,
        min_shot: int = MIN_SHOT,
    ) -> None:
        self.cut_k, self.cut_floor, self.gradual_k, self.gradual_floor = cut_k, cut_floor, gradual_k, gradual_floor
        self.gradual_total, self.min_shot = gradual_total, min_shot
        self._history: deque[float] = deque(maxlen=window)
        self._previous: np.ndarray | None = None
        self._index = -1
        self._last_boundary = 0
        self._run: _Run | None = None
        self.last_distance = 0.0

    def thresholds(self) -> tuple[float, float]:
        """The current ``(low, high)`` thresholds from the recent distances."""
        return self._statistics()[1:]

    def _statistics(self) -> tuple[float, float, float]:
        """``(median, low, high)`` of the recent distances."""
        if len(self._history) < 4:
            return 0.0, self.gradual_floor, self.cut_floor
        # Pure Python on <= WINDOW floats: a tenth of np.median's per-call cost, and this runs every frame.
        median = _median(list(self._history))
        mad = 1.4826 * _median([abs(d - median) for d in self._history])
        return median, max(self.gradual_floor, median + self.gradual_k * mad), max(self.cut_floor, median + self.cut_k * mad)

    def push(self, signature: np.ndarray) -> int | None:
        """Take the next frame's :func:`frame_signature`; return the first frame of a new shot when one is decided.

        Every run of distances above the low threshold is a candidate transition,
        decided :data:`GRADUAL_GAP` quiet frames after it ends. When the frames before
        and after the run differ as much as a cut does (``gradual_total``), it is a cut
        if one distance above the high threshold carries most of the run (the boundary
        is that frame), else a fade or dissolve (the boundary is the middle of the run).
        Otherwise it was motion or a flash, and no boundary.
        """
        self._index += 1
        previous, self._previous = self._previous, signature
        if previous is None:
            return None
        distance = float(chi2(previous, signature[None, :])[0])
        self.last_distance = distance
        median, low, high = self._statistics()
        if distance > low:
            if self._run is None:
                self._run = _Run(start=self._index - 1, before=previous, after=signature, high=high, median=median)
            self._run.extend(self._index, signature, distance)
            if self._run.end - self._run.start > MAX_RUN:
                # Change this long is the shot's normal (flicker, camera motion): it sets the thresholds.
                self._history.extend(self._run.distances)
                self._run = None
        if self._run is not None:
            self._run.note_lightness(self._index, _lightness(signature))
        if distance > low:
            return None
        self._history.append(distance)
        if self._run is not None and not _is_blank(signature):  # a fade may hold on black (or white) a while
            self._run.quiet += 1
            if self._run.quiet > GRADUAL_GAP:
                return self._close_run()
        return None

    def finish(self) -> int | None:
        """Decide a transition still open at the end of the video."""
        return self._close_run() if self._run is not None else None

    def _close_run(self) -> int | None:
        run, self._run = self._run, None
        if run is None:
            return None
        if float(chi2(run.before, run.after[None, :])[0]) <= self.gradual_total:
            # The same picture before and after: motion, a flash, a passing object. Its distances are
            # this shot's normal, so they raise the thresholds.
            self._history.extend(run.distances)
            return None
        if run.peak > run.high and run.peak >= PEAK_SHARE * run.total:
            boundary = run.peak_index
        elif run.end - run.start >= 2 and run.darkest < DARK_LIGHTNESS:
            boundary = (run.dark_first + run.dark_last) // 2 + 1  # a fade through black: just after its darkest frames
        elif run.end - run.start >= 2:
            boundary = (run.start + run.end + 1) // 2
        else:
            return None
        if boundary - self._last_boundary < self.min_shot:
            return None
        self._last_boundary = boundary
        self._history.clear()  # the new shot's statistics start afresh
        return boundary


def _median(values: list[float]) -> float:
    values.sort()
    middle = len(values) // 2
    return values[middle] if len(values) % 2 else 0.5 * (values[middle - 1] + values[middle])


def _lightness(signature: np.ndarray) -> float:
    """Mean L* of a frame, from its signature."""
    codebook = shot_codebook()
    shares = signature.reshape(-1, codebook.n_colors).sum(axis=0)
    return float(shares @ codebook.centers[:, 0]) / max(float(shares.sum()), 1e-12)


def _is_blank(signature: np.ndarray) -> bool:
    """Whether a frame is nearly one color or nearly black (the middle of a fade): it does not end a transition."""
    shares = signature.reshape(-1, shot_codebook().n_colors).sum(axis=0)
    return float(shares.max()) > BLANK_SHARE or _lightness(signature) < DARK_LIGHTNESS


@dataclass
class _Run:
    """Consecutive frame distances above the low threshold: a candidate cut, fade or dissolve."""

    start: int  # the last frame before the run
    before: np.ndarray
    after: np.ndarray  # the run's last frame
    high: float  # the high threshold when the run began
    median: float  # and the median distance
    end: int = 0
    total: float = 0.0
    peak: float = 0.0
    peak_index: int = 0
    quiet: int = 0
    darkest: float = np.inf
    dark_first: int = 0
    dark_last: int = 0
    distances: deque[float] = field(default_factory=lambda: deque(maxlen=MAX_RUN + 1))

    def note_lightness(self, index: int, lightness: float) -> None:
        if lightness < self.darkest - 0.5:
            self.darkest, self.dark_first, self.dark_last = lightness, index, index
        elif lightness <= self.darkest + 0.5:
            self.dark_last = index

    def extend(self, index: int, signature: np.ndarray, distance: float) -> None:
        self.end, self.after, self.quiet = index, signature, 0
        self.distances.append(distance)
        self.total += max(0.0, distance - self.median)  # what the run adds to the shot's usual change
        if distance > self.peak:
            self.peak, self.peak_index = distance, index


@dataclass(frozen=True)
class Boundaries:
    """Shot boundaries of a frame sequence: the first frame of every shot (0 first), and the frame count."""

    starts: tuple[int, ...]
    frames: int

    def spans(self) -> list[tuple[int, int]]:
        """``(first, end)`` frame ranges of the shots, end exclusive."""
        ends = self.starts[1:] + (self.frames,)
        return list(zip(self.starts, ends))


def detect_boundaries(frames: np.ndarray | list[np.ndarray], **options: float) -> Boundaries:
    """Shot boundaries of frames held in memory (tests, short clips); :func:`cbir.films.stills.film_shots` streams a file.

    Parameters
    ----------
    frames : sequence of ndarray (H, W, 3) uint8
    **options
        Passed to :class:`ShotDetector`.

    Returns
    -------
    Boundaries

    Raises
    ------
    BadInputError
        If a frame is not uint8 (H, W, 3).
    """
    detector = ShotDetector(**options)  # type: ignore[arg-type]
    starts = [0]
    count = 0
    for rgb in frames:
        count += 1
        found = detector.push(frame_signature(rgb))
        if found is not None:
            starts.append(found)
    found = detector.finish()
    if found is not None:
        starts.append(found)
    return Boundaries(tuple(starts) if count else (), count)
