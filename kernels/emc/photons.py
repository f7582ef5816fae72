"""Photon frames as sparse matrices over the detector's used pixels, with per-frame totals."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.special import gammaln

from beamhub.kernels.emc.detector import Detector
from beamhub.kernels.io.dragonfly import SparsePhotons

__all__ = ["Frames"]


@dataclass
class Frames:
    """A set of frames ready for EMC.

    Attributes
    ----------
    counts : scipy.sparse.csr_matrix, shape (num_data, n_used), float32
        Photon counts on the detector's used pixels (mask < 2), merged into the model.
    good_counts : scipy.sparse.csr_matrix, shape (num_data, n_used), float32
        The same restricted to mask-0 pixels, used for the likelihood.
    count : ndarray, shape (num_data,), float64
        Photons per frame on mask-0 pixels (``count_d``).
    sum_log_fact : ndarray, shape (num_data,), float64
        ``Σ log K!`` over mask-0 pixels of each frame.
    index : ndarray, shape (num_data,), int64
        Frame numbers in the photons file(s).
    """

    counts: sp.csr_matrix
    good_counts: sp.csr_matrix
    count: np.ndarray
    sum_log_fact: np.ndarray
    index: np.ndarray

    @property
    def num_data(self) -> int:
        """Number of frames."""
        return self.counts.shape[0]

    @classmethod
    def from_photons(cls, photons: SparsePhotons, detector: Detector, keep: np.ndarray | None = None) -> Frames:
        """Build the matrices from sparse photons; ``keep`` selects frames (bool or indices)."""
        nd = photons.num_data
        rows = np.concatenate([np.repeat(np.arange(nd), photons.ones), np.repeat(np.arange(nd), photons.multi)])
        cols = np.concatenate([photons.place_ones, photons.place_multi]).astype(np.int64)
        vals = np.concatenate([np.ones(len(photons.place_ones), np.float32), photons.count_multi.astype(np.float32)])
        remap = np.full(photons.num_pix, -1, dtype=np.int64)
        used = detector.used_index[detector.used_index < photons.num_pix]
        remap[used] = np.arange(len(used))
        new_cols = remap[cols]
        ok = new_cols >= 0
        mat = sp.csr_matrix(
            (vals[ok], (rows[ok], new_cols[ok])), shape=(nd, len(detector.used_index)), dtype=np.float32
        )
        mat.sum_duplicates()
        mat.sort_indices()
        index = np.arange(nd)
        if keep is not None:
            keep = np.asarray(keep)
            index = np.flatnonzero(keep) if keep.dtype == bool else keep.astype(np.int64)
            mat = mat[index]
        return cls.from_matrix(mat, detector.good, index)

    @classmethod
    def from_matrix(cls, counts: sp.csr_matrix, good: np.ndarray, index: np.ndarray) -> Frames:
        """Frames from a counts matrix over used pixels and the mask-0 selector of its columns."""
        counts = sp.csr_matrix(counts, dtype=np.float32)
        good_counts = counts @ sp.diags(good.astype(np.float32))
        good_counts = sp.csr_matrix(good_counts, dtype=np.float32)
        good_counts.eliminate_zeros()
        return cls(
            counts=counts,
            good_counts=good_counts,
            count=np.asarray(good_counts.sum(axis=1), dtype=np.float64).ravel(),
            sum_log_fact=_row_sum_log_fact(good_counts),
            index=np.asarray(index, dtype=np.int64),
        )

    def subset(self, rows: np.ndarray) -> Frames:
        """The frames at positions ``rows`` (for splitting across MPI ranks)."""
        rows = np.asarray(rows, dtype=np.int64)
        return Frames(
            counts=self.counts[rows],
            good_counts=self.good_counts[rows],
            count=self.count[rows],
            sum_log_fact=self.sum_log_fact[rows],
            index=self.index[rows],
        )


def _row_sum_log_fact(mat: sp.csr_matrix) -> np.ndarray:
    """``Σ_t log(K_dt!)`` per row, in float64."""
    vals = gammaln(mat.data.astype(np.float64) + 1.0)
    rows = np.repeat(np.arange(mat.shape[0]), np.diff(mat.indptr))
    return np.bincount(rows, weights=vals, minlength=mat.shape[0])
