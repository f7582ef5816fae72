"""Filtered backprojection with linear interpolation, vectorised over pixels, angles and rows.

This is the textbook pixel-driven method (as scikit-image's ``iradon`` and
tomopy's ``fbp``): filter each projection with a ramp and window, then for every
pixel add, from every angle, the filtered projection linearly interpolated at
the pixel's detector position.  Its cost is ``N^2 x angles`` per slice; use
:func:`~beamhub.kernels.tomo.gridrec.gridrec` for speed.  :func:`backproject`
is also the adjoint of the projector SIRT uses.
"""

from __future__ import annotations

import numpy as np

from beamhub.kernels import backend
from beamhub.kernels.tomo.filters import fourier_filter
from beamhub.kernels.tomo.geometry import pixel_coordinates
from beamhub.kernels.tomo.gridrec import padded_size

#: Work arrays hold about this many (pixel, angle) pairs at a time.
_BLOCK_ELEMENTS = 4_000_000


def filter_sinogram(sino, filter_name: str = "shepp"):
    """Ramp-filter sinograms along the detector, with zero padding to avoid wrap-around.

    Parameters
    ----------
    sino : array, shape (rows, angles, N), float
        Sinograms (line integrals).
    filter_name : str
        ``ramlak``, ``shepp``, ``cosine``, ``hann``, ``hamming``, ``parzen`` or ``none``.

    Returns
    -------
    array of the input's module, shape (rows, angles, N), float32
    """
    xp = backend.array_module(sino)
    n = sino.shape[-1]
    m = padded_size(n)
    filt = fourier_filter(filter_name, m)[: m // 2 + 1].astype(np.float32)
    spec = backend.rfft(xp.asarray(sino, dtype=xp.float32), n=m, axis=-1)
    spec *= xp.asarray(filt)
    return backend.irfft(spec, n=m, axis=-1)[..., :n].astype(xp.float32, copy=False)


def backproject(sino, theta, center: float):
    """Sum of linearly interpolated projections over angles (no filtering, no weights).

    Parameters
    ----------
    sino : array, shape (rows, angles, N), float32
        Projections of ``rows`` slices that share one rotation ``center``.
    theta : array_like, shape (angles,), radians
    center : float
        Rotation-axis column (pixels; see :mod:`beamhub.kernels.tomo.geometry`).

    Returns
    -------
    array of the input's module, shape (rows, N, N), float32
        ``sum_a p_a(x cos theta_a + y sin theta_a + center)`` with ``x``, ``y`` of
        :mod:`beamhub.kernels.tomo.geometry` (``y`` up); detector
        positions outside the detector contribute zero.
    """
    xp = backend.array_module(sino)
    n_rows, n_angles, n = sino.shape
    # Zero columns on both sides make out-of-detector positions read zero.
    padded = xp.zeros((n_rows, n_angles, n + 2), dtype=xp.float32)
    padded[:, :, 1:-1] = sino
    flat = padded.reshape(n_rows, n_angles * (n + 2))
    coords = xp.asarray(pixel_coordinates(n))
    cos = xp.asarray(np.cos(np.asarray(backend.to_numpy(theta), dtype=np.float64)))
    sin = xp.asarray(np.sin(np.asarray(backend.to_numpy(theta), dtype=np.float64)))
    out = xp.zeros((n_rows, n * n), dtype=xp.float32)
    block = max(1, _BLOCK_ELEMENTS // (n * n))
    for a0 in range(0, n_angles, block):
        a1 = min(n_angles, a0 + block)
        # Detector position (column units, +1 for the pad) of every pixel at every angle.
        # x runs along the columns, y = -coords up the rows (geometry module).
        u = (
            cos[a0:a1, None, None] * coords[None, None, :]
            - sin[a0:a1, None, None] * coords[None, :, None]
            + (center + 1.0)
        ).reshape(a1 - a0, n * n)
        u = xp.clip(u, 0.0, n + 0.999)
        i0 = xp.floor(u)
        w = (u - i0).astype(xp.float32)
        idx = i0.astype(xp.int64) + (xp.arange(a0, a1, dtype=xp.int64) * (n + 2))[:, None]
        for r in range(n_rows):
            left = xp.take(flat[r], idx)
            right = xp.take(flat[r], idx + 1)
            out[r] += (left + w * (right - left)).sum(axis=0)
    return out.reshape(n_rows, n, n)


def fbp(sino, theta, centers, filter_name: str = "shepp"):
    """Filtered backprojection of sinograms.

    Parameters
    ----------
    sino : array, shape (rows, angles, N), float32
        Sinograms (line integrals).
    theta : array_like, shape (angles,), radians
        Angles spread evenly over 180 or 360 degrees.
    centers : array_like, shape (rows,), pixels
        Rotation-axis column of each row.
    filter_name : str
        See :func:`filter_sinogram`.

    Returns
    -------
    array of the input's module, shape (rows, N, N), float32
        Attenuation per pixel (1/pixel).
    """
    xp = backend.array_module(sino)
    n_rows, n_angles, n = sino.shape
    filtered = filter_sinogram(sino, filter_name)
    centers = np.asarray(centers, dtype=np.float64)
    out = xp.empty((n_rows, n, n), dtype=xp.float32)
    for c in np.unique(centers):
        rows = np.flatnonzero(centers == c)
        out[rows] = backproject(filtered[rows], theta, float(c))
    out *= np.float32(np.pi / n_angles)
    return out
