"""k-means for the color codebook: FAISS's Lloyd iterations, deterministic, knowing nothing of the store."""

from __future__ import annotations

import faiss
import numpy as np


def kmeans(points: np.ndarray, k: int, *, seed: int, iterations: int, points_per_center: int) -> np.ndarray:
    """k-means (Lloyd) centers of ``points`` (n, d) with FAISS, float32 (k, d), one thread, deterministic.

    FAISS starts from k points drawn with ``seed`` and iterates over at most
    ``k * points_per_center`` of the points (drawn with the seed too). It imports in a
    tenth of a second where scikit-learn's clustering takes a whole one, which counts in
    every ``cbir index`` run.
    """
    points = np.ascontiguousarray(points, dtype=np.float32)
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)  # deterministic sums, and no OpenMP threads left spinning beside the workers
    try:
        clustering = faiss.Kmeans(
            points.shape[1], k, niter=iterations, seed=seed, max_points_per_centroid=points_per_center,
            min_points_per_centroid=1, verbose=False,
        )
        clustering.train(points)
    finally:
        faiss.omp_set_num_threads(before)
    return np.asarray(clustering.centroids, dtype=np.float32)
