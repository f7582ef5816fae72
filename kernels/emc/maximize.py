"""Maximize: Poisson log-likelihood of every frame in every orientation, and the probabilities.

``L_dr = log w_r − φ_d Σ_t W_rt + Σ_t K_dt log W_rt`` (mask-0 pixels); the probabilities
follow with deterministic annealing: ``P_dr ∝ exp(β_d (L_dr − max_r L_dr))``.

:func:`probabilities` runs the three per-frame passes of an operator set
(:mod:`~beamhub.kernels.emc.ops`) and combines each frame's maximum, normalisation and
figures over the MPI ranks between them (each rank holds a share of the orientations of
every frame).  The whole-array forms of the passes (``shift_rows``, ``exp_rows``,
``norm_rows``) and of the photon product are here too; the numba and C sets have their own.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from beamhub.kernels.backend import array_module, to_numpy
from beamhub.kernels.emc.mpi import SerialComm

__all__ = [
    "photon_log_term",
    "beta_start",
    "beta_schedule",
    "probabilities",
    "Probabilities",
    "shift_rows",
    "exp_rows",
    "norm_rows",
    "PROB_FLOOR",
    "CUTOFF",
]

#: Probabilities below this do not count in the mutual information nor the merge numerator.
PROB_FLOOR = 1e-6
#: Orientations with β (L − max L) below −CUTOFF get probability 0 (as Dragonfly's 14/β).
CUTOFF = 14.0
#: Frames per block of the whole-array passes (bounds their temporaries).
ROW_BLOCK = 512


def photon_log_term(good_counts, log_w, bias=None):
    """``bias_r + Σ_t K_dt log W_rt`` for all frames and a chunk of orientations (whole arrays).

    Parameters
    ----------
    good_counts : scipy.sparse.csr_matrix (or cupyx), shape (nd, ngood), float32
        Photon counts on mask-0 pixels.
    log_w : ndarray, shape (ngood, nr), float32
        From :func:`~beamhub.kernels.emc.expand.log_slices`.
    bias : ndarray, shape (nr,), optional
        Added to every row (the prior ``log w_r``).

    Returns
    -------
    ndarray, shape (nd, nr), float32
    """
    xp = array_module(log_w)
    res = xp.asarray(good_counts @ log_w)
    if bias is not None:
        res = res + xp.asarray(bias, dtype=log_w.dtype)[None, :]
    return res


def beta_start(count, mean_count: float, beta: float | None, need_scaling: bool) -> np.ndarray:
    """Starting β per frame: the given value, or Dragonfly's ``auto`` rule.

    ``auto``: ``exp(−6.5 (c·1e−5)^0.15)`` with c the mean count, or each frame's count when
    scaling.  Returns an array of shape (nd,), float64.
    """
    count = np.asarray(count, dtype=np.float64)
    if beta is not None:
        return np.full(count.shape, float(beta))
    c = count if need_scaling else np.full(count.shape, float(mean_count))
    return np.exp(-6.5 * np.power(np.maximum(c, 0.0) * 1e-5, 0.15))


def beta_schedule(beta0, iteration: int, beta_factor: float = 1.0, jump: float = 1.0, period: int = 100) -> np.ndarray:
    """β of each frame in 1-based ``iteration``: ``min(1, β0 · factor · jump^floor((i−1)/period))``."""
    return np.minimum(1.0, np.asarray(beta0) * beta_factor * jump ** ((iteration - 1) // period))


class Probabilities(NamedTuple):
    """Per-frame results of :func:`probabilities` (numpy arrays, the same on every rank)."""

    best: np.ndarray  #: (nd,) int64, global index of the most likely orientation (first on ties)
    likelihood: np.ndarray  #: (nd,) float64, ``Σ_r P_dr L_dr − Σ_t log K_dt!``
    mutual_info: np.ndarray  #: (nd,) float64, ``Σ_{P ≥ floor} P log(P / w)`` (nats)
    expected: np.ndarray  #: (nd,) float64, ``Σ_r P_dr Σ_t W_rt`` (expected photons)
    den: object  #: (n,) float64 of this rank's share, ``Σ_d φ_d P_dr`` (array module of L)


def probabilities(
    ops, L, *, beta, logw, sums, phi, frame_scale, sum_log_fact, num_valid: int, col0: int = 0, comm=None
) -> Probabilities:
    """Turn ``L`` into orientation probabilities in place, over all ranks' orientations.

    Parameters
    ----------
    ops : operator set
        From :func:`~beamhub.kernels.emc.ops.ops_for`; ``L`` is in its layout.
    L : array, (nd, n) in the set's layout, float32
        This rank's ``log w + K log W``; overwritten with ``P`` (0 at or below PROB_FLOOR).
    beta, phi, frame_scale, sum_log_fact : ndarray, shape (nd,)
        Inverse temperature, expected-photons factor, the scale ``φ_d`` (or 1) weighting the
        merge denominator, and ``Σ_t log K_dt!`` of each frame.
    logw, sums : array, shape (n,)
        ``log w_r`` (0 on padding) and ``Σ_t W_rt`` of this rank's orientations.
    num_valid : int
        Real orientations among the ``n`` (the rest is padding, never the maximum).
    col0 : int
        Global index of this rank's first orientation.
    comm : SerialComm or MPIComm
    """
    comm = comm or SerialComm()
    top, arg = ops.prob_shift(L, num_valid, phi, sums)
    top = to_numpy(top)
    best_top = comm.allreduce_max(top)
    mine = np.where(top == best_top, to_numpy(arg) + col0, np.iinfo(np.int64).max)
    best = comm.allreduce_min(mine)
    tot, sum_ev = ops.prob_exp(L, best_top, beta)
    tot = comm.allreduce_sum(to_numpy(tot))
    sum_ev = comm.allreduce_sum(to_numpy(sum_ev))
    info, expected, den = ops.prob_norm(L, tot, logw, sums, frame_scale)
    info = comm.allreduce_sum(to_numpy(info))
    expected = comm.allreduce_sum(to_numpy(expected))
    like = sum_ev / tot - np.asarray(sum_log_fact, dtype=np.float64)
    return Probabilities(best, like, info, expected, den)


def shift_rows(L, phi, sums, num_valid: int):
    """Pass 1 (whole arrays): ``L -= φ_d Σ_t W_r`` in place (in float64, rounded once).

    Returns each frame's maximum (nd,) float64 and its first orientation (nd,) int64,
    over the first ``num_valid`` columns.
    """
    xp = array_module(L)
    nd = L.shape[0]
    phi = xp.asarray(phi, dtype=xp.float64)
    sums = xp.asarray(sums, dtype=xp.float64)
    top = xp.full(nd, -np.inf)
    arg = xp.zeros(nd, dtype=xp.int64)
    for a in range(0, nd, ROW_BLOCK):
        b = min(nd, a + ROW_BLOCK)
        v = (L[a:b].astype(xp.float64) - phi[a:b, None] * sums[None, :]).astype(xp.float32)
        L[a:b] = v
        if num_valid:
            arg[a:b] = xp.argmax(v[:, :num_valid], axis=1)
            top[a:b] = v[xp.arange(b - a), arg[a:b]]
    return top, arg


def exp_rows(L, top, beta):
    """Pass 2 (whole arrays): ``L <- x = β_d (L − top_d)`` in place.

    Returns ``Σ_r e`` and ``Σ_r e v`` per frame (float64), ``e = exp(x)`` or 0 where
    ``x <= −CUTOFF``, ``v`` the value before the pass.
    """
    xp = array_module(L)
    nd = L.shape[0]
    top = xp.asarray(top, dtype=xp.float32)
    beta = xp.asarray(beta, dtype=xp.float32)
    tot = xp.empty(nd)
    sum_ev = xp.empty(nd)
    for a in range(0, nd, ROW_BLOCK):
        b = min(nd, a + ROW_BLOCK)
        v = L[a:b]
        x = (v - top[a:b, None]) * beta[a:b, None]
        e = xp.where(x > -CUTOFF, xp.exp(x), 0.0).astype(xp.float32)
        tot[a:b] = e.sum(axis=1, dtype=xp.float64)
        sum_ev[a:b] = (e * v).sum(axis=1, dtype=xp.float64)
        L[a:b] = x
    return tot, sum_ev


def norm_rows(L, tot, logw, sums, frame_scale):
    """Pass 3 (whole arrays): ``L <- P = e / tot_d`` in place, 0 where ``P <= PROB_FLOOR``.

    Returns the mutual information ``Σ_{P ≥ floor} P (log P − log w_r)`` and the expected
    photons ``Σ_r P Σ_t W_rt`` per frame, and ``den_r = Σ_d φ_d P_dr`` (float64).
    """
    xp = array_module(L)
    nd = L.shape[0]
    tot = xp.asarray(tot, dtype=xp.float64)
    logw = xp.asarray(logw, dtype=xp.float32)
    sums32 = xp.asarray(sums, dtype=xp.float32)
    fscale = xp.asarray(frame_scale, dtype=xp.float32)
    info = xp.empty(nd)
    expected = xp.empty(nd)
    den = xp.zeros(L.shape[1])
    for a in range(0, nd, ROW_BLOCK):
        b = min(nd, a + ROW_BLOCK)
        x = L[a:b]
        ltot = xp.log(tot[a:b]).astype(xp.float32)[:, None]
        p = xp.where(x > -CUTOFF, xp.exp(x), 0.0).astype(xp.float32) * (1.0 / tot[a:b]).astype(xp.float32)[:, None]
        sig = p >= PROB_FLOOR
        info[a:b] = xp.where(sig, p * (x - ltot - logw[None, :]), 0.0).sum(axis=1, dtype=xp.float64)
        expected[a:b] = (p * sums32[None, :]).sum(axis=1, dtype=xp.float64)
        den += (fscale[a:b] @ p).astype(xp.float64)
        L[a:b] = xp.where(p > PROB_FLOOR, p, 0.0)
    return info, expected, den
