"""Maximize: Poisson log-likelihood of every frame in every orientation, and the probabilities.

``L_dr = log w_r − φ_d Σ_t W_rt + Σ_t K_dt log W_rt`` (mask-0 pixels), written as one
sparse-times-dense product ``K @ log W`` per chunk of orientations; the probabilities
follow with deterministic annealing: ``P_dr ∝ exp(β_d (L_dr − max_r L_dr))``.
"""

from __future__ import annotations

import numpy as np

from beamhub.kernels.backend import array_module
from beamhub.kernels.emc import _fused

__all__ = ["photon_log_term", "beta_start", "beta_schedule", "probabilities", "PROB_FLOOR"]

#: Probabilities below this do not count in the mutual information nor the merge numerator.
PROB_FLOOR = 1e-6
#: Orientations with β (L − max L) below −CUTOFF get probability 0 (as Dragonfly's 14/β).
CUTOFF = 14.0


def photon_log_term(good_counts, log_w, out=None, bias=None, col0: int = 0):
    """``Σ_t K_dt log W_rt`` for all frames and a chunk of orientations.

    Parameters
    ----------
    good_counts : scipy.sparse.csr_matrix (or cupyx), shape (nd, ngood), float32
        Photon counts on mask-0 pixels.
    log_w : ndarray, shape (ngood, nr), float32
        From :func:`~beamhub.kernels.emc.expand.log_slices`.
    out : ndarray, shape (nd, >= col0 + nr), float32, optional
        Where to write: columns ``col0 : col0 + nr`` of this (C-ordered) matrix.
    bias : ndarray, shape (nr,), optional
        Added to every row (the prior ``log w_r``).

    Returns
    -------
    ndarray, shape (nd, nr), float32
    """
    xp = array_module(log_w)
    if xp is np and _fused.available():
        if out is None:
            out = np.empty((good_counts.shape[0], log_w.shape[1]), dtype=log_w.dtype)
        b = np.zeros(log_w.shape[1], log_w.dtype) if bias is None else np.asarray(bias, log_w.dtype)
        with _fused.LAUNCH:
            _fused.compiled().csr_times_dense(good_counts.indptr, good_counts.indices,
                                              good_counts.data, log_w, b, out, col0)
        return out[:, col0:col0 + log_w.shape[1]]
    res = good_counts @ log_w
    if bias is not None:
        res = res + xp.asarray(bias, dtype=log_w.dtype)[None, :]
    if out is not None:
        out[:, col0:col0 + log_w.shape[1]] = res
        return out[:, col0:col0 + log_w.shape[1]]
    return xp.asarray(res)


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


def beta_schedule(beta0, iteration: int, beta_factor: float = 1.0, jump: float = 1.0,
                  period: int = 100) -> np.ndarray:
    """β of each frame in 1-based ``iteration``: ``min(1, β0 · factor · jump^floor((i−1)/period))``."""
    return np.minimum(1.0, np.asarray(beta0) * beta_factor * jump ** ((iteration - 1) // period))


def probabilities(loglik, beta, log_weights, sum_log_fact, phi=None, slice_sums=None,
                  row_block: int = 512):
    """Turn log-likelihoods into orientation probabilities, in place, with per-frame figures.

    Parameters
    ----------
    loglik : ndarray, shape (nd, nr), float32
        ``L_dr``; overwritten with ``P_dr`` (rows sum to 1).
    beta : ndarray, shape (nd,)
        Inverse temperature of each frame.
    log_weights : ndarray, shape (nr,)
        ``log w_r`` (only for the mutual information).
    sum_log_fact : ndarray, shape (nd,)
        ``Σ_t log K_dt!`` of each frame.
    phi, slice_sums : ndarray, shape (nd,) and (nr,), optional
        When given, ``phi_d · slice_sums_r`` is subtracted from ``loglik`` first (the
        expected-photons term, applied here so the orientation pass needs no global sum).

    Returns
    -------
    best : ndarray, shape (nd,), int64
        Most likely orientation of each frame.
    likelihood : ndarray, shape (nd,), float64
        ``Σ_r P_dr (L_dr − Σ log K!)``.
    mutual_info : ndarray, shape (nd,), float64
        ``Σ_r P_dr log(P_dr / w_r)`` over ``P_dr ≥ 1e−6`` (nats).
    """
    xp = array_module(loglik)
    nd = loglik.shape[0]
    if xp is np and _fused.available() and loglik.flags.c_contiguous:
        best = np.empty(nd, dtype=np.int64)
        like = np.empty(nd, dtype=np.float64)
        info = np.empty(nd, dtype=np.float64)
        zeros = phi is None
        with _fused.LAUNCH:
            _fused.compiled().row_probabilities(
                loglik, np.asarray(beta, np.float64), np.asarray(log_weights, np.float64),
                np.asarray(sum_log_fact, np.float64),
                np.zeros(nd) if zeros else np.asarray(phi, np.float64),
                np.zeros(loglik.shape[1]) if zeros else np.asarray(slice_sums, np.float64),
                CUTOFF, PROB_FLOOR, best, like, info)
        return best, like, info
    best = xp.empty(nd, dtype=xp.int64)
    like = xp.empty(nd, dtype=xp.float64)
    info = xp.empty(nd, dtype=xp.float64)
    beta = xp.asarray(beta, dtype=xp.float64)
    logw = xp.asarray(log_weights, dtype=xp.float32)
    for a in range(0, nd, row_block):
        b = min(nd, a + row_block)
        L = loglik[a:b]
        if phi is not None:
            L = L - (xp.asarray(phi[a:b])[:, None] * slice_sums[None, :]).astype(xp.float32)
        best[a:b] = xp.argmax(L, axis=1)
        top = L.max(axis=1, keepdims=True)
        x = (L - top) * beta[a:b, None].astype(xp.float32)
        p = xp.where(x > -CUTOFF, xp.exp(x), 0.0).astype(xp.float32)
        p /= p.sum(axis=1, keepdims=True)
        like[a:b] = (p.astype(xp.float64) * L).sum(axis=1) - xp.asarray(sum_log_fact[a:b])
        sig = p >= PROB_FLOOR
        info[a:b] = xp.where(sig, p * (xp.log(xp.where(sig, p, 1.0)) - logw), 0.0).sum(
            axis=1, dtype=xp.float64)
        loglik[a:b] = p
    return best, like, info
