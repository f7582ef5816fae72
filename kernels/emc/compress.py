"""Compress: merge the probability-weighted photons back into the 3-D model.

For each orientation r the updated slice is ``Σ_d P_dr K_dt / Σ_d P_dr φ_d`` divided by
the pixel's normalised correction, then splatted into the model with trilinear
weights; the model is the weight-normalised sum, Friedel-symmetrised.  The merge sums are
written here as whole arrays (the numba and C operator sets have their own);
:func:`finish_model` and :func:`friedel_symmetrize` are shared by every set.
"""

from __future__ import annotations

from beamhub.kernels.backend import array_module
from beamhub.kernels.emc.expand import corner_weights, locate, voxel_positions

__all__ = ["photon_sums", "merge_slices", "merge_values", "merge_weights", "finish_model", "friedel_symmetrize"]


def photon_sums(counts_t, prob):
    """Probability-weighted photons of a chunk of orientations (whole arrays).

    Parameters
    ----------
    counts_t : scipy.sparse.csr_matrix (or cupyx), shape (npix, nd), float32
        Photon counts, pixels as rows.
    prob : ndarray, shape (nd, nr), float32
        Probabilities, 0 at or below the floor (as the probability passes leave them).

    Returns
    -------
    ndarray, shape (npix, nr), float32
        ``Σ_d K_dt P_dr``.
    """
    xp = array_module(prob)
    return xp.asarray(counts_t @ xp.ascontiguousarray(prob))


def merge_slices(acc, wacc, slices, active, rot, q, center: int):
    """Add trilinear splats of ``slices`` at the rotated pixel positions (in place).

    Parameters
    ----------
    acc, wacc : ndarray, shape (k, s, s, s), float64
        Value and weight accumulators (copy 0 is added to).
    slices : ndarray, shape (nr, npix), float64
        Values to merge.
    active : ndarray, shape (nr,), bool
        Orientations to merge (False: no frame gave it probability).
    rot : ndarray, shape (nr, 3, 3)
    q : ndarray, shape (npix, 3)
    center : int
    """
    xp = array_module(acc)
    size = acc.shape[1]
    keep = active
    if not bool(keep.any()):
        return
    slices, rot = slices[keep], rot[keep]
    base, frac, inside = locate(voxel_positions(rot, q, center), size)
    n = size**3
    for (dx, dy, dz), w in corner_weights(frac):
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
        Value accumulators (copy 0 is added to).
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
    slices = num.T.astype(xp.float64) / xp.where(active, den, 1.0)[:, None] / corr[None, :]
    scratch = xp.zeros_like(acc[:1])
    merge_slices(acc[:1], scratch, slices, active, rot, q, center)


def merge_weights(rot, q, center: int, size: int, active=None, chunk: int = 256):
    """Interpolation weight each voxel gets when every (active) orientation is merged.

    Returns
    -------
    ndarray, shape (size, size, size), float64
    """
    xp = array_module(rot)
    acc = xp.zeros((1, size, size, size))
    wacc = xp.zeros_like(acc)
    ones = xp.ones((min(chunk, len(rot)), q.shape[0]))
    for a in range(0, len(rot), chunk):
        b = min(len(rot), a + chunk)
        act = xp.ones(b - a, dtype=bool) if active is None else active[a:b]
        merge_slices(acc, wacc, ones[: b - a], act, rot[a:b], q, center)
    return wacc.sum(axis=0)
