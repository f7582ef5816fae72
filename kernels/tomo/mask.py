"""Circular masks for reconstructed slices (tomopy's ``circ_mask``)."""

from __future__ import annotations

import numpy as np

from beamhub.kernels import backend


def circ_mask(arr, axis: int = 0, ratio: float = 1.0, val: float = 0.0, ncore=None):
    """Set everything outside a centred circle in each slice to ``val``.

    Parameters
    ----------
    arr : array, 3-D, float
        Stack of images, e.g. a reconstruction of shape (rows, N, N).
    axis : int
        The stacking axis; the circle lies in the plane of the other two.
    ratio : float
        Circle diameter as a fraction of the smaller in-plane size (0 < ratio <= 1).
    val : float
        Value written outside the circle.
    ncore : int, optional
        Accepted for tomopy compatibility; unused (the operation is one vectorised pass).

    Returns
    -------
    array of the input's module, same shape and dtype as ``arr`` (a masked copy)
    """
    xp = backend.array_module(arr)
    out = xp.array(arr, copy=True)
    if out.ndim != 3:
        raise ValueError(f"circ_mask expects a 3-D stack, got shape {tuple(out.shape)}")
    moved = xp.moveaxis(out, axis, 0)
    ny, nx = moved.shape[1:]
    y = np.arange(ny) - (ny - 1) / 2.0
    x = np.arange(nx) - (nx - 1) / 2.0
    radius = ratio * min(nx, ny) / 2.0
    outside = (x[None, :] ** 2 + y[:, None] ** 2) > radius**2
    moved[:, xp.asarray(outside)] = val
    return out
