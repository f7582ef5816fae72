"""Compress: merge the probability-weighted photons back into the 3-D model.

For each orientation r the updated slice is ``Σ_d P_dr K_dt / Σ_d P_dr φ_d`` divided by
the pixel's normalised correction, then splatted into the model with trilinear
weights; the model is the weight-normalised sum, Friedel-symmetrised.
"""

from __future__ import annotations

import numpy as np

from beamhub.kernels.backend import array_module
from beamhub.kernels.emc import _fused
from beamhub.kernels.emc.expand import _corner_weights, _corners, voxel_positions
from beamhub.kernels.emc.maximize import PROB_FLOOR

#: Below this fraction of frames with a probable orientation in a chunk, the merge sums
#: walk only those frames' photons instead of every pixel's.
SPARSE_FRAMES = 0.3

__all__ = ["photon_sums", "merge_slices", "merge_values", "merge_weights", "finish_model",
           "friedel_symmetrize"]


def photon_sums(counts, prob, frame_scale, cols=None, counts_t=None):
    """Probability-weighted photons of a chunk of orientations.

    Parameters
    ----------
    counts : scipy.sparse.csr_matrix, shape (nd, npix), float32
        Photon counts (frames as rows).
    prob : ndarray, shape (nd, nr), float32
        Probabilities (of this chunk's orientations, or of all when ``cols`` is given).
    cols : (int, int), optional
        Use the columns ``a:b`` of ``prob`` (no copy on the numba path).
    frame_scale : ndarray, shape (nd,), float64
        ``φ_d``: the frame's scale factor, or 1.

    Returns
    -------
    numerator : ndarray, shape (npix, nr), float32
        ``Σ_d P_dr K_dt`` over ``P_dr > 1e−6``.
    denominator : ndarray, shape (nr,), float64
        ``Σ_d P_dr φ_d``.
    """
    xp = array_module(prob)
    a, b = cols if cols is not None else (0, prob.shape[1])
    den = (xp.asarray(frame_scale, dtype=prob.dtype) @ prob[:, a:b]).astype(xp.float64)
    if xp is np and _fused.available():
        fns = _fused.compiled()
        block = np.empty((prob.shape[0], b - a), dtype=np.float32)
        active = np.empty(prob.shape[0], dtype=np.bool_)
        with _fused.LAUNCH:
            fns.floor_block(prob, a, b, PROB_FLOOR, block, active)
        if counts_t is not None and active.mean() > SPARSE_FRAMES:
            # most frames probable here: pixel-major product, reads only (measured faster)
            out = np.empty((counts_t.shape[0], b - a), dtype=np.float32)
            with _fused.LAUNCH:
                fns.weighted_photons(counts_t.indptr, counts_t.indices, counts_t.data, block, out)
            return out, den
        out = np.empty((fns.num_threads(), counts.shape[1], b - a), dtype=np.float32)
        with _fused.LAUNCH:
            fns.frame_photon_sums(counts.indptr, counts.indices, counts.data, block, active, out)
        return out.sum(axis=0), den
    prob = prob[:, a:b]
    pnum = xp.where(prob > PROB_FLOOR, prob, 0.0).astype(xp.float32)
    ct = counts_t if counts_t is not None else counts.T.tocsr()
    return xp.asarray(ct @ pnum), den


def merge_slices(acc, wacc, slices, active, rot, q, center: int):
    """Add trilinear splats of ``slices`` at the rotated pixel positions (in place).

    Parameters
    ----------
    acc, wacc : ndarray, shape (k, s, s, s), float64
        Value and weight accumulators (``k`` private copies; numba threads each use one,
        the whole-array path uses copy 0).
    slices : ndarray, shape (nr, npix), float64
        Values to merge.
    active : ndarray, shape (nr,), bool
        Orientations to merge (False: no frame gave it probability).
    rot : ndarray, shape (nr, 3, 3)
    q : ndarray, shape (npix, 3)
    center : int
    """
    xp = array_module(acc)
    if xp is np and _fused.available():
        with _fused.LAUNCH:
            _fused.compiled().merge(acc, wacc, np.ascontiguousarray(slices), np.ascontiguousarray(active),
                                    np.ascontiguousarray(rot),
                                    np.ascontiguousarray(q), float(center), acc.shape[0])
        return
    size = acc.shape[1]
    keep = active
    if not bool(keep.any()):
        return
    slices, rot = slices[keep], rot[keep]
    base, frac, inside = _corners(voxel_positions(rot, q, center), size)
    n = size ** 3
    for (dx, dy, dz), w in _corner_weights(frac):
        idx = (base + (dx * size + dy) * size + dz)[inside]
        ww = w[inside]
        acc[0] += xp.bincount(idx, weights=ww * slices[inside], minlength=n).reshape(acc.shape[1:])
        wacc[0] += xp.bincount(idx, weights=ww, minlength=n).reshape(acc.shape[1:])


def friedel_symmetrize(acc, wacc):
    """Weight-averaged Friedel pairs: returns ``(acc + acc(−q), w + w(−q))`` about the centre ``s//2``."""
    xp = array_module(acc)
    size = acc.shape[0]
    shift = 2 * (size // 2) - (size - 1)  # 0 for odd edges; even edges pair i with size - i

    def flip(a):
        f = a[::-1, ::-1, ::-1]
        return xp.roll(f, shift, axis=(0, 1, 2)) if shift else f

    return acc + flip(acc), wacc + flip(wacc)


def finish_model(acc, wacc, friedel: bool = True):
    """The merged model ``acc / w`` (0 where nothing merged), optionally Friedel-symmetrised.

    Parameters
    ----------
    acc, wacc : ndarray, shape (s, s, s), float64
        Summed value and weight accumulators.

    Returns
    -------
    model : ndarray, shape (s, s, s), float64
    weight : ndarray, shape (s, s, s), float64
        Interpolation weight per voxel (``inter_weight`` of Dragonfly's output).
    """
    xp = array_module(acc)
    if friedel:
        acc, wacc = friedel_symmetrize(acc, wacc)
    model = xp.where(wacc > 0, acc / xp.where(wacc > 0, wacc, 1.0), 0.0)
    return model, wacc


def merge_values(acc, num, den, corr, active, rot, q, center: int):
    """Merge the slices ``num[t, r] / den[r] / corr[t]`` by trilinear splats of their values.

    Only values are added (weights come from :func:`merge_weights`, which does not depend
    on the data), and zero numerators (pixels no probable frame lit) are skipped.

    Parameters
    ----------
    acc : ndarray, shape (k, s, s, s), float64
        Value accumulators (``k`` private copies for the numba threads; copy 0 otherwise).
    num : ndarray, shape (npix, nr), float32
        Probability-weighted photons from :func:`photon_sums`.
    den : ndarray, shape (nr,), float64
        ``Σ_d P_dr φ_d``.
    corr : ndarray, shape (npix,), float64
        Normalised pixel corrections.
    active : ndarray, shape (nr,), bool
        Orientations to merge (``den > 0``).
    rot, q, center
        As for :func:`merge_slices`.
    """
    xp = array_module(acc)
    if xp is np and _fused.available():
        with _fused.LAUNCH:
            _fused.compiled().merge_values(acc, np.ascontiguousarray(num), np.ascontiguousarray(den, np.float64),
                                           np.ascontiguousarray(corr, np.float64),
                                           np.ascontiguousarray(active), np.ascontiguousarray(rot),
                                           np.ascontiguousarray(q), float(center))
        return
    slices = num.T.astype(xp.float64) / xp.where(active, den, 1.0)[:, None] / corr[None, :]
    scratch = xp.zeros_like(acc[:1])
    merge_slices(acc[:1], scratch, slices, active, rot, q, center)


def merge_weights(rot, q, center: int, size: int, active=None, xp=np, chunk: int = 256):
    """Interpolation weight each voxel gets when every (active) orientation is merged.

    Returns
    -------
    ndarray, shape (size, size, size), float64
    """
    copies = _fused.compiled().num_threads() if (xp is np and _fused.available()) else 1
    acc = xp.zeros((copies, size, size, size))
    wacc = xp.zeros_like(acc)
    ones = xp.ones((min(chunk, len(rot)), q.shape[0]))
    for a in range(0, len(rot), chunk):
        b = min(len(rot), a + chunk)
        act = xp.ones(b - a, dtype=bool) if active is None else active[a:b]
        merge_slices(acc, wacc, ones[: b - a], act, rot[a:b], q, center)
    return wacc.sum(axis=0)
