"""Query by colors (as in QBIC): a few sRGB colors with weights, checked and parsed.

A color query is a list of ``((r, g, b), weight)`` pairs: at most
:data:`MAX_QUERY_COLORS` colors, 8-bit channels, finite positive weights (they
need not sum to 1; :meth:`cbir.descriptor.Descriptor.of_colors` normalizes them).
On the command line it is written ``"#e0c080:0.6,#3060c0:0.4"``; a color without
``:weight`` weighs 1.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence

from cbir.errors import BadInputError

RGB = tuple[int, int, int]
ColorWeight = tuple[RGB, float]

#: Most colors a query may hold (QBIC's color picker offered a handful).
MAX_QUERY_COLORS = 5

_HEX = re.compile(r"#?([0-9a-fA-F]{6})")


def parse_hex(text: str) -> RGB:
    """Parse ``"#rrggbb"`` (the ``#`` is optional) into an (r, g, b) triple of ints in 0..255.

    Raises
    ------
    BadInputError
        If ``text`` is not six hexadecimal digits.
    """
    match = _HEX.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise BadInputError(f"bad color {text!r}: expected #rrggbb")
    value = int(match.group(1), 16)
    return (value >> 16) & 255, (value >> 8) & 255, value & 255


def to_hex(rgb: Sequence[int]) -> str:
    """``(224, 192, 128)`` -> ``"#e0c080"``."""
    return "#" + "".join(f"{int(c):02x}" for c in rgb)


def check_colors(colors: Iterable[tuple[Sequence[int], float]]) -> list[ColorWeight]:
    """Check a color query and return it as a list of ((r, g, b), weight).

    Parameters
    ----------
    colors : iterable of ((r, g, b), weight)
        Channels are integers in 0..255; weights are finite and > 0.

    Returns
    -------
    list of ((int, int, int), float)

    Raises
    ------
    BadInputError
        If there are no colors, more than :data:`MAX_QUERY_COLORS`, or an item has a
        bad color or weight (the message names the item).
    """
    checked: list[ColorWeight] = []
    for position, item in enumerate(colors, 1):
        try:
            rgb, weight = item
            channels = tuple(rgb)
        except (TypeError, ValueError):
            raise BadInputError(f"color {position}: expected ((r, g, b), weight), got {item!r}") from None
        if len(channels) != 3 or not all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= 255 for c in channels):
            raise BadInputError(f"color {position}: expected three integers in 0..255, got {rgb!r}")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight <= 0:
            raise BadInputError(f"color {position} ({to_hex(channels)}): weight must be a number > 0, got {weight!r}")
        checked.append(((channels[0], channels[1], channels[2]), float(weight)))
    if not checked:
        raise BadInputError("a color query needs at least one color")
    if len(checked) > MAX_QUERY_COLORS:
        raise BadInputError(f"a color query has at most {MAX_QUERY_COLORS} colors, got {len(checked)}")
    return checked


def parse_colors(text: str) -> list[ColorWeight]:
    """Parse ``"#e0c080:0.6,#3060c0:0.4"`` into a checked color query.

    A color without ``:weight`` weighs 1. See :func:`check_colors`.

    Raises
    ------
    BadInputError
        Naming the bad item: bad hex, a weight that is not a number > 0, an empty
        query or more than :data:`MAX_QUERY_COLORS` colors.
    """
    items = [item.strip() for item in text.split(",")] if text.strip() else []
    colors: list[ColorWeight] = []
    for item in items:
        color, sep, weight_text = item.partition(":")
        try:
            rgb = parse_hex(color)
        except BadInputError:
            raise BadInputError(f"bad color {color.strip()!r} in {item!r}: expected #rrggbb[:weight]") from None
        try:
            weight = float(weight_text) if sep else 1.0
        except ValueError:
            raise BadInputError(f"bad weight {weight_text!r} in {item!r}: expected a number > 0") from None
        if not math.isfinite(weight) or weight <= 0:
            raise BadInputError(f"bad weight {weight_text!r} in {item!r}: expected a number > 0")
        colors.append((rgb, weight))
    return check_colors(colors)


def format_colors(colors: Iterable[ColorWeight]) -> str:
    """The canonical text of a color query, e.g. ``"#e0c080:0.6,#3060c0:0.4"``."""
    return ",".join(f"{to_hex(rgb)}:{weight:g}" for rgb, weight in colors)
