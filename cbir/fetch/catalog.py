"""The standard benchmark sets cbir knows how to fetch, and where fetched sets live.

A set is described by a :class:`DatasetSpec`: its archives (URL, file name, published
checksum if any), which archive members are its images and the flat names they get, the
image count to expect, and the protocol of :mod:`cbir.evaluation.benchmarks` that reads it.

Where sets live, in this order (the first that applies):

1. ``$CBIR_DATASETS/NAME`` when the variable is set (an explicit choice wins over a guess);
2. ``./datasets/NAME`` when the current folder is inside a cbir checkout (a folder with
   ``pyproject.toml`` naming ``cbir`` and a ``datasets/`` folder);
3. ``DATA/cbir/datasets/NAME`` in the per-user data folder (``~/.local/share`` on Linux).

A fetched set is a folder holding its images and ``MANIFEST`` (JSON): what was fetched,
from where, the archives' SHA-256 and the image count.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cbir.errors import BadInputError

#: The manifest written beside a fetched set's images.
MANIFEST = "cbir-dataset.json"
ENV_DIR = "CBIR_DATASETS"
_MB = 1 << 20


@dataclass(frozen=True)
class Archive:
    """One file to download.

    ``sha256`` is a checksum published by the set's authors (checked when known); ``None``
    when none is published, in which case the digest of what was fetched is recorded and shown.
    """

    url: str
    filename: str
    sha256: str | None = None


@dataclass(frozen=True)
class DatasetSpec:
    """A standard set: where it comes from, what it holds, how to lay it out and read it."""

    name: str
    title: str
    images: int | None  # None: depends on the build (skimage-dup)
    archive_size: str
    archives: tuple[Archive, ...]
    #: Archive members that are images of the set: the regex's group 1 is the flat file name.
    member_pattern: str
    protocol: str
    licence: str
    page: str
    #: How the URL was confirmed (shown by ``cbir datasets list``).
    source_note: str
    #: Refuse to unpack more than this many bytes (a zip bomb stops here).
    max_unpacked: int = 0
    built_locally: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def source(self) -> str:
        return " + ".join(a.url for a in self.archives) if self.archives else "built locally"


DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            name="wang",
            title="Wang / SIMPLIcity / Corel-1k: 10 classes of 100 photos",
            images=1000,
            archive_size="about 30 MB (1,000 JPEGs of 384x256)",
            archives=(Archive("http://wang.ist.psu.edu/~jwang/test1.tar", "test1.tar"),),
            member_pattern=r"image\.orig/(\d{1,3}\.jpg)",
            protocol="wang",
            licence="Corel photos distributed by J. Z. Wang's lab for research; cite Wang, Li and Wiederhold, "
                    "SIMPLIcity (TPAMI 2001)",
            page="http://wang.ist.psu.edu/docs/related/",
            source_note="URL not read from the lab's own page here (unreachable offline); it is the one "
                        "published CBIR codes and papers cite for Corel-1k; no checksum is published",
            max_unpacked=200 * _MB,
        ),
        DatasetSpec(
            name="holidays",
            title="INRIA Holidays: 500 scenes, 1,491 photos, 500 queries",
            images=1491,
            archive_size="two .tar.gz parts (total size not confirmed here)",
            archives=(
                Archive("ftp://ftp.inrialpes.fr/pub/lear/douze/data/jpg1.tar.gz", "jpg1.tar.gz"),
                Archive("ftp://ftp.inrialpes.fr/pub/lear/douze/data/jpg2.tar.gz", "jpg2.tar.gz"),
            ),
            member_pattern=r"jpg/(\d{6}\.jpg)",
            protocol="holidays",
            licence="INRIA holds the copyright; research use, cite Jegou, Douze and Schmid (ECCV 2008)",
            page="https://lear.inrialpes.fr/people/jegou/data.php",
            source_note="the FTP URLs public codes citing INRIA's Holidays page download (both parts unpack "
                        "to jpg/NNNNNN.jpg); not downloaded here; no checksum is published",
            max_unpacked=8 * 1024 * _MB,
        ),
        DatasetSpec(
            name="ukbench",
            title="UKBench (Nister & Stewenius): 2,550 objects x 4 photos",
            images=10200,
            archive_size="almost 2 GB (the dataset page's figure)",
            archives=(Archive("https://archive.org/download/ukbench/ukbench.zip", "ukbench.zip"),),
            member_pattern=r"full/(ukbench\d{5}\.jpg)",
            protocol="ukbench",
            licence="research use; cite Nister and Stewenius, 'Scalable recognition with a vocabulary tree' (CVPR 2006)",
            page="http://vis.uky.edu/~stewe/ukbench/",
            source_note="the Internet Archive's copy of the 'Zipped File' on the Kentucky page, as public code "
                        "uses it (it holds full/ukbenchNNNNN.jpg); not downloaded here; no checksum is published",
            max_unpacked=6 * 1024 * _MB,
        ),
        DatasetSpec(
            name="skimage-dup",
            title="near-duplicates of scikit-image's sample images (cbir make-benchmark, 6 copies, seed 0)",
            images=None,
            archive_size="none (about 10 MB built)",
            archives=(),
            member_pattern="",
            protocol="csv:groundtruth.csv",
            licence="scikit-image's sample images (BSD-3 and public-domain sources)",
            page="https://scikit-image.org/docs/stable/api/skimage.data.html",
            source_note="built on this machine from the installed scikit-image; needs: pip install scikit-image",
            built_locally=True,
        ),
    )
}


def dataset_spec(name: str) -> DatasetSpec:
    """The spec of a known set.

    Raises
    ------
    BadInputError
        If ``name`` is not a known set (the known ones are listed).
    """
    try:
        return DATASETS[name]
    except KeyError:
        raise BadInputError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}") from None


def checkout_root(start: str | os.PathLike[str] | None = None) -> Path | None:
    """The cbir checkout holding ``start`` (default: the current folder), or None."""
    here = Path(start if start is not None else os.getcwd()).resolve()
    for folder in (here, *here.parents):
        project = folder / "pyproject.toml"
        if project.is_file() and (folder / "datasets").is_dir():
            try:
                text = project.read_text(encoding="utf-8")
            except OSError:
                continue
            if re.search(r'^name\s*=\s*"cbir"\s*$', text, re.MULTILINE):
                return folder
    return None


def _user_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("cbir", appauthor=False)) / "datasets"


def search_dirs() -> list[Path]:
    """Folders that may hold fetched sets, first choice first (see the module docstring)."""
    dirs = []
    if os.environ.get(ENV_DIR):
        dirs.append(Path(os.environ[ENV_DIR]).expanduser())
    root = checkout_root()
    if root is not None:
        dirs.append(root / "datasets")
    dirs.append(_user_dir())
    return dirs


def default_dir(name: str) -> Path:
    """Where ``cbir datasets fetch NAME`` puts a set when no ``--dir`` is given."""
    return search_dirs()[0] / name


def read_manifest(folder: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The manifest of a fetched set in ``folder``, or None when there is none (or it is unreadable)."""
    try:
        with open(Path(folder) / MANIFEST, encoding="utf-8") as handle:
            document = json.load(handle)
    except (OSError, ValueError):
        return None
    return document if isinstance(document, dict) else None


def find_dataset(name: str) -> Path | None:
    """The folder of a fetched set called ``name`` (first in :func:`search_dirs`), or None."""
    for folder in search_dirs():
        manifest = read_manifest(folder / name)
        if manifest is not None and manifest.get("name") == name:
            return (folder / name).resolve()
    return None


def protocol_of(folder: str | os.PathLike[str], manifest: dict[str, Any]) -> str:
    """The protocol to read a fetched set with (a ``csv:`` file made absolute)."""
    protocol = str(manifest.get("protocol", "classes"))
    if protocol.startswith("csv:") and not os.path.isabs(protocol[4:]):
        protocol = "csv:" + str(Path(folder) / protocol[4:])
    return protocol


def resolve_dataset(dataset: str, protocol: str | None) -> tuple[str, str]:
    """``cbir evaluate``'s DATASET argument: a folder (as before) or the name of a fetched set.

    Returns the folder and the protocol (``protocol`` if given, else the set's own, else ``classes``).

    Raises
    ------
    BadInputError
        If ``dataset`` names a known set that is not fetched yet (with the command that fetches it).
    """
    if os.path.exists(os.path.expanduser(dataset)) or dataset not in DATASETS:
        manifest = read_manifest(os.path.expanduser(dataset)) if protocol is None else None
        if manifest is not None:  # the folder of a fetched set, given as a path
            return dataset, protocol_of(os.path.expanduser(dataset), manifest)
        return dataset, protocol or "classes"
    folder = find_dataset(dataset)
    if folder is None:
        raise BadInputError(f"dataset {dataset!r} is not fetched yet; run: cbir datasets fetch {dataset}")
    manifest = read_manifest(folder) or {}
    return str(folder), protocol or protocol_of(folder, manifest)
