"""Benchmark datasets on disk: file names (or a CSV) -> (path, group, is_query) under a protocol.

Protocols
---------
``classes``   one sub-folder per class (images may be nested below it); every image is a query.
``wang``      a flat folder of ``N.jpg`` (Wang / SIMPLIcity / Corel-1k); class = N // 100; every image a query.
``holidays``  INRIA Holidays: ``NNNNNN.jpg`` or ``.png``; group = id // 100; the queries are the ids with
              id % 100 == 0.
``ukbench``   UKBench: ``ukbenchNNNNN.jpg``; group = id // 4; every image a query; the N-S score applies.
``csv:FILE``  a CSV with a header naming the columns ``path`` and ``group`` and optionally ``is_query``
              (1/0, true/false, yes/no); paths relative to the dataset folder or absolute. Images in the
              folder that the CSV does not list stay in the collection as distractors.

Paths are absolute and spelled as the indexer stores them (the folder resolved, then joined with the
names found under it), so they can be matched with search results.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cbir.errors import BadInputError
from cbir.evaluation.protocol import Item
from cbir.images import IMAGE_EXTENSIONS, is_image_path

PROTOCOLS = ("classes", "wang", "holidays", "ukbench", "csv:FILE")
#: Offending names quoted in an error message.
_SHOWN = 5


@dataclass(frozen=True)
class Benchmark:
    """A dataset read under a protocol."""

    root: str
    protocol: str
    items: list[Item]
    with_ns: bool = False

    @property
    def n_queries(self) -> int:
        return sum(1 for item in self.items if item.is_query)

    @property
    def n_groups(self) -> int:
        return len({item.group for item in self.items})


def image_files(folder: str | os.PathLike[str]) -> tuple[Path, list[str]]:
    """The resolved folder and every image file under it (absolute paths, sorted).

    Raises
    ------
    BadInputError
        If ``folder`` is not a folder or holds no image files.
    """
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise BadInputError(f"{folder}: not a folder")
    root = root.resolve()
    found: list[str] = []
    seen: set[tuple[int, int]] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        info = os.stat(dirpath)
        if (info.st_dev, info.st_ino) in seen:
            dirnames[:] = []
            continue
        seen.add((info.st_dev, info.st_ino))
        found.extend(os.path.join(dirpath, name) for name in filenames if is_image_path(name))
    if not found:
        raise BadInputError(f"{folder}: no image files found (looked for {', '.join(sorted(IMAGE_EXTENSIONS))})")
    return root, sorted(found)


def _offending(root: Path, bad: list[str], protocol: str, expected: str) -> BadInputError:
    names = ", ".join(os.path.relpath(path, root) for path in bad[:_SHOWN])
    more = f" and {len(bad) - _SHOWN} more" if len(bad) > _SHOWN else ""
    return BadInputError(
        f"{len(bad)} file(s) in {root} do not fit the {protocol} protocol (expected {expected}): {names}{more}"
    )


def _by_name(
    root: Path, paths: list[str], protocol: str, pattern: str, expected: str, parse: Callable[[int], tuple[int, bool]]
) -> list[Item]:
    regex = re.compile(pattern, re.IGNORECASE)
    items: list[Item] = []
    bad: list[str] = []
    for path in paths:
        match = regex.fullmatch(os.path.relpath(path, root))
        if match is None:
            bad.append(path)
            continue
        group, is_query = parse(int(match.group(1)))
        items.append(Item(path, group, is_query))
    if bad:
        raise _offending(root, bad, protocol, expected)
    return items


def _classes(root: Path, paths: list[str]) -> list[Item]:
    bad = [p for p in paths if len(Path(os.path.relpath(p, root)).parts) < 2]
    if bad:
        raise _offending(root, bad, "classes", "CLASS/IMAGE, one sub-folder per class")
    return [Item(p, Path(os.path.relpath(p, root)).parts[0], True) for p in paths]


_TRUE = {"1", "true", "yes", "y", "t"}
_FALSE = {"0", "false", "no", "n", "f", ""}


def _from_csv(root: Path, paths: list[str], csv_file: str) -> list[Item]:
    source = Path(csv_file).expanduser()
    if not source.is_file():
        raise BadInputError(f"--protocol csv:{csv_file}: no such file")
    try:
        with open(source, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            columns = [c.strip() for c in reader.fieldnames or []]
            rows = [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise BadInputError(f"{source}: cannot read the CSV ({exc})") from None
    if "path" not in columns or "group" not in columns:
        raise BadInputError(f"{source}: the header must name the columns path and group (found {', '.join(columns) or 'none'})")
    on_disk = set(paths)
    items: list[Item] = []
    missing: list[str] = []
    bad_flags: list[str] = []
    listed: set[str] = set()
    for line, row in enumerate(rows, start=2):
        name = row.get("path", "")
        if not name:
            bad_flags.append(f"line {line}: empty path")
            continue
        path = name if os.path.isabs(name) else os.path.join(root, name)
        path = os.path.normpath(path)
        if path not in on_disk:
            missing.append(name)
            continue
        if path in listed:
            bad_flags.append(f"line {line}: {name} listed twice")
            continue
        listed.add(path)
        flag = row.get("is_query", "1" if "is_query" not in columns else "").lower()
        if flag not in _TRUE and flag not in _FALSE:
            bad_flags.append(f"line {line}: is_query={row.get('is_query')!r}")
            continue
        group = row.get("group", "")
        if not group:
            bad_flags.append(f"line {line}: empty group")
            continue
        items.append(Item(path, group, flag in _TRUE))
    if missing:
        more = f" and {len(missing) - _SHOWN} more" if len(missing) > _SHOWN else ""
        raise BadInputError(
            f"{source}: {len(missing)} listed image(s) are not image files under {root}: "
            f"{', '.join(missing[:_SHOWN])}{more}"
        )
    if bad_flags:
        raise BadInputError(f"{source}: bad rows: {'; '.join(bad_flags[:_SHOWN])}")
    if not items:
        raise BadInputError(f"{source}: lists no images")
    # Unlisted images stay in the collection as distractors (never relevant, never queries).
    items.extend(Item(p, ("unlisted", p), False) for p in paths if p not in listed)
    return items


def load_benchmark(folder: str | os.PathLike[str], protocol: str) -> Benchmark:
    """Read a dataset folder under a protocol (see the module docstring).

    Parameters
    ----------
    folder : path
        The dataset folder.
    protocol : str
        ``classes``, ``wang``, ``holidays``, ``ukbench`` or ``csv:FILE``.

    Returns
    -------
    Benchmark

    Raises
    ------
    BadInputError
        For an unknown protocol, a missing or empty folder, file names that do not fit the
        protocol (a few are named), or a CSV that is missing, malformed or lists absent files.
    """
    if not (protocol in PROTOCOLS[:4] or protocol.startswith("csv:")):
        raise BadInputError(f"unknown protocol {protocol!r}; choose from {', '.join(PROTOCOLS)}")
    root, paths = image_files(folder)
    with_ns = False
    if protocol == "classes":
        items = _classes(root, paths)
    elif protocol == "wang":
        items = _by_name(root, paths, "wang", r"(\d+)\.jpe?g", "N.jpg in one flat folder", lambda n: (n // 100, True))
    elif protocol == "holidays":
        items = _by_name(
            root, paths, "holidays", r"(\d{6})\.(?:jpe?g|png)", "NNNNNN.jpg or NNNNNN.png",
            lambda n: (n // 100, n % 100 == 0),
        )
    elif protocol == "ukbench":
        items = _by_name(root, paths, "ukbench", r"ukbench(\d{5})\.(?:jpe?g|png)", "ukbenchNNNNN.jpg", lambda n: (n // 4, True))
        with_ns = True
    else:
        items = _from_csv(root, paths, protocol.removeprefix("csv:"))
    if not any(item.is_query for item in items):
        raise BadInputError(f"{folder}: the {protocol} protocol finds no query images")
    return Benchmark(str(root), protocol.split(":", 1)[0] if protocol.startswith("csv:") else protocol, items, with_ns)
