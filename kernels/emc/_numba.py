"""numba-compiled, multithreaded loops for the EMC operations (where the C kernels cannot be built).

The loops are compiled on first use and cached on disk by numba (``cache=True``), so a
later process only loads them.  ``locate`` is this language's one trilinear locate step,
inlined into every loop that slices or merges.  The tests check these loops against the
whole-array set (:mod:`~beamhub.kernels.emc._arrays`) and the C kernels.
"""

from __future__ import annotations

import functools
import os
import threading

import numpy as np

from beamhub.kernels.emc.maximize import CUTOFF, PROB_FLOOR
from beamhub.kernels.emc.share import Prepared, prepare_share, threads_per_process

__all__ = ["NumbaOps", "available", "compiled"]

# numba's workqueue pool is not re-entrant; launches from two Python threads would abort.
LAUNCH = threading.Lock()


def available() -> bool:
    """True when numba imports (and ``BEAMHUB_EMC_NUMBA`` is not 0)."""
    if os.environ.get("BEAMHUB_EMC_NUMBA", "1") == "0":
        return False
    try:
        import numba  # noqa: F401, PLC0415  (optional dependency)
    except ImportError:
        return False
    return True


@functools.lru_cache(maxsize=1)
def compiled():
    """Compile (or load from numba's cache) the loops; returns a namespace of functions."""
    import numba  # noqa: PLC0415  (optional dependency)
    from numba import njit, prange  # noqa: PLC0415  (optional dependency)

    numba.set_num_threads(threads_per_process(numba.config.NUMBA_NUM_THREADS))
    opts = dict(parallel=True, fastmath=True, cache=True, nogil=True)

    @njit(inline="always", fastmath=True, cache=True)
    def locate(s, rot, r, q, t, center):
        # lower corner and fractions of M_r q_t + center; ok = False outside [0, s-2]
        x = rot[r, 0, 0] * q[t, 0] + rot[r, 0, 1] * q[t, 1] + rot[r, 0, 2] * q[t, 2] + center
        y = rot[r, 1, 0] * q[t, 0] + rot[r, 1, 1] * q[t, 1] + rot[r, 1, 2] * q[t, 2] + center
        z = rot[r, 2, 0] * q[t, 0] + rot[r, 2, 1] * q[t, 1] + rot[r, 2, 2] * q[t, 2] + center
        ix = int(np.floor(x))
        iy = int(np.floor(y))
        iz = int(np.floor(z))
        ok = not (ix < 0 or iy < 0 or iz < 0 or ix > s - 2 or iy > s - 2 or iz > s - 2)
        return ok, ix, iy, iz, x - ix, y - iy, z - iz

    @njit(inline="always", fastmath=True, cache=True)
    def trilinear(model, ix, iy, iz, fx, fy, fz):
        gx = 1.0 - fx
        gy = 1.0 - fy
        gz = 1.0 - fz
        return gx * (
            gy * (gz * model[ix, iy, iz] + fz * model[ix, iy, iz + 1])
            + fy * (gz * model[ix, iy + 1, iz] + fz * model[ix, iy + 1, iz + 1])
        ) + fx * (
            gy * (gz * model[ix + 1, iy, iz] + fz * model[ix + 1, iy, iz + 1])
            + fy * (gz * model[ix + 1, iy + 1, iz] + fz * model[ix + 1, iy + 1, iz + 1])
        )

    @njit(inline="always", fastmath=True, cache=True)
    def splat(a, ix, iy, iz, fx, fy, fz, v):
        gx = 1.0 - fx
        gy = 1.0 - fy
        gz = 1.0 - fz
        a[ix, iy, iz] += gx * gy * gz * v
        a[ix, iy, iz + 1] += gx * gy * fz * v
        a[ix, iy + 1, iz] += gx * fy * gz * v
        a[ix, iy + 1, iz + 1] += gx * fy * fz * v
        a[ix + 1, iy, iz] += fx * gy * gz * v
        a[ix + 1, iy, iz + 1] += fx * gy * fz * v
        a[ix + 1, iy + 1, iz] += fx * fy * gz * v
        a[ix + 1, iy + 1, iz + 1] += fx * fy * fz * v

    @njit(**opts)
    def slice_model(model, rot, q, center, good, out, sum_good):
        # out[r, t]: trilinear model value at M_r q_t + center (0 outside); sum over good pixels
        s = model.shape[0]
        for r in prange(rot.shape[0]):
            acc = 0.0
            for t in range(q.shape[0]):
                ok, ix, iy, iz, fx, fy, fz = locate(s, rot, r, q, t, center)
                v = trilinear(model, ix, iy, iz, fx, fy, fz) if ok else 0.0
                out[r, t] = v
                if good[t]:
                    acc += v
            sum_good[r] = acc

    @njit(**opts)
    def expand_log(model, rot, q, center, good_pos, out, sum_good):
        # out[good_pos[t], r] = log W_rt (0 where W <= 0 or outside); sum_good[r] = Σ_good W_rt
        s = model.shape[0]
        for r in prange(rot.shape[0]):
            acc = 0.0
            for t in range(q.shape[0]):
                k = good_pos[t]
                if k < 0:
                    continue
                ok, ix, iy, iz, fx, fy, fz = locate(s, rot, r, q, t, center)
                v = trilinear(model, ix, iy, iz, fx, fy, fz) if ok else 0.0
                acc += v
                out[k, r] = np.log(v) if v > 0.0 else 0.0
            sum_good[r] = acc

    @njit(**opts)
    def csr_times_dense(indptr, indices, data, dense, bias, out, col0):
        # out[d, col0:col0+n] = bias + Σ_j data[j] · dense[indices[j], :]  (photons x log-model)
        ncol = dense.shape[1]
        for d in prange(out.shape[0]):
            row = out[d, col0 : col0 + ncol]
            for c in range(ncol):
                row[c] = bias[c]
            for j in range(indptr[d], indptr[d + 1]):
                a = data[j]
                src = dense[indices[j]]
                for c in range(ncol):
                    row[c] += a * src[c]

    @njit(**opts)
    def prob_shift(L, nvalid, phi, sums, top, arg):
        # v = L - φ_d sums_r (double, rounded once); top / first argmax over the valid columns
        for d in prange(L.shape[0]):
            best = -np.inf
            at = 0
            for r in range(L.shape[1]):
                v = np.float32(L[d, r] - phi[d] * sums[r])
                L[d, r] = v
                if r < nvalid and v > best:
                    best = v
                    at = r
            top[d] = best
            arg[d] = at

    @njit(**opts)
    def prob_exp(L, top, beta, cutoff, tot, sum_ev):
        # x = β (v - top) stored; Σ e and Σ e v with e = exp(x) (0 at or below -cutoff)
        for d in prange(L.shape[0]):
            b = np.float32(beta[d])
            t = np.float32(top[d])
            se = 0.0
            sv = 0.0
            for r in range(L.shape[1]):
                v = L[d, r]
                x = (v - t) * b
                e = np.exp(x) if x > -cutoff else np.float32(0.0)
                se += e
                sv += e * v
                L[d, r] = x
            tot[d] = se
            sum_ev[d] = sv

    @njit(**opts)
    def prob_norm(L, tot, logw, sums, fscale, cutoff, floor, info, expected, den_parts):
        # P = e / tot; mutual information, expected photons; den_parts[th] += φ_d P (frames
        # split over private copies, no races); stored P is 0 at or below the floor
        nd = L.shape[0]
        nth = den_parts.shape[0]
        for th in prange(nth):
            dp = den_parts[th]
            for d in range(th, nd, nth):
                inv = 1.0 / tot[d]
                ltot = np.log(tot[d])
                fs = fscale[d]
                mi = 0.0
                ex = 0.0
                for r in range(L.shape[1]):
                    x = L[d, r]
                    p = (np.exp(x) if x > -cutoff else 0.0) * inv
                    if p >= floor:
                        mi += p * (x - ltot - logw[r])
                    ex += p * sums[r]
                    dp[r] += fs * p
                    L[d, r] = p if p > floor else 0.0
                info[d] = mi
                expected[d] = ex

    @njit(**opts)
    def copy_block(prob, a, b, out, active):
        # out = prob[:, a:b] (contiguous copy for the merge product); active[d] = any P > 0
        for d in prange(prob.shape[0]):
            any_ = False
            for c in range(b - a):
                p = prob[d, a + c]
                out[d, c] = p
                any_ = any_ or p > 0.0
            active[d] = any_

    @njit(**opts)
    def weighted_photons(indptr, indices, data, prob, out):
        # out[t, :] = Σ_j data_j · P[indices_j, :]  (rows t of the transposed counts)
        ncol = out.shape[1]
        for t in prange(out.shape[0]):
            row = out[t]
            for c in range(ncol):
                row[c] = 0.0
            for j in range(indptr[t], indptr[t + 1]):
                src = prob[indices[j]]
                a = data[j]
                for c in range(ncol):
                    row[c] += a * src[c]

    @njit(**opts)
    def frame_photon_sums(indptr, indices, data, block, active, out):
        # out[th, t, :] = Σ_d K_dt block[d, :] over the active frames, frames split over
        # out.shape[0] private copies (no races); cheap when few frames are probable here
        nth = out.shape[0]
        nc = block.shape[1]
        for th in prange(nth):
            acc = out[th]
            acc[:, :] = 0.0
            for d in range(th, block.shape[0], nth):
                if not active[d]:
                    continue
                pr = block[d]
                for j in range(indptr[d], indptr[d + 1]):
                    row = acc[indices[j]]
                    v = data[j]
                    for c in range(nc):
                        row[c] += v * pr[c]

    @njit(**opts)
    def merge_values(acc, num, den, corr, rot, q, center):
        # acc[th] += splats of num[t, r] / den[r] / corr[t] where num != 0 and den > 0,
        # rotations split over the private copies
        s = acc.shape[1]
        nth = acc.shape[0]
        for th in prange(nth):
            a = acc[th]
            for r in range(th, rot.shape[0], nth):
                if not den[r] > 0.0:
                    continue
                scale = 1.0 / den[r]
                for t in range(q.shape[0]):
                    v = num[t, r]
                    if v == 0.0:
                        continue
                    ok, ix, iy, iz, fx, fy, fz = locate(s, rot, r, q, t, center)
                    if ok:
                        splat(a, ix, iy, iz, fx, fy, fz, v * scale / corr[t])

    @njit(**opts)
    def merge_weights(acc, rot, q, center):
        # acc[th] += trilinear weights of every pixel of every orientation (data-independent)
        s = acc.shape[1]
        nth = acc.shape[0]
        for th in prange(nth):
            a = acc[th]
            for r in range(th, rot.shape[0], nth):
                for t in range(q.shape[0]):
                    ok, ix, iy, iz, fx, fy, fz = locate(s, rot, r, q, t, center)
                    if ok:
                        splat(a, ix, iy, iz, fx, fy, fz, 1.0)

    class NS:
        pass

    ns = NS()
    for fn in (
        slice_model,
        expand_log,
        csr_times_dense,
        prob_shift,
        prob_exp,
        prob_norm,
        copy_block,
        weighted_photons,
        frame_photon_sums,
        merge_values,
        merge_weights,
    ):
        setattr(ns, fn.__name__, fn)
    ns.num_threads = numba.get_num_threads
    return ns


def _c(a, dtype=np.float64):
    return np.ascontiguousarray(a, dtype=dtype)


class NumbaOps:
    """The EMC operations as numba loops on numpy arrays (see :mod:`~beamhub.kernels.emc.ops`).

    Parameters
    ----------
    chunk : int
        Orientations expanded and merged at a time (bounds the temporaries).
    """

    name = "numba"
    tile = 1
    #: Below this fraction of frames with a probable orientation in a chunk, the merge sums
    #: walk only those frames' photons instead of every pixel's.
    sparse_frames = 0.3

    def __init__(self, chunk: int = 256):
        self.chunk = max(1, int(chunk))
        self.fns = compiled()
        self.threads = self.fns.num_threads()

    def prepare(self, detector, frames, rot, log_weights, weights, rank=0, size=1) -> Prepared:
        """This rank's share (see :class:`~beamhub.kernels.emc.share.Prepared`)."""
        prep = prepare_share(np, self.tile, detector, frames, rot, log_weights, weights, rank, size)
        counts_t = prep.counts.T.tocsr()
        counts_t.sort_indices()
        prep.extra["counts_t"] = counts_t
        return prep

    def to_layout(self, dense, fill: float = 0.0):
        """(nd, n) float32 in this set's layout (the same, C-ordered; no padding to ``fill``)."""
        return _c(dense, np.float32)

    def from_layout(self, L, n: int):
        """The first ``n`` orientations of ``L`` as an (nd, n) array."""
        return L[:, :n]

    def slice_model(self, model, rot, q, center: int, good=None):
        """Slices (nr, npix) float64 at the rotated pixels and their sums (nr,) over ``good``."""
        nr, npix = rot.shape[0], q.shape[0]
        good = np.ones(npix, bool) if good is None else _c(good, bool)
        out = np.empty((nr, npix))
        sums = np.empty(nr)
        with LAUNCH:
            self.fns.slice_model(_c(model), _c(rot), _c(q), float(center), good, out, sums)
        return out, sums

    def likelihood(self, model, prep: Prepared, out=None):
        """``L`` (nd, n) float32 = bias + K log W, and ``sums`` (n,) float64 (``out``: an earlier L to reuse)."""
        n = len(prep.rot)
        nd, ngood = prep.lik.shape
        lik = prep.lik
        L = out if out is not None and out.shape == (nd, n) else np.empty((nd, n), dtype=np.float32)
        sums = np.empty(n)
        model = _c(model)
        good_pos = _c(prep.good_pos, np.int64)
        for a in range(0, n, self.chunk):
            b = min(n, a + self.chunk)
            logw = np.empty((ngood, b - a), dtype=np.float32)
            with LAUNCH:
                self.fns.expand_log(model, _c(prep.rot[a:b]), prep.q, float(prep.center), good_pos, logw, sums[a:b])
                self.fns.csr_times_dense(lik.indptr, lik.indices, lik.data, logw, prep.bias[a:b], L, a)
        return L, sums

    def prob_shift(self, L, num_valid: int, phi, sums):
        """Pass 1 (see :func:`~beamhub.kernels.emc.maximize.shift_rows`)."""
        nd = L.shape[0]
        top, arg = np.empty(nd), np.empty(nd, dtype=np.int64)
        with LAUNCH:
            self.fns.prob_shift(L, int(num_valid), _c(phi), _c(sums), top, arg)
        return top, arg

    def prob_exp(self, L, top, beta):
        """Pass 2 (see :func:`~beamhub.kernels.emc.maximize.exp_rows`)."""
        nd = L.shape[0]
        tot, sum_ev = np.empty(nd), np.empty(nd)
        with LAUNCH:
            self.fns.prob_exp(L, _c(top), _c(beta), np.float32(CUTOFF), tot, sum_ev)
        return tot, sum_ev

    def prob_norm(self, L, tot, logw, sums, frame_scale):
        """Pass 3 (see :func:`~beamhub.kernels.emc.maximize.norm_rows`)."""
        nd = L.shape[0]
        info, expected = np.empty(nd), np.empty(nd)
        den = np.zeros((self.threads, L.shape[1]))
        with LAUNCH:
            self.fns.prob_norm(
                L,
                _c(tot),
                _c(logw, np.float32),
                _c(sums, np.float32),
                _c(frame_scale),
                CUTOFF,
                PROB_FLOOR,
                info,
                expected,
                den,
            )
        return info, expected, den.sum(axis=0)

    def merge(self, P, prep: Prepared, den):
        """Σ over this rank's orientations of the splatted ``Σ_d P K / den_r / corr_t`` (s, s, s)."""
        acc = np.zeros((self.threads,) + (prep.size,) * 3)
        counts, counts_t = prep.counts, prep.extra["counts_t"]
        corr = _c(prep.corr)
        for a in range(0, prep.count, self.chunk):
            b = min(prep.count, a + self.chunk)
            dens = _c(den[a:b])
            if not (dens > 0).any():
                continue
            block = np.empty((P.shape[0], b - a), dtype=np.float32)
            active = np.empty(P.shape[0], dtype=np.bool_)
            with LAUNCH:
                self.fns.copy_block(P, a, b, block, active)
            if active.mean() > self.sparse_frames:
                # most frames probable here: pixel-major product, reads only (measured faster)
                num = np.empty((counts_t.shape[0], b - a), dtype=np.float32)
                with LAUNCH:
                    self.fns.weighted_photons(counts_t.indptr, counts_t.indices, counts_t.data, block, num)
            else:
                parts = np.empty((self.threads, counts.shape[1], b - a), dtype=np.float32)
                with LAUNCH:
                    self.fns.frame_photon_sums(counts.indptr, counts.indices, counts.data, block, active, parts)
                num = parts.sum(axis=0)
            with LAUNCH:
                self.fns.merge_values(acc, num, dens, corr, _c(prep.rot[a:b]), prep.q, float(prep.center))
        return acc.sum(axis=0)

    def merge_weights(self, rot, q, center: int, size: int):
        """Interpolation weight (s, s, s) float64 of every voxel with all of ``rot`` merged."""
        acc = np.zeros((self.threads,) + (size,) * 3)
        with LAUNCH:
            self.fns.merge_weights(acc, _c(rot), _c(q), float(center))
        return acc.sum(axis=0)
