"""``cbir shots``, and the film branches of ``cbir palette`` and ``cbir quantize`` (a video or a folder of stills).

A thin shell like the other commands: parse, call one library function, print.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from cbir.cli.common import emit_json, handle_errors, note, tqdm_class


def quiet_video_decoder() -> None:
    """Keep FFmpeg's and OpenCV's own warnings about damaged files off stderr: cbir names the file and the fault itself."""
    import cv2

    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # read when the FFmpeg backend first opens a file
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


def is_film_source(source: str) -> bool:
    """Whether ``cbir palette``/``quantize`` should treat SOURCE as a film: a video file or a folder."""
    from cbir.films.video import is_video_path

    return os.path.isdir(source) or is_video_path(source)


class _FrameBar:
    """A tqdm bar on stderr counting frames and showing the rate."""

    def __init__(self, description: str, *, quiet: bool) -> None:
        self.bar = tqdm_class()(total=0, unit="frame", file=sys.stderr, disable=quiet or None, desc=description)

    def __call__(self, done: int, total: int) -> None:
        if total and self.bar.total != total:
            self.bar.total = total
            self.bar.refresh()
        self.bar.update(done - self.bar.n)

    def __enter__(self) -> _FrameBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.close()


def _sheet(shots: Any, out: str, *, columns: int) -> None:
    from cbir.films.filmstrips import contact_sheet, timestamp
    from cbir.palette.swatches import save_image

    save_image(out, contact_sheet(
        [shot.image for shot in shots.shots], [shot.palette for shot in shots.shots],
        [timestamp(shots.seconds(shot.start)) for shot in shots.shots], columns=columns,
    ))
    click.echo(f"wrote {out} ({len(shots.shots)} shots)", err=True)


@click.command()
@click.argument("video", type=str)
@click.option("-k", "k", type=click.IntRange(1, 32), default=5, show_default=True, help="Colors per shot palette.")
@click.option("--sheet", type=click.Path(dir_okay=False), default=None,
              help="Also write a contact sheet: each shot's keyframe with its palette strip (PNG).")
@click.option("--columns", type=click.IntRange(1, 20), default=4, show_default=True, help="Keyframes per row of --sheet.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the palettes' clustering.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document: fps, frames, shots with times in seconds.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@handle_errors
def shots(video: str, k: int, sheet: str | None, columns: int, seed: int, as_json: bool, quiet: bool) -> None:
    """Split VIDEO into shots (cuts, fades, dissolves), each with its keyframe time and palette."""
    quiet_video_decoder()
    from cbir.films.filmstrips import timestamp
    from cbir.films.stills import film_shots

    with _FrameBar("shots", quiet=quiet) as bar:
        found = film_shots(video, palette_k=k, seed=seed, progress=bar)
    if sheet:
        _sheet(found, sheet, columns=columns)
    if as_json:
        emit_json(found.to_dict())
        return
    click.echo(f"{len(found.shots)} shots in {found.frames} frames ({found.info.fps:g} fps)", err=True)
    for i, shot in enumerate(found.shots, 1):
        colors = " ".join(c.hex for c in shot.palette.colors)
        click.echo(f"{i:>4}  {timestamp(found.seconds(shot.start)):>9} - {timestamp(found.seconds(shot.end)):>9}  "
                   f"key {timestamp(found.seconds(shot.keyframe)):>9}  {colors}")


def film_palette_command(source: str, *, k: int, method: str, sort: str, seed: int, out: str | None, barcode: str | None,
                         barcode_color: str, sheet: str | None, frames: int, as_json: bool) -> None:
    """``cbir palette VIDEO|FOLDER``: the palette of sampled frames, and optionally the barcode and the contact sheet."""
    from cbir.films.filmstrips import barcode as draw_barcode
    from cbir.films.filmstrips import frame_color
    from cbir.films.stills import film_palette, film_stills
    from cbir.palette.swatches import palette_strip, save_image

    quiet_video_decoder()
    stills = film_stills(source, n=frames)
    found = film_palette(stills, k=k, method=method, sort=sort, seed=seed)
    note(found.note)
    if out:
        save_image(out, palette_strip(found.rgb, found.proportions, width=800))
        click.echo(f"wrote {out}", err=True)
    if barcode:
        import numpy as np

        colors = np.array([frame_color(f, mode=barcode_color) for f in stills], dtype=np.uint8)
        save_image(barcode, draw_barcode(colors, height=240, column_width=max(1, 800 // len(colors))))
        click.echo(f"wrote {barcode} ({len(colors)} frames)", err=True)
    if sheet:
        _film_sheet(source, sheet, k=min(k, 8), seed=seed)
    document = found.to_dict()
    document["frames_sampled"] = len(stills)
    if as_json:
        emit_json(document)
        return
    click.echo(f"palette of {len(stills)} sampled {'stills' if Path(source).is_dir() else 'frames'}", err=True)
    for color in found.colors:
        click.echo(f"{color.hex}  rgb({color.rgb[0]:3d}, {color.rgb[1]:3d}, {color.rgb[2]:3d})  {color.proportion:7.2%}")


def _film_sheet(source: str, out: str, *, k: int, seed: int) -> None:
    from cbir.films.filmstrips import contact_sheet
    from cbir.films.stills import film_shots, film_stills
    from cbir.palette import extract_palette
    from cbir.palette.swatches import save_image

    if not Path(source).is_dir():
        _sheet(film_shots(source, palette_k=k, seed=seed), out, columns=4)
        return
    stills = film_stills(source, n=48, max_side=320)  # a folder of stills: every still is a shot
    palettes = [extract_palette(still, k=k, seed=seed) for still in stills]
    save_image(out, contact_sheet(stills, palettes, columns=4))
    click.echo(f"wrote {out} ({len(stills)} stills)", err=True)


def film_quantize_command(source: str, *, k: int, out: str, per_shot: bool, method: str, seed: int, codec: str | None,
                          quiet: bool) -> None:
    """``cbir quantize VIDEO --out OUT.avi``: every frame posterized with one palette (or one per shot)."""
    from cbir.errors import BadInputError
    from cbir.films.posterize import posterize_video

    if os.path.isdir(source):
        raise BadInputError(f"{source}: a folder; quantize takes one image or one video")
    quiet_video_decoder()
    note("the audio track is not copied")
    with _FrameBar("posterizing", quiet=quiet) as bar:
        result = posterize_video(source, out, k=k, per_shot=per_shot, method=method, seed=seed, codec=codec, progress=bar)
    if not result.lossless:
        note(f"{result.fourcc} is lossy: decoded frames hold more than {k} colors; use .avi or .mkv (FFV1) to keep them exact")
    palettes = f"{len(result.palettes)} per-shot palettes" if per_shot else f"one {len(result.palettes[0])}-color palette"
    click.echo(f"wrote {out}: {result.frames} frames in {result.seconds:.1f} s ({result.frames_per_second:.1f} frames/s), "
               f"{palettes}, {result.fourcc}", err=True)
