"""The read path: query -> candidates -> exact ranking; the HTTP API and web page."""

from search.searcher import Result, Searcher

__all__ = ["Result", "Searcher"]
