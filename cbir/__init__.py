"""cbir: content-based image retrieval by color.

The core: what a histogram is (:mod:`cbir.codebook`, :mod:`cbir.color`,
:mod:`cbir.histogram`, :mod:`cbir.descriptor`), how two are compared
(:mod:`cbir.distances`, :mod:`cbir.embedding`) and where they are kept
(:mod:`cbir.store`, :mod:`cbir.vectors`). The write path is the ``indexer``
package, the read path the ``search`` package; :mod:`cbir.cli` composes them.
"""

__version__ = "0.1.0"
