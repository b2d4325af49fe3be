"""cbir/store/encoding.py histograms_from_bytes: a batch of stored histograms (sparse and dense) decoded into one matrix."""

from __future__ import annotations

import numpy as np
import pytest

from cbir.errors import StoreError
from cbir.store.encoding import histogram_from_bytes, histogram_to_bytes, histograms_from_bytes


def test_a_batch_decodes_as_each_row_does():
    rng = np.random.default_rng(0)
    rows = rng.random((30, 256)).astype(np.float32) * (rng.random((30, 256)) < 0.2)
    rows[3] = 0.0  # an empty histogram
    blobs = [histogram_to_bytes(r) for r in rows] + [np.ascontiguousarray(rows[5], "<f4").tobytes()]  # a dense one
    out = histograms_from_bytes(blobs)
    assert out.dtype == np.float32 and out.shape == (31, 256)
    np.testing.assert_array_equal(out, np.stack([histogram_from_bytes(b) for b in blobs]))
    into = np.zeros((31, 256), np.float32)
    assert histograms_from_bytes(blobs, into) is into
    np.testing.assert_array_equal(into, out)


def test_histograms_of_different_lengths_are_named():
    blobs = [histogram_to_bytes(np.ones(8, np.float32)), histogram_to_bytes(np.ones(16, np.float32))]
    with pytest.raises(StoreError, match=r"stored histograms differ in length \(8 and 16 bins\)"):
        histograms_from_bytes(blobs)
