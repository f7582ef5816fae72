"""Orthogonal Daubechies wavelets and a periodic 2-D wavelet transform, enough for stripe removal.

The Fourier-wavelet ring filter (:func:`~beamhub.kernels.tomo.prep.remove_stripe_fw`)
needs a multi-level 2-D discrete wavelet transform and its exact inverse.
PyWavelets is not a dependency, so this module builds the Daubechies filters
by spectral factorisation (Daubechies 1992, ch. 6) and applies them with
periodic boundaries: each level is then an orthogonal transform, so the
inverse is its transpose and reconstruction is exact to rounding.  Arrays may
carry any leading axes (rows of a stack); the transform acts on the last two.
"""

from __future__ import annotations

import functools
from math import comb

import numpy as np

from beamhub.kernels import backend


@functools.lru_cache(maxsize=16)
def daubechies(p: int) -> np.ndarray:
    """Low-pass filter of the Daubechies wavelet with ``p`` vanishing moments (``db<p>``).

    Parameters
    ----------
    p : int
        Vanishing moments, 1 (Haar) to 20.

    Returns
    -------
    numpy.ndarray, shape (2 p,), float64
        Orthonormal filter: sums to sqrt(2), unit norm, orthogonal to its even shifts.
    """
    if not 1 <= int(p) <= 20:
        raise ValueError(f"Daubechies wavelet db{p}: choose 1 to 20 vanishing moments")
    p = int(p)
    if p == 1:
        return np.full(2, 1 / np.sqrt(2))
    # P(y) = sum_k C(p-1+k, k) y^k with y = sin^2(w/2); each root y_j gives the
    # z-root inside the unit circle of z + 1/z = 2 - 4 y_j (minimum phase).
    y_roots = np.roots([comb(p - 1 + k, k) for k in range(p)][::-1])
    q = np.poly1d([1.0])
    for y in y_roots:
        part = 2 * np.sqrt(y * (y - 1))
        const = 1 - 2 * y
        z = const + part
        if abs(z) > 1:
            z = const - part
        q = q * np.poly1d([1, -z])
    h = np.real((np.poly1d([1.0, 1.0]) ** p * q).c)
    return h / h.sum() * np.sqrt(2)


def _highpass(h: np.ndarray) -> np.ndarray:
    return h[::-1] * (-1.0) ** np.arange(h.size)


def _analyse(x: np.ndarray, h: np.ndarray, axis: int):
    """One periodic analysis step along ``axis`` (even length): (approximation, detail)."""
    xp = backend.array_module(x)
    x = xp.moveaxis(x, axis, -1)
    n = x.shape[-1]
    idx = (2 * np.arange(n // 2)[:, None] + np.arange(h.size)[None, :]) % n  # (n/2, L)
    taps = x[..., xp.asarray(idx)]
    a = taps @ xp.asarray(h, dtype=x.dtype)
    d = taps @ xp.asarray(_highpass(h), dtype=x.dtype)
    return xp.moveaxis(a, -1, axis), xp.moveaxis(d, -1, axis)


def _synthesise(a: np.ndarray, d: np.ndarray, h: np.ndarray, axis: int) -> np.ndarray:
    """Inverse (transpose) of :func:`_analyse`."""
    xp = backend.array_module(a)
    a = xp.moveaxis(a, axis, -1)
    d = xp.moveaxis(d, axis, -1)
    half = a.shape[-1]
    n = 2 * half
    g = _highpass(h)
    x = xp.zeros(a.shape[:-1] + (n,), dtype=a.dtype)
    base = 2 * np.arange(half)
    for k in range(h.size):
        # for one k the indices are distinct, so += does not lose updates
        x[..., xp.asarray((base + k) % n)] += a * a.dtype.type(h[k]) + d * d.dtype.type(g[k])
    return xp.moveaxis(x, -1, axis)


def wavedec2(x: np.ndarray, h: np.ndarray, level: int):
    """Multi-level periodic 2-D DWT over the last two axes.

    Parameters
    ----------
    x : numpy.ndarray or cupy.ndarray, shape (..., M, N), float
        Both M and N divisible by ``2**level``.
    h : numpy.ndarray, shape (L,)
        Orthonormal low-pass filter (:func:`daubechies`).
    level : int

    Returns
    -------
    approximation : numpy.ndarray, shape (..., M / 2**level, N / 2**level)
    details : list of (horizontal, vertical, diagonal) per level, finest last
        ``vertical`` is high-pass along the last axis and low-pass along the
        one before: where vertical lines (sinogram stripes) go.
    """
    details = []
    a = x
    for _ in range(level):
        lo, hi = _analyse(a, h, -2)
        ll, lh = _analyse(lo, h, -1)
        hl, hh = _analyse(hi, h, -1)
        details.append((hl, lh, hh))
        a = ll
    return a, details[::-1]


def waverec2(a: np.ndarray, details, h: np.ndarray) -> np.ndarray:
    """Inverse of :func:`wavedec2` (exact to rounding)."""
    for hl, lh, hh in details:
        lo = _synthesise(a, lh, h, -1)
        hi = _synthesise(hl, hh, h, -1)
        a = _synthesise(lo, hi, h, -2)
    return a
