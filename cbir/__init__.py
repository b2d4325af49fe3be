"""cbir: content-based image retrieval by color.

The core: what a histogram is (:mod:`cbir.codebook`, :mod:`cbir.color`,
:mod:`cbir.histogram`, :mod:`cbir.descriptor`), how two are compared
(:mod:`cbir.distances`, :mod:`cbir.embedding`) and where they are kept
(:mod:`cbir.store`, :mod:`cbir.vectors`). The write path is the ``indexer``
package, the read path the ``search`` package; :mod:`cbir.cli` composes them.
Beside the core, one sub-package per concern uses it (and never the other way):
:mod:`cbir.palette` (dominant colors and their pictures), :mod:`cbir.evaluation`
(retrieval accuracy on benchmarks) and :mod:`cbir.films` (videos, shots, film
palettes); :mod:`cbir.fetch` downloads the standard benchmark sets.
"""

__version__ = "0.1.0"
