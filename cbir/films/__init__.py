"""Films: videos read as streams of frames, cut into shots, summarized as keyframes, palettes and pictures.

``video``       the only place that opens video files: frames streamed in order, writing, ``film.mp4#t=73.4`` paths
``shots``       shot boundaries from consecutive frames' color histograms (cuts, fades, dissolves)
``stills``      the shots of a video with a keyframe and palette each; evenly sampled stills; a film's palette
``filmstrips``  the movie barcode and the contact sheet of shots with their palettes
``posterize``   a video posterized with one palette (or one per shot), so colors do not flicker

This package uses the core (color, codebook, histogram, distances, images) and :mod:`cbir.palette`, and never
``cbir.cli``, ``indexer`` or ``search``.
"""

from cbir.films.filmstrips import barcode, contact_sheet, frame_color, timestamp
from cbir.films.posterize import PosterizedVideo, posterize_video
from cbir.films.shots import ShotDetector, detect_boundaries, frame_signature
from cbir.films.stills import FilmShots, Shot, film_palette, film_shots, film_stills
from cbir.films.video import (
    VIDEO_EXTENSIONS,
    VideoInfo,
    VideoReader,
    VideoWriter,
    frame_path,
    is_video_path,
    split_frame_path,
)

__all__ = [
    "VIDEO_EXTENSIONS",
    "FilmShots",
    "PosterizedVideo",
    "Shot",
    "ShotDetector",
    "VideoInfo",
    "VideoReader",
    "VideoWriter",
    "barcode",
    "contact_sheet",
    "detect_boundaries",
    "film_palette",
    "film_shots",
    "film_stills",
    "frame_color",
    "frame_path",
    "frame_signature",
    "is_video_path",
    "posterize_video",
    "split_frame_path",
    "timestamp",
]
