"""numba-compiled, multithreaded loops for the CPU hot spots of EMC (used when numba imports).

Each loop has a plain whole-array twin in expand.py / maximize.py / compress.py that
works on numpy or cupy arrays; the tests check both give the same numbers.
"""

from __future__ import annotations

import functools
import os
import threading

import numpy as np

# numba's workqueue pool is not re-entrant; launches from two Python threads would abort.
LAUNCH = threading.Lock()


def threads_per_process(limit: int) -> int:
    """Threads for this process: BEAMHUB_THREADS, else NUMBA_NUM_THREADS, else the usable
    cores shared among the MPI ranks on this node (so `mpiexec -n 2` on 2 cores uses 1 each)."""
    from beamhub.kernels.backend import cpu_workers  # noqa: PLC0415

    if os.environ.get("BEAMHUB_THREADS"):
        want = cpu_workers()
    elif os.environ.get("NUMBA_NUM_THREADS"):
        want = int(os.environ["NUMBA_NUM_THREADS"])
    else:
        local = os.environ.get("OMPI_COMM_WORLD_LOCAL_SIZE") or os.environ.get("MPI_LOCALNRANKS") or "1"
        want = max(1, cpu_workers() // max(1, int(local)))
    return max(1, min(want, limit))


def available() -> bool:
    """True when numba imports (the fused loops can be used)."""
    if os.environ.get("BEAMHUB_EMC_NUMBA", "1") == "0":
        return False
    try:
        import numba  # noqa: F401, PLC0415
    except ImportError:
        return False
    return True


@functools.lru_cache(maxsize=1)
def compiled():
    """Compile (or load from numba's cache) the loops; returns a namespace of functions."""
    import numba  # noqa: PLC0415
    from numba import njit, prange  # noqa: PLC0415

    numba.set_num_threads(threads_per_process(numba.config.NUMBA_NUM_THREADS))

    opts = dict(parallel=True, fastmath=True, cache=True, nogil=True)

    @njit(**opts)
    def slice_model(model, rot, q, center, good, out, sum_good):
        # out[r, t]: trilinear model value at M_r q_t + center (0 outside); sum over good pixels
        s = model.shape[0]
        nr = rot.shape[0]
        npix = q.shape[0]
        for r in prange(nr):
            acc = 0.0
            for t in range(npix):
                x = rot[r, 0, 0] * q[t, 0] + rot[r, 0, 1] * q[t, 1] + rot[r, 0, 2] * q[t, 2] + center
                y = rot[r, 1, 0] * q[t, 0] + rot[r, 1, 1] * q[t, 1] + rot[r, 1, 2] * q[t, 2] + center
                z = rot[r, 2, 0] * q[t, 0] + rot[r, 2, 1] * q[t, 1] + rot[r, 2, 2] * q[t, 2] + center
                ix = int(np.floor(x))
                iy = int(np.floor(y))
                iz = int(np.floor(z))
                if ix < 0 or iy < 0 or iz < 0 or ix > s - 2 or iy > s - 2 or iz > s - 2:
                    out[r, t] = 0.0
                    continue
                fx = x - ix
                fy = y - iy
                fz = z - iz
                gx = 1.0 - fx
                gy = 1.0 - fy
                gz = 1.0 - fz
                v = (gx * (gy * (gz * model[ix, iy, iz] + fz * model[ix, iy, iz + 1])
                           + fy * (gz * model[ix, iy + 1, iz] + fz * model[ix, iy + 1, iz + 1]))
                     + fx * (gy * (gz * model[ix + 1, iy, iz] + fz * model[ix + 1, iy, iz + 1])
                             + fy * (gz * model[ix + 1, iy + 1, iz] + fz * model[ix + 1, iy + 1, iz + 1])))
                out[r, t] = v
                if good[t]:
                    acc += v
            sum_good[r] = acc

    @njit(**opts)
    def expand_log(model, rot, q, center, good_pos, out, sum_good):
        # out[good_pos[t], r] = log W_rt (0 where W <= 0 or outside); sum_good[r] = Σ_good W_rt
        s = model.shape[0]
        nr = rot.shape[0]
        npix = q.shape[0]
        for r in prange(nr):
            acc = 0.0
            m00 = rot[r, 0, 0]
            m01 = rot[r, 0, 1]
            m02 = rot[r, 0, 2]
            m10 = rot[r, 1, 0]
            m11 = rot[r, 1, 1]
            m12 = rot[r, 1, 2]
            m20 = rot[r, 2, 0]
            m21 = rot[r, 2, 1]
            m22 = rot[r, 2, 2]
            for t in range(npix):
                k = good_pos[t]
                if k < 0:
                    continue
                x = m00 * q[t, 0] + m01 * q[t, 1] + m02 * q[t, 2] + center
                y = m10 * q[t, 0] + m11 * q[t, 1] + m12 * q[t, 2] + center
                z = m20 * q[t, 0] + m21 * q[t, 1] + m22 * q[t, 2] + center
                ix = int(np.floor(x))
                iy = int(np.floor(y))
                iz = int(np.floor(z))
                if ix < 0 or iy < 0 or iz < 0 or ix > s - 2 or iy > s - 2 or iz > s - 2:
                    out[k, r] = 0.0
                    continue
                fx = x - ix
                fy = y - iy
                fz = z - iz
                gx = 1.0 - fx
                gy = 1.0 - fy
                gz = 1.0 - fz
                v = (gx * (gy * (gz * model[ix, iy, iz] + fz * model[ix, iy, iz + 1])
                           + fy * (gz * model[ix, iy + 1, iz] + fz * model[ix, iy + 1, iz + 1]))
                     + fx * (gy * (gz * model[ix + 1, iy, iz] + fz * model[ix + 1, iy, iz + 1])
                             + fy * (gz * model[ix + 1, iy + 1, iz] + fz * model[ix + 1, iy + 1, iz + 1])))
                acc += v
                out[k, r] = np.log(v) if v > 0.0 else 0.0
            sum_good[r] = acc

    @njit(**opts)
    def row_probabilities(L, beta, logw, sum_log_fact, phi, sums, cutoff, floor, best, like, info):
        # per frame, in place: L -> P with annealing; most likely r; Σ P (L - Σ log K!); Σ P log(P/w)
        nd, nr = L.shape
        for d in prange(nd):
            top = -np.inf
            arg = 0
            for r in range(nr):
                v = L[d, r] - phi[d] * sums[r]
                L[d, r] = v
                if v > top:
                    top = v
                    arg = r
            best[d] = arg
            b = beta[d]
            tot = 0.0
            lk = 0.0
            for r in range(nr):
                v = L[d, r]
                x = (v - top) * b
                e = np.exp(x) if x > -cutoff else 0.0
                tot += e
                lk += e * v
                L[d, r] = e
            inv = 1.0 / tot
            lk *= inv
            mi = 0.0
            for r in range(nr):
                p = L[d, r] * inv
                if p >= floor:
                    mi += p * (np.log(p) - logw[r])
                L[d, r] = p
            like[d] = lk - sum_log_fact[d]
            info[d] = mi

    @njit(**opts)
    def weighted_photons(indptr, indices, data, prob, out):
        # out[t, :] = Σ_j data_j · P[indices_j, :] over P > floor  (rows t of the transposed counts)
        nrow = out.shape[0]
        ncol = out.shape[1]
        for t in prange(nrow):
            row = out[t]
            for c in range(ncol):
                row[c] = 0.0
            for j in range(indptr[t], indptr[t + 1]):
                src = prob[indices[j]]
                a = data[j]
                for c in range(ncol):
                    row[c] += a * src[c]

    @njit(**opts)
    def floor_block(prob, a, b, floor, out, active):
        # out = prob[:, a:b] with entries <= floor set to 0 (contiguous copy for the merge
        # product); active[d] = frame d has a probable orientation in the block
        for d in prange(prob.shape[0]):
            any_ = False
            for c in range(b - a):
                p = prob[d, a + c]
                keep = p > floor
                out[d, c] = p if keep else 0.0
                any_ = any_ or keep
            active[d] = any_

    @njit(**opts)
    def frame_photon_sums(indptr, indices, data, block, active, out):
        # out[th, t, :] = Σ_d K_dt block[d, :] over the active frames, frames split over
        # out.shape[0] private copies (no races); cheap when few frames are probable here
        nth = out.shape[0]
        nd = block.shape[0]
        nc = block.shape[1]
        for th in prange(nth):
            acc = out[th]
            acc[:, :] = 0.0
            for d in range(th, nd, nth):
                if not active[d]:
                    continue
                pr = block[d]
                for j in range(indptr[d], indptr[d + 1]):
                    row = acc[indices[j]]
                    v = data[j]
                    for c in range(nc):
                        row[c] += v * pr[c]

    @njit(**opts)
    def merge_values(acc, num, den, corr, active, rot, q, center):
        # acc[th] += trilinear splats of vals[r, t] = num[t, r] / den[r] / corr[t] where num is
        # non-zero (num straight from the photon sums: no transposed copy); rotations split over copies
        s = acc.shape[1]
        nr = rot.shape[0]
        npix = q.shape[0]
        nth = acc.shape[0]
        for th in prange(nth):
            for r in range(th, nr, nth):
                if not active[r]:
                    continue
                scale = 1.0 / den[r]
                for t in range(npix):
                    v = num[t, r]
                    if v == 0.0:
                        continue
                    v = v * scale / corr[t]
                    x = rot[r, 0, 0] * q[t, 0] + rot[r, 0, 1] * q[t, 1] + rot[r, 0, 2] * q[t, 2] + center
                    y = rot[r, 1, 0] * q[t, 0] + rot[r, 1, 1] * q[t, 1] + rot[r, 1, 2] * q[t, 2] + center
                    z = rot[r, 2, 0] * q[t, 0] + rot[r, 2, 1] * q[t, 1] + rot[r, 2, 2] * q[t, 2] + center
                    ix = int(np.floor(x))
                    iy = int(np.floor(y))
                    iz = int(np.floor(z))
                    if ix < 0 or iy < 0 or iz < 0 or ix > s - 2 or iy > s - 2 or iz > s - 2:
                        continue
                    fx = x - ix
                    fy = y - iy
                    fz = z - iz
                    gx = 1.0 - fx
                    gy = 1.0 - fy
                    gz = 1.0 - fz
                    a = acc[th]
                    a[ix, iy, iz] += gx * gy * gz * v
                    a[ix, iy, iz + 1] += gx * gy * fz * v
                    a[ix, iy + 1, iz] += gx * fy * gz * v
                    a[ix, iy + 1, iz + 1] += gx * fy * fz * v
                    a[ix + 1, iy, iz] += fx * gy * gz * v
                    a[ix + 1, iy, iz + 1] += fx * gy * fz * v
                    a[ix + 1, iy + 1, iz] += fx * fy * gz * v
                    a[ix + 1, iy + 1, iz + 1] += fx * fy * fz * v

    @njit(**opts)
    def log_transpose(w, good_cols, out):
        # out[k, r] = log(w[r, good_cols[k]]) where positive, else 0 (Dragonfly's DBL_MIN)
        nr = w.shape[0]
        for k in prange(good_cols.shape[0]):
            t = good_cols[k]
            for r in range(nr):
                v = w[r, t]
                out[k, r] = np.log(v) if v > 0.0 else 0.0

    @njit(**opts)
    def csr_times_dense(indptr, indices, data, dense, bias, out, col0):
        # out[d, col0:col0+n] = bias + sum_j data[j] * dense[indices[j], :]  (photons x log-model);
        # out is a whole C-ordered matrix so the inner loop stays contiguous
        nrow = out.shape[0]
        ncol = dense.shape[1]
        for d in prange(nrow):
            row = out[d, col0:col0 + ncol]
            for c in range(ncol):
                row[c] = bias[c]
            for j in range(indptr[d], indptr[d + 1]):
                k = indices[j]
                a = data[j]
                src = dense[k]
                for c in range(ncol):
                    row[c] += a * src[c]

    @njit(**opts)
    def merge(acc, wacc, vals, active, rot, q, center, nthreads):
        # acc[th] += trilinear-splat of vals[r, t] at M_r q_t + center, one private copy per thread
        s = acc.shape[1]
        nr = rot.shape[0]
        npix = q.shape[0]
        for th in prange(nthreads):
            for r in range(th, nr, nthreads):
                if not active[r]:  # orientation without probability (no NaN tests under fastmath)
                    continue
                for t in range(npix):
                    x = rot[r, 0, 0] * q[t, 0] + rot[r, 0, 1] * q[t, 1] + rot[r, 0, 2] * q[t, 2] + center
                    y = rot[r, 1, 0] * q[t, 0] + rot[r, 1, 1] * q[t, 1] + rot[r, 1, 2] * q[t, 2] + center
                    z = rot[r, 2, 0] * q[t, 0] + rot[r, 2, 1] * q[t, 1] + rot[r, 2, 2] * q[t, 2] + center
                    ix = int(np.floor(x))
                    iy = int(np.floor(y))
                    iz = int(np.floor(z))
                    if ix < 0 or iy < 0 or iz < 0 or ix > s - 2 or iy > s - 2 or iz > s - 2:
                        continue
                    fx = x - ix
                    fy = y - iy
                    fz = z - iz
                    v = vals[r, t]
                    for dx in range(2):
                        wx = fx if dx else 1.0 - fx
                        for dy in range(2):
                            wy = fy if dy else 1.0 - fy
                            for dz in range(2):
                                wz = fz if dz else 1.0 - fz
                                w = wx * wy * wz
                                acc[th, ix + dx, iy + dy, iz + dz] += w * v
                                wacc[th, ix + dx, iy + dy, iz + dz] += w

    class NS:
        pass

    ns = NS()
    ns.slice_model = slice_model
    ns.log_transpose = log_transpose
    ns.expand_log = expand_log
    ns.row_probabilities = row_probabilities
    ns.weighted_photons = weighted_photons
    ns.floor_block = floor_block
    ns.frame_photon_sums = frame_photon_sums
    ns.merge_values = merge_values
    ns.csr_times_dense = csr_times_dense
    ns.merge = merge
    ns.num_threads = numba.get_num_threads
    return ns
