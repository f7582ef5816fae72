"""numba loop for find_center: the entropy of a slice's histogram inside a mask, in one pass.

A private sibling of :mod:`beamhub.kernels.tomo.center`.  ``np.histogram``
over the masked pixels of a 2048^2 slice costs ~30 ms plus a gather copy; the
entropy search evaluates ~30 slices, so this single pass (no copy, no sort)
keeps the histograms out of the search's time.
"""

from __future__ import annotations

import functools

import numpy as np

from beamhub.kernels import backend


@functools.lru_cache(maxsize=1)
def compiled():
    """``masked_histogram`` compiled with numba; raises ImportError where numba is missing."""

    options = {"nogil": True, "fastmath": False, "boundscheck": False}
    jit = backend.numba_jit(**options)

    @jit
    def masked_histogram(image, index, lo, hi, bins):
        """Counts of ``image.flat[index]`` in ``bins`` equal bins over [lo, hi] (as np.histogram).

        Values outside [lo, hi] are not counted; ``hi`` itself falls in the last bin.
        """
        counts = np.zeros(bins, np.int64)
        width = (hi - lo) / bins
        if not width > 0:
            return counts
        for i in index:
            v = np.float64(image[i])
            if v >= lo and v <= hi:
                b = int((v - lo) / width)
                if b >= bins:
                    b = bins - 1
                counts[b] += 1
        return counts

    return masked_histogram


def masked_histogram(image: np.ndarray, index: np.ndarray, lo: float, hi: float, bins: int) -> np.ndarray:
    """Histogram counts (int64, ``bins``) of the flat ``image`` at ``index``; numba or numpy."""
    flat = np.ascontiguousarray(image).reshape(-1)
    if not hi > lo:  # np.histogram would widen an empty range by +-0.5; count nothing instead
        return np.zeros(int(bins), dtype=np.int64)
    try:
        kernel = compiled()
    except ImportError:
        return np.histogram(flat[index], bins=bins, range=(lo, hi))[0]
    return kernel(flat, index, float(lo), float(hi), int(bins))
