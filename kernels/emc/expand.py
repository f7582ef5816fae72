"""Expand: slice the 3-D model at every orientation's rotated detector q positions.

Whole-array forms for any array module (the numba and C operator sets have their own);
:func:`locate` is this language's one trilinear locate step, shared with the merge.
"""

from __future__ import annotations

import numpy as np

from beamhub.kernels.backend import array_module

__all__ = ["slice_model", "log_slices", "voxel_positions", "good_positions", "locate", "corner_weights"]


def good_positions(good, dtype=np.int64) -> np.ndarray:
    """Index of each pixel among the likelihood (mask-0) pixels, -1 for the others.

    ``good``: shape (npix,), bool.  Returns shape (npix,), ``dtype``.
    """
    good = np.asarray(good, dtype=bool)
    pos = np.full(len(good), -1, dtype=dtype)
    pos[good] = np.arange(int(good.sum()), dtype=dtype)
    return pos


def voxel_positions(rot, q, center: float):
    """Model coordinates ``M_r q_t + center``, shape (nr, npix, 3), in the array module of ``rot``."""
    xp = array_module(rot)
    return xp.einsum("rij,tj->rti", rot, q) + center


def locate(pos, size: int):
    """Trilinear cells of model positions ``pos`` (..., 3) in an ``size``³ C-order grid.

    Returns the flat index of each lower corner (0 where outside), the fractions (..., 3)
    and an ``inside`` flag (the lower corner within ``[0, size − 2]`` on every axis).
    """
    xp = array_module(pos)
    i0 = xp.floor(pos)
    frac = pos - i0
    i0 = i0.astype(xp.int64)
    inside = xp.all((i0 >= 0) & (i0 <= size - 2), axis=-1)
    i0 = xp.where(inside[..., None], i0, 0)
    base = (i0[..., 0] * size + i0[..., 1]) * size + i0[..., 2]
    return base, frac, inside


def corner_weights(frac):
    """The 8 (offset index, weight) pairs of trilinear interpolation."""
    fx, fy, fz = frac[..., 0], frac[..., 1], frac[..., 2]
    for dx in (0, 1):
        wx = fx if dx else 1 - fx
        for dy in (0, 1):
            wy = fy if dy else 1 - fy
            for dz in (0, 1):
                wz = fz if dz else 1 - fz
                yield (dx, dy, dz), wx * wy * wz


def slice_model(model, rot, q, center: int, good=None):
    """Model values at the rotated pixel positions (Dragonfly's ``slice_gen3d``).

    Parameters
    ----------
    model : ndarray, shape (s, s, s), float64
        Intensity model; axis 0 is the model-frame x.
    rot : ndarray, shape (nr, 3, 3), float64
        Rotation matrices from :func:`~beamhub.kernels.emc.quaternions.rotation_matrices`.
    q : ndarray, shape (npix, 3), float64
        Pixel q vectors in voxels.
    center : int
        Voxel index of q = 0.
    good : ndarray, shape (npix,), bool, optional
        Pixels counted in the returned sums (default all).

    Returns
    -------
    slices : ndarray, shape (nr, npix), float64
        Trilinearly interpolated values; 0 where the position is outside the volume.
    sums : ndarray, shape (nr,), float64
        ``Σ_t slices[r, t]`` over the ``good`` pixels.
    """
    xp = array_module(model)
    nr, npix = rot.shape[0], q.shape[0]
    if good is None:
        good = xp.ones(npix, dtype=bool)
    size = model.shape[0]
    base, frac, inside = locate(voxel_positions(rot, q, center), size)
    flat = model.ravel()
    out = xp.zeros((nr, npix), dtype=xp.float64)
    for (dx, dy, dz), w in corner_weights(frac):
        out += w * flat[base + (dx * size + dy) * size + dz]
    out = xp.where(inside, out, 0.0)
    return out, (out * good).sum(axis=1)


def log_slices(slices, good_cols, dtype=np.float32):
    """``log`` of the slices at the likelihood pixels, transposed for the photon product.

    Parameters
    ----------
    slices : ndarray, shape (nr, npix), float64
    good_cols : ndarray, shape (ngood,), int64
        Columns (mask-0 pixels) to keep.

    Returns
    -------
    ndarray, shape (ngood, nr), ``dtype``
        ``log W`` where ``W > 0``, else 0 (Dragonfly replaces the log of an empty or
        outside pixel by ``DBL_MIN``, so it adds nothing).
    """
    xp = array_module(slices)
    w = slices[:, good_cols].T
    pos = w > 0
    return xp.ascontiguousarray(xp.where(pos, xp.log(xp.where(pos, w, 1.0)), 0.0).astype(dtype))
