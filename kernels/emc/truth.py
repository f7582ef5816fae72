"""Comparing a reconstruction with simulated ground truth (orientations, per-shell correlation).

An EMC model is free to come out in any global orientation; these functions find
that rotation from the frames' most likely orientations, rotate the true intensity
into the model's frame and correlate the two shell by shell (scale-invariant, as
the model's absolute scale is arbitrary).
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import map_coordinates

from beamhub.kernels.emc.quaternions import rotation_matrices

__all__ = ["global_rotation", "orientation_errors", "rotate_volume", "shell_correlation"]


def _angle(m):
    """Rotation angle (radians) of matrices, shape (..., 3, 3)."""
    tr = np.trace(m, axis1=-2, axis2=-1)
    return np.arccos(np.clip((tr - 1.0) / 2.0, -1.0, 1.0))


def global_rotation(best_quats: np.ndarray, true_quats: np.ndarray, tol_deg: float = 15.0) -> np.ndarray:
    """The rotation ``G`` with model frame = ``G`` · truth frame, agreed on by most frames.

    Parameters
    ----------
    best_quats, true_quats : ndarray, shape (nd, 4)
        Each frame's most likely and true orientation.
    tol_deg : float
        Frames whose relative rotation is within this of the candidate vote for it.

    Returns
    -------
    ndarray, shape (3, 3), float64
    """
    rel = rotation_matrices(best_quats) @ np.transpose(rotation_matrices(true_quats), (0, 2, 1))
    n = len(rel)
    pick = np.linspace(0, n - 1, min(n, 200)).astype(int)
    tol = np.deg2rad(tol_deg)
    votes = [(_angle(np.transpose(rel[i])[None] @ rel) < tol).sum() for i in pick]
    g = rel[pick[int(np.argmax(votes))]]
    close = _angle(np.transpose(g)[None] @ rel) < tol
    u, _, vt = np.linalg.svd(rel[close].mean(axis=0))  # chordal mean of the agreeing frames
    g = u @ vt
    if np.linalg.det(g) < 0:
        u[:, -1] *= -1
        g = u @ vt
    return g


def orientation_errors(best_quats, true_quats, g: np.ndarray, twin: bool = False) -> np.ndarray:
    """Angle (degrees) between each frame's most likely orientation and ``G`` · its true one.

    With ``twin``, the smaller of that and the angle to the Friedel twin (the true
    orientation turned 180° about the beam axis): a centrosymmetric intensity seen on a
    nearly flat Ewald sphere gives the two almost the same likelihood.
    """
    mb = rotation_matrices(best_quats)
    mt = g[None] @ rotation_matrices(true_quats)
    err = _angle(np.transpose(mb, (0, 2, 1)) @ mt)
    if twin:
        flip = np.diag([-1.0, -1.0, 1.0])  # pixel q -> (-qx, -qy, qz)
        err = np.minimum(err, _angle(np.transpose(mb, (0, 2, 1)) @ (mt @ flip)))
    return np.rad2deg(err)


def rotate_volume(volume: np.ndarray, g: np.ndarray) -> np.ndarray:
    """``volume`` seen in the frame rotated by ``g`` about the centre ``s//2``: out(m) = vol(gᵀ m)."""
    s = volume.shape[0]
    c = s // 2
    grid = np.indices(volume.shape, dtype=np.float64).reshape(3, -1) - c
    src = g.T @ grid + c
    return map_coordinates(volume, src, order=1, mode="constant", cval=0.0).reshape(volume.shape)


def shell_correlation(
    a: np.ndarray, b: np.ndarray, num_shells: int = 10, max_fraction: float = 1.0, valid: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Pearson correlation of two volumes in spherical shells about the centre ``s//2``.

    Parameters
    ----------
    a, b : ndarray, shape (s, s, s)
    num_shells : int
        Shells of equal width from radius 0 to ``max_fraction · (s//2)``.
    valid : ndarray of bool, optional
        Voxels to use (e.g. where the merge had weight).

    Returns
    -------
    radii : ndarray, shape (num_shells,)
        Outer radius of each shell, in voxels.
    corr : ndarray, shape (num_shells,)
        Correlation per shell (NaN for an empty shell).
    """
    s = a.shape[0]
    c = s // 2
    r = np.sqrt(((np.indices(a.shape) - c) ** 2).sum(axis=0))
    edges = np.linspace(0, max_fraction * c, num_shells + 1)
    out = np.full(num_shells, np.nan)
    for k in range(num_shells):
        sel = (r >= edges[k]) & (r < edges[k + 1])
        if valid is not None:
            sel &= valid
        if sel.sum() > 2:
            out[k] = np.corrcoef(a[sel], b[sel])[0, 1]
    return edges[1:], out
