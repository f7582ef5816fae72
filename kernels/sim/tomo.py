"""Tomography phantoms and parallel-beam scans with ground truth.

The phantom is the 3-D Shepp-Logan head (Kak & Slaney), a sum of ellipsoids
rotated about the vertical axis, so both the slices and their projections are
known in closed form: projections are exact line integrals through ellipses
(averaged over each detector pixel), never re-projections of a voxel grid, so
tests do not commit the "inverse crime".  Geometry as in
:mod:`beamhub.kernels.tomo.geometry`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from beamhub.kernels.backend import default_rng
from beamhub.kernels.io.atomic import atomic_output
from beamhub.kernels.io.dxchange import write_dx

__all__ = [
    "TomoScan",
    "shepp_logan_ellipsoids",
    "shepp_logan_3d",
    "project_phantom",
    "simulate_scan",
    "truth_path",
    "write_scan",
]

# value, semi-axes (a, b, c), centre (x0, y0, z0), rotation about z in degrees;
# lengths in units of half the field of view.
_SHEPP_LOGAN = np.array(
    [
        [1.0, 0.6900, 0.920, 0.810, 0.00, 0.0000, 0.00, 0.0],
        [-0.8, 0.6624, 0.874, 0.780, 0.00, -0.0184, 0.00, 0.0],
        [-0.2, 0.1100, 0.310, 0.220, 0.22, 0.0000, 0.00, -18.0],
        [-0.2, 0.1600, 0.410, 0.280, -0.22, 0.0000, 0.00, 18.0],
        [0.1, 0.2100, 0.250, 0.410, 0.00, 0.3500, -0.15, 0.0],
        [0.1, 0.0460, 0.046, 0.050, 0.00, 0.1000, 0.25, 0.0],
        [0.1, 0.0460, 0.046, 0.050, 0.00, -0.1000, 0.25, 0.0],
        [0.1, 0.0460, 0.023, 0.050, -0.08, -0.6050, 0.00, 0.0],
        [0.1, 0.0230, 0.023, 0.020, 0.00, -0.6060, 0.00, 0.0],
        [0.1, 0.0230, 0.046, 0.020, 0.06, -0.6050, 0.00, 0.0],
    ]
)


def shepp_logan_ellipsoids() -> np.ndarray:
    """The modified 3-D Shepp-Logan phantom as a table of ellipsoids.

    Returns
    -------
    numpy.ndarray, shape (10, 8), float64
        Columns: value, a, b, c, x0, y0, z0 (half field-of-view units), phi (degrees).
    """
    return _SHEPP_LOGAN.copy()


def _row_heights(rows: int, z_range: tuple[float, float]) -> np.ndarray:
    if rows == 1:
        return np.array([0.5 * (z_range[0] + z_range[1])])
    return np.linspace(z_range[0], z_range[1], rows)


def _slice_ellipses(z: float, n: int, scale: float, table: np.ndarray):
    """Ellipses (value, A, B, x0, y0, phi) in pixels cut by the plane at height ``z``."""
    half = scale * n / 2.0
    out = []
    for value, a, b, c, x0, y0, z0, phi in table:
        q = 1.0 - ((z - z0) / c) ** 2
        if q <= 0:
            continue
        r = np.sqrt(q)
        out.append((value, a * r * half, b * r * half, x0 * half, y0 * half, np.deg2rad(phi)))
    return out


def shepp_logan_3d(
    n: int, rows: int, z_range=(-0.25, 0.25), scale: float = 0.85, oversample: int = 4, table=None
) -> np.ndarray:
    """Slices of the 3-D Shepp-Logan phantom, each pixel averaged over sub-samples.

    Parameters
    ----------
    n : int
        Slice size (pixels); the phantom fills ``scale`` of it.
    rows : int
        Number of slices, evenly spaced over ``z_range`` (half field-of-view units).
    scale : float
        Phantom radius as a fraction of ``n / 2``.
    oversample : int
        Sub-samples per pixel and axis.
    table : array, shape (k, 8), optional
        Ellipsoids; default :func:`shepp_logan_ellipsoids`.

    Returns
    -------
    numpy.ndarray, shape (rows, n, n), float64
        Phantom values (1 in the skull), upright as usually drawn; pixel (i, j)
        centred at ``x = j - (n-1)/2, y = (n-1)/2 - i`` (y up, as in
        :mod:`beamhub.kernels.tomo.geometry`).
    """
    table = shepp_logan_ellipsoids() if table is None else np.asarray(table)
    sub = (np.arange(n * oversample) + 0.5) / oversample - 0.5 - (n - 1) / 2.0
    x, y = sub[None, :], -sub[:, None]  # y points up: row 0 is the top of the slice
    vol = np.zeros((rows, n, n))
    for r, z in enumerate(_row_heights(rows, z_range)):
        fine = np.zeros((n * oversample, n * oversample))
        for value, a, b, x0, y0, phi in _slice_ellipses(z, n, scale, table):
            xr = (x - x0) * np.cos(phi) + (y - y0) * np.sin(phi)
            yr = -(x - x0) * np.sin(phi) + (y - y0) * np.cos(phi)
            fine += value * (((xr / a) ** 2 + (yr / b) ** 2) <= 1.0)
        vol[r] = fine.reshape(n, oversample, n, oversample).mean(axis=(1, 3))
    return vol


def project_phantom(
    theta, n: int, rows: int, center: float, z_range=(-0.25, 0.25), scale: float = 0.85, oversample: int = 4, table=None
) -> np.ndarray:
    """Exact parallel-beam line integrals of the phantom, averaged over each detector pixel.

    Parameters
    ----------
    theta : array_like, shape (angles,), radians
    n : int
        Detector columns (and slice size).
    rows : int
        Detector rows (slices).
    center : float
        Rotation-axis column, pixels.
    z_range, scale, oversample, table :
        As :func:`shepp_logan_3d`.

    Returns
    -------
    numpy.ndarray, shape (angles, rows, n), float64
        Line integrals of the phantom values, in value x pixels: column ``k`` at
        angle ``theta`` integrates along ``x cos(theta) + y sin(theta) = k - center``
        (tomopy's orientation, :mod:`beamhub.kernels.tomo.geometry`).
    """
    table = shepp_logan_ellipsoids() if table is None else np.asarray(table)
    theta = np.asarray(theta, dtype=np.float64)
    s = (np.arange(n * oversample) + 0.5) / oversample - 0.5 - center  # (n*os,)
    cos, sin = np.cos(theta)[:, None], np.sin(theta)[:, None]
    proj = np.zeros((theta.size, rows, n))
    for r, z in enumerate(_row_heights(rows, z_range)):
        fine = np.zeros((theta.size, n * oversample))
        for value, a, b, x0, y0, phi in _slice_ellipses(z, n, scale, table):
            t = s[None, :] - (x0 * cos + y0 * sin)
            a2 = (a * np.cos(theta - phi)) ** 2 + (b * np.sin(theta - phi)) ** 2
            a2 = a2[:, None]
            fine += value * 2.0 * a * b * np.sqrt(np.clip(a2 - t * t, 0.0, None)) / a2
        proj[:, r, :] = fine.reshape(theta.size, n, oversample).mean(axis=-1)
    return proj


@dataclass
class TomoScan:
    """A simulated scan and its ground truth.

    Attributes
    ----------
    tomo : numpy.ndarray, shape (angles, rows, N), uint16
        Raw projections (counts), dark offset included.
    flat : numpy.ndarray, shape (n_flat, rows, N), uint16
        Open-beam fields.
    dark : numpy.ndarray, shape (n_dark, rows, N), uint16
        Dark fields.
    theta : numpy.ndarray, shape (angles,), float64, radians
    center : float
        True rotation-axis column (pixels).
    phantom : numpy.ndarray, shape (rows, N, N), float32
        True attenuation per pixel (1/pixel) of each slice.
    line_integrals : numpy.ndarray, shape (angles, rows, N), float32
        Noise-free ``-log`` transmission (what ``minus_log(normalize(...))`` estimates).
    stripe_columns : numpy.ndarray, int
        Columns whose gain was miscalibrated (they draw rings).
    """

    tomo: np.ndarray
    flat: np.ndarray
    dark: np.ndarray
    theta: np.ndarray
    center: float
    phantom: np.ndarray
    line_integrals: np.ndarray
    stripe_columns: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))


def simulate_scan(
    n: int = 128,
    rows: int = 4,
    n_angles: int = 180,
    angle_range: float = np.pi,
    center_offset: float = 0.0,
    photons: float = 2e4,
    noise: bool = True,
    dark_level: float = 100.0,
    n_flat: int = 10,
    n_dark: int = 10,
    stripe_columns: int = 0,
    stripe_strength: float = 0.05,
    max_attenuation: float = 2.0,
    oversample: int = 4,
    z_range=(-0.25, 0.25),
    seed=None,
) -> TomoScan:
    """A parallel-beam scan of the 3-D Shepp-Logan phantom with flats, darks and noise.

    Parameters
    ----------
    n : int
        Detector columns (the slice is ``n x n``).
    rows : int
        Detector rows (slices).
    n_angles : int
        Projections, evenly spaced over ``[0, angle_range)``.
    angle_range : float, radians
        ``pi`` (default) or ``2 pi``.
    center_offset : float, pixels
        Rotation axis minus the detector middle ``(n - 1) / 2``.
    photons : float
        Mean open-beam counts per pixel.
    noise : bool
        Poisson noise on projections and flats, Gaussian on darks.
    dark_level : float, counts
    n_flat, n_dark : int
        Number of flat and dark frames.
    stripe_columns : int
        How many detector columns get a gain error in the projections only
        (their flats are right), which draws rings.
    stripe_strength : float
        Standard deviation of those relative gain errors.
    max_attenuation : float
        Largest line integral through the phantom (transmission ``exp(-max)``).
    oversample : int
        Sub-samples per pixel for the detector and the ground-truth slices.
    z_range : (float, float)
        Heights of the first and last row, half field-of-view units.
    seed : int or numpy.random.Generator, optional

    Returns
    -------
    TomoScan
    """
    rng = default_rng(seed)
    theta = np.linspace(0.0, angle_range, n_angles, endpoint=False)
    center = (n - 1) / 2.0 + center_offset
    proj = project_phantom(theta, n, rows, center, z_range=z_range, oversample=oversample)
    unit = max_attenuation / max(proj.max(), 1e-12)  # 1/pixel per phantom value
    proj *= unit
    phantom = shepp_logan_3d(n, rows, z_range=z_range, oversample=oversample) * unit
    cols = np.arange(n)
    beam = photons * (1.0 + 0.1 * np.cos(2 * np.pi * cols / n))[None, :] * np.ones((rows, 1))
    gain = np.ones(n)
    bad = (
        np.sort(rng.choice(n, size=min(stripe_columns, n), replace=False)) if stripe_columns else np.zeros(0, dtype=int)
    )
    if bad.size:
        gain[bad] = 1.0 + stripe_strength * rng.standard_normal(bad.size)
    expected = beam[None] * gain[None, None, :] * np.exp(-proj)
    flat_expected = np.broadcast_to(beam, (n_flat, rows, n))
    if noise:
        counts = rng.poisson(expected).astype(np.float64)
        flats = rng.poisson(flat_expected).astype(np.float64)
        darks = dark_level + 2.0 * rng.standard_normal((n_dark, rows, n))
        counts += dark_level + 2.0 * rng.standard_normal(counts.shape)
        flats += dark_level + 2.0 * rng.standard_normal(flats.shape)
    else:
        counts = expected + dark_level
        flats = flat_expected + dark_level
        darks = np.full((n_dark, rows, n), dark_level)

    def u16(a):
        return np.clip(np.rint(a), 0, 65535).astype(np.uint16)

    return TomoScan(
        tomo=u16(counts),
        flat=u16(flats),
        dark=u16(darks),
        theta=theta,
        center=center,
        phantom=phantom.astype(np.float32),
        line_integrals=proj.astype(np.float32),
        stripe_columns=bad,
    )


def truth_path(scan_path: str | os.PathLike) -> Path:
    """Where :func:`write_scan` puts a scan's ground truth: ``scan.h5`` -> ``scan-truth.h5``."""
    scan_path = Path(scan_path)
    return scan_path.with_name(f"{scan_path.stem}-truth{scan_path.suffix or '.h5'}")


def write_scan(path: str | os.PathLike, scan: TomoScan, truth: bool = True) -> Path:
    """Write a simulated scan as Data Exchange HDF5, and its ground truth beside it.

    The scan file is exactly what a beamline writes (``/exchange/data``, ``data_white``,
    ``data_dark``, ``theta`` in radians), so ``beamhub tomo`` reads it like any other.  The
    truth goes into a second file (:func:`truth_path`) laid out like a reconstruction
    (``/exchange/data``: the phantom's slices, float32, 1/pixel) with the true rotation axis
    as the ``center`` attribute, so a notebook compares the two without special cases.
    Both writes are atomic.

    Parameters
    ----------
    path : str or os.PathLike
        The scan file to write (its folder must exist).
    scan : TomoScan
    truth : bool
        Also write the ground-truth file.

    Returns
    -------
    pathlib.Path
        The scan file.
    """
    path = Path(path)
    write_dx(path, scan.tomo, scan.flat, scan.dark, scan.theta)
    if truth:
        with atomic_output(truth_path(path)) as tmp, h5py.File(tmp, "w") as f:
            f.create_dataset("/exchange/data", data=scan.phantom)
            f["/exchange/data"].attrs["units"] = "1/pixel"
            f.attrs["center"] = scan.center
            f.attrs["stripe_columns"] = np.asarray(scan.stripe_columns, dtype=np.int64)
            f.attrs["scan"] = path.name
    return path
