"""Parallel-beam geometry shared by the projectors, the reconstructions and the simulator.

The convention is tomopy's (read from its projector, ``libtomo/recon/utils.c``),
with the rotation axis placed exactly (tomopy's half-pixel quirks are not
copied; see docs/tomo.md).  Stated once, used everywhere in
``beamhub.kernels.tomo`` and by ``beamhub.kernels.sim``:

* A reconstructed slice is ``N x N`` with ``N`` the number of detector columns,
  shown as an image (``imshow``, row 0 at the top).  Pixel ``(i, j)`` has its
  centre at ``x = j - (N - 1) / 2`` (right) and ``y = (N - 1) / 2 - i`` (up),
  in pixels, so the rotation axis passes through the middle of the image.
* Detector column ``k`` has its centre at ``k`` (0-based pixel index).  The
  rotation ``center`` is the column of the axis in the same units: ``(N - 1) / 2``
  is the detector middle, sub-pixel values are allowed.  This is the meaning
  tomopy's gridrec and Vo's ``find_center_vo`` give it.
* The ray at angle ``theta`` (radians) through detector column ``k`` integrates
  the slice along the line ``x cos(theta) + y sin(theta) = k - center``.  At
  ``theta = 0`` the rays run vertically: the projection is the sum of the
  slice over its rows (``axis=0``), column ``k`` under image column ``k``; at
  ``theta = pi/2`` they run horizontally and column ``k`` sees image row
  ``N - 1 - k``.  Increasing ``theta`` turns the detector counter-clockwise
  around the object as displayed.

scikit-image's ``radon`` uses the same orientation and sense of rotation, with
its axis at column ``N // 2`` of a ``(columns, angles)`` array in degrees:
``tomo[:, 0, :] = radon(image, np.rad2deg(theta)).T`` with ``center = N // 2``
(see :func:`skimage_to_tomopy`).
"""

from __future__ import annotations

import numpy as np


def default_center(n_columns: int) -> float:
    """The column position of an axis at the middle of ``n_columns`` columns: ``(N - 1) / 2``."""
    return (n_columns - 1) / 2.0


def pixel_coordinates(n: int) -> np.ndarray:
    """``x`` of the centres of the ``n`` image columns, in pixels from the axis.

    The ``y`` of the centres of the ``n`` image rows is the same array reversed
    (``-pixel_coordinates(n)``: ``y`` points up, row 0 is at the top).

    Returns
    -------
    numpy.ndarray, shape (n,), float64
        ``j - (n - 1) / 2`` for ``j = 0 .. n-1``.
    """
    return np.arange(n, dtype=np.float64) - (n - 1) / 2.0


def row_coordinates(n: int) -> np.ndarray:
    """``y`` of the centres of the ``n`` image rows, in pixels from the axis (up is positive).

    Returns
    -------
    numpy.ndarray, shape (n,), float64
        ``(n - 1) / 2 - i`` for ``i = 0 .. n-1``.
    """
    return (n - 1) / 2.0 - np.arange(n, dtype=np.float64)


def skimage_to_tomopy(sinogram, theta_degrees):
    """scikit-image's ``radon`` output as tomopy-ordered projections, angles and axis.

    ``skimage.transform.radon(image, theta_degrees)`` returns a ``(columns,
    angles)`` sinogram of the image rotated about pixel ``(N // 2, N // 2)``,
    with the same orientation and sense of rotation as this module.  The
    transform to our convention is therefore fixed: transpose, add a row axis,
    angles to radians, and the axis at column ``N // 2``.  For odd ``N`` that is
    the detector middle and ``recon`` returns the image exactly as given; for
    even ``N`` scikit-image's centre pixel ``N / 2`` is half a pixel right of
    and below the middle, so ``recon`` (which centres the slice on the axis)
    returns the image moved half a pixel up and left: ``rec[i, j] = image(i + 0.5, j + 0.5)``.

    Parameters
    ----------
    sinogram : array_like, shape (columns, angles)
        ``radon``'s output (line integrals, value x pixels).
    theta_degrees : array_like, shape (angles,), degrees
        The ``theta`` given to ``radon``.

    Returns
    -------
    tomo : numpy.ndarray, shape (angles, 1, columns), float32
    theta : numpy.ndarray, shape (angles,), float64, radians
    center : float
        Axis column, ``columns // 2``.
    """
    sino = np.asarray(sinogram, dtype=np.float32)
    theta = np.deg2rad(np.asarray(theta_degrees, dtype=np.float64).ravel())
    if sino.ndim != 2 or sino.shape[1] != theta.size:
        raise ValueError(
            f"sinogram of shape {sino.shape} does not match {theta.size} angles; expected radon's (columns, angles)"
        )
    return np.ascontiguousarray(sino.T[:, None, :]), theta, float(sino.shape[0] // 2)


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
