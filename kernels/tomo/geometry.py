"""Parallel-beam geometry shared by the projectors, the reconstructions and the simulator.

Conventions (stated once, used everywhere in ``beamhub.kernels.tomo``):

* A reconstructed slice is ``N x N`` with ``N`` the number of detector columns.
  Pixel ``(i, j)`` has its centre at ``x = j - (N - 1) / 2``, ``y = i - (N - 1) / 2``
  (pixel units), so the rotation axis sits at the middle of the image.
* Detector column ``k`` has its centre at ``k`` (0-based pixel index).  The
  rotation ``center`` is the column position of the axis in the same units, so a
  perfectly centred axis on ``N`` columns is ``(N - 1) / 2`` and sub-pixel values
  are allowed.  This is the convention of Vo's centre search, so
  ``recon(tomo, theta, center=find_center_vo(tomo))`` is consistent.
* A ray at angle ``theta`` (radians) through detector position ``s = k - center``
  integrates the slice along ``x cos(theta) + y sin(theta) = s``.
"""

from __future__ import annotations

import numpy as np


def default_center(n_columns: int) -> float:
    """The column position of an axis at the middle of ``n_columns`` columns: ``(N - 1) / 2``."""
    return (n_columns - 1) / 2.0


def pixel_coordinates(n: int) -> np.ndarray:
    """Centres of ``n`` image pixels along one axis, in pixels from the axis.

    Returns
    -------
    numpy.ndarray, shape (n,), float64
        ``j - (n - 1) / 2`` for ``j = 0 .. n-1``.
    """
    return np.arange(n, dtype=np.float64) - (n - 1) / 2.0


def centers_per_row(center, n_rows: int, n_columns: int) -> np.ndarray:
    """Broadcast ``center`` (None, a scalar or one value per row) to shape ``(n_rows,)``.

    Raises
    ------
    ValueError
        When an array ``center`` has neither one nor ``n_rows`` values.
    """
    if center is None:
        return np.full(n_rows, default_center(n_columns))
    c = np.atleast_1d(np.asarray(center, dtype=np.float64)).ravel()
    if c.size == 1:
        return np.full(n_rows, float(c[0]))
    if c.size != n_rows:
        raise ValueError(f"center has {c.size} values for {n_rows} rows; give one or one per row")
    return c
