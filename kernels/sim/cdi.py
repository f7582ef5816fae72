"""Coherent diffraction (CDI) patterns of a known object, for phasing tests, demos and benchmarks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from beamhub.kernels import backend

__all__ = ["CDIPattern", "random_object", "simulate_cdi"]


def random_object(shape: tuple[int, ...], *, n_blobs: int | None = None, seed=None) -> np.ndarray:
    """A smooth, positive random object filling a ball inscribed in a box of ``shape``.

    A sum of Gaussian blobs of random position, width and weight, cut to the
    ball of diameter ``min(shape)`` and rescaled to a maximum of 1.

    Parameters
    ----------
    shape : tuple of int
        2 or 3 axes, pixels.
    n_blobs : int, optional
        Number of blobs (default ``4 * min(shape)``).
    seed : int or numpy Generator, optional

    Returns
    -------
    obj : ``shape`` float64 ndarray, values in [0, 1], zero outside the ball.
    """
    rng = backend.default_rng(seed)
    shape = tuple(int(n) for n in shape)
    if len(shape) not in (2, 3) or min(shape) < 4:
        raise ValueError(f"shape must have 2 or 3 axes of at least 4 pixels, got {shape}")
    radius = min(shape) / 2.0
    grids = np.ogrid[tuple(slice(0, n) for n in shape)]
    centre = [(n - 1) / 2.0 for n in shape]
    r2 = sum((g - c) ** 2 for g, c in zip(grids, centre))
    n_blobs = n_blobs or 4 * min(shape)
    obj = np.zeros(shape)
    for _ in range(n_blobs):
        # A uniform point in the ball, 80 % of the radius so blobs stay inside.
        direction = rng.normal(size=len(shape))
        direction /= np.linalg.norm(direction)
        dist = 0.8 * radius * rng.random() ** (1.0 / len(shape))
        pos = [c + dist * d for c, d in zip(centre, direction)]
        width = radius * rng.uniform(0.08, 0.3)
        d2 = sum((g - p) ** 2 for g, p in zip(grids, pos))
        obj += rng.uniform(0.3, 1.0) * np.exp(-d2 / (2 * width**2))
    obj[r2 > radius**2] = 0.0
    return obj / obj.max()


@dataclass
class CDIPattern:
    """A simulated diffraction pattern with its ground truth.

    Attributes
    ----------
    intensity : (*shape) float64 ndarray
        Photons per pixel, q = 0 at ``n // 2`` on every axis; -1 where the
        beamstop hides the pixel (Dragonfly's convention for unknown).
    mask : (*shape) bool ndarray
        True where the intensity is unknown.
    object : (*shape) float64 ndarray
        The object in the oversampled box, centred at ``n // 2`` and scaled so
        that ``|fftn(object)|**2`` is the noise-free intensity (in FFT order).
    support : (*shape) bool ndarray
        Where ``object`` is non-zero.
    photons : float
        Expected total photon count of the pattern (inf without noise).
    """

    intensity: np.ndarray
    mask: np.ndarray
    object: np.ndarray
    support: np.ndarray
    photons: float


def simulate_cdi(
    obj, *, oversampling: float = 2.0, photons: float | None = None, beamstop: float = 0.0, seed=None
) -> CDIPattern:
    """Far-field diffraction of ``obj`` with oversampling, Poisson noise and a beamstop.

    Parameters
    ----------
    obj : (...) real or complex array, 2 or 3 axes
        Object in its own box (e.g. from :func:`random_object`).
    oversampling : float
        Linear oversampling: the pattern has ``ceil(oversampling * n)`` pixels
        per axis (>= 2 for a unique solution).
    photons : float, optional
        Expected total photon count; the pattern is then a Poisson sample.
        None gives the exact, noise-free intensity.
    beamstop : float
        Radius in Fourier pixels: pixels closer than this to q = 0 are unknown.
    seed : int or numpy Generator, optional

    Returns
    -------
    CDIPattern
    """
    rng = backend.default_rng(seed)
    obj = backend.to_numpy(obj)
    if obj.ndim not in (2, 3):
        raise ValueError(f"object must have 2 or 3 axes, got shape {obj.shape}")
    if oversampling < 1:
        raise ValueError(f"oversampling must be >= 1, got {oversampling}")
    shape = tuple(int(np.ceil(oversampling * n)) for n in obj.shape)
    box = np.zeros(shape, dtype=np.result_type(obj.dtype, np.float64))
    corner = tuple(n // 2 - m // 2 for n, m in zip(shape, obj.shape))
    box[tuple(slice(c, c + m) for c, m in zip(corner, obj.shape))] = obj
    exact = np.abs(np.fft.fftn(box)) ** 2
    if photons is not None:
        if photons <= 0:
            raise ValueError(f"photons must be positive, got {photons}")
        scale = photons / exact.sum()
        exact *= scale
        box = box * np.sqrt(scale)
        intensity = rng.poisson(exact).astype(np.float64)
        total = float(photons)
    else:
        intensity = exact
        total = float("inf")
    intensity = np.fft.fftshift(intensity)
    grids = np.ogrid[tuple(slice(0, n) for n in shape)]
    r2 = sum((g - n // 2) ** 2 for g, n in zip(grids, shape))
    mask = r2 < beamstop**2 if beamstop > 0 else np.zeros(shape, dtype=bool)
    intensity[mask] = -1.0
    return CDIPattern(intensity=intensity, mask=mask, object=box, support=box != 0, photons=total)
