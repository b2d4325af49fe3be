"""What a ranking is: ranked results, and the order they come in (distance, then id, so ties never move)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Result:
    """One ranked image."""

    rank: int
    id: int
    path: str
    distance: float

    def to_dict(self) -> dict:
        return {"rank": self.rank, "path": self.path, "distance": self.distance, "id": self.id}


def rank_order(ids: np.ndarray, distances: np.ndarray, k: int) -> np.ndarray:
    """Positions of the k smallest distances, ties broken by id."""
    return np.lexsort((ids, distances))[:k]
