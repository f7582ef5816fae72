"""Whole-array EMC operations for any array module (numpy without numba, cupy on a GPU)."""

from __future__ import annotations

from types import ModuleType

import numpy as np

from beamhub.kernels.emc import compress, expand, maximize
from beamhub.kernels.emc.share import Prepared, prepare_share

__all__ = ["ArrayOps"]


class ArrayOps:
    """Whole-array operations for any array module (numpy or cupy).

    Parameters
    ----------
    xp : module
        numpy or cupy; every array passed in belongs to it.
    chunk : int
        Orientations expanded and merged at a time (bounds the temporaries:
        about frames x chunk x 4 bytes each).
    """

    name = "array"
    tile = 1
    threads = 1

    def __init__(self, xp: ModuleType = np, chunk: int = 256):
        self.xp = xp
        self.chunk = max(1, int(chunk))

    def prepare(self, detector, frames, rot, log_weights, weights, rank=0, size=1) -> Prepared:
        """This rank's share (see :class:`Prepared`); sparse matrices moved to ``xp``."""
        prep = prepare_share(self.xp, self.tile, detector, frames, rot, log_weights, weights, rank, size)
        counts_t = prep.counts.T.tocsr()
        counts_t.sort_indices()
        if self.xp is not np:
            import cupyx.scipy.sparse as csp  # noqa: PLC0415  (optional: only with cupy)

            prep.lik, prep.counts, counts_t = (csp.csr_matrix(m) for m in (prep.lik, prep.counts, counts_t))
        prep.extra["counts_t"] = counts_t
        prep.extra["good_cols"] = self.xp.asarray(np.flatnonzero(detector.good))
        return prep

    # ---------------------------------------------------------------- layout
    def to_layout(self, dense, fill: float = 0.0):
        """(nd, n) float32 probabilities or log-likelihoods in this set's layout (the same; no padding to ``fill``)."""
        return self.xp.ascontiguousarray(self.xp.asarray(dense, dtype=self.xp.float32))

    def from_layout(self, L, n: int):
        """The first ``n`` orientations of ``L`` as an (nd, n) array."""
        return L[:, :n]

    # ---------------------------------------------------------------- expand + maximize
    def slice_model(self, model, rot, q, center: int, good=None):
        """Model values at the rotated pixels: slices (nr, npix) float64 and their sums (nr,) over ``good``."""
        return expand.slice_model(model, rot, q, center, good)

    def likelihood(self, model, prep: Prepared, out=None):
        """``L`` (nd, n) float32 = bias + K log W, and ``sums`` (n,) float64 = Σ_t W over good pixels.

        ``out``: an ``L`` of an earlier call to overwrite.
        """
        xp = self.xp
        n = len(prep.rot)
        nd = prep.lik.shape[0]
        L = out if out is not None and out.shape == (nd, n) else xp.empty((nd, n), dtype=xp.float32)
        sums = xp.empty(n, dtype=xp.float64)
        for a in range(0, n, self.chunk):
            b = min(n, a + self.chunk)
            slices, sums[a:b] = expand.slice_model(model, prep.rot[a:b], prep.q, prep.center, prep.good)
            logw = expand.log_slices(slices, prep.extra["good_cols"])
            L[:, a:b] = maximize.photon_log_term(prep.lik, logw, bias=prep.bias[a:b])
        return L, sums

    def prob_shift(self, L, num_valid: int, phi, sums):
        """In place ``L -= φ_d Σ_t W_r``; each frame's maximum (nd,) and its first column, over ``num_valid``."""
        return maximize.shift_rows(L, phi, sums, num_valid)

    def prob_exp(self, L, top, beta):
        """In place ``L <- x = β (L − top)``; returns ``Σ e`` and ``Σ e v`` per frame (e = exp x)."""
        return maximize.exp_rows(L, top, beta)

    def prob_norm(self, L, tot, logw, sums, frame_scale):
        """In place ``L <- P`` (0 at or below the floor); mutual information, expected photons, den."""
        return maximize.norm_rows(L, tot, logw, sums, frame_scale)

    # ---------------------------------------------------------------- compress
    def merge(self, P, prep: Prepared, den):
        """Σ over this rank's orientations of the splatted ``Σ_d P K / den_r / corr_t`` (s, s, s) float64."""
        xp = self.xp
        acc = xp.zeros((1,) + (prep.size,) * 3)
        n = prep.count
        for a in range(0, n, self.chunk):
            b = min(n, a + self.chunk)
            ok = den[a:b] > 0
            if not bool(ok.any()):
                continue
            num = compress.photon_sums(prep.extra["counts_t"], P[:, a:b])
            compress.merge_values(acc, num, den[a:b], prep.corr, ok, prep.rot[a:b], prep.q, prep.center)
        return acc[0]

    def merge_weights(self, rot, q, center: int, size: int):
        """Interpolation weight (s, s, s) float64 of every voxel with all of ``rot`` merged."""
        return compress.merge_weights(rot, q, center, size, chunk=self.chunk)
