"""The write path: folder -> changed files -> histograms -> store -> vector index."""

from indexer.sync import IndexReport, index_folder

__all__ = ["IndexReport", "index_folder"]
