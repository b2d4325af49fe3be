"""The ``cbir`` command: a thin shell over the library (parse, call one library function, print).

One module per command group, each over :mod:`cbir.cli.common` (errors, options, output):
``index``, ``search``, ``info``, ``serve``, ``palette`` (palette, quantize, plot-pixels),
``films`` (shots, and the video branches of palette and quantize), ``evaluate`` (evaluate,
make-benchmark), ``datasets``, ``duplicates``. This package is the composition root: the
commands import ``indexer`` and ``search`` when they run; nothing in the library imports it.
"""

from __future__ import annotations

import click

from cbir.cli import datasets, duplicates, evaluate, films, index, info, palette, search, serve
from cbir.cli.common import Commands


@click.group(cls=Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cbir")
def main() -> None:
    """Content-based image search by color."""


for command in (
    index.index, search.search, info.info, serve.serve,
    palette.palette, palette.quantize, palette.plot_pixels,
    evaluate.evaluate, evaluate.make_benchmark,
    datasets.datasets, duplicates.duplicates, films.shots,
):
    main.add_command(command)
del command

__all__ = ["main"]
