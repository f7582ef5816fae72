"""Frequency filters for filtered backprojection and gridrec (tomopy's names).

The ramp is built the way Kak & Slaney recommend (and scikit-image's
``iradon`` does): from the band-limited spatial-domain Ram-Lak kernel on the
padded length, so the zero frequency keeps its proper small positive weight
and reconstructions carry no DC offset or cupping.
"""

from __future__ import annotations

import numpy as np

FILTER_NAMES = ("ramlak", "shepp", "cosine", "hann", "hamming", "parzen", "none")


def ramp_filter(n_padded: int) -> np.ndarray:
    """The discrete ramp ``|f|`` (cycles per pixel) for a padded projection length.

    Parameters
    ----------
    n_padded : int
        Length of the zero-padded projection (even).

    Returns
    -------
    numpy.ndarray, shape (n_padded,), float64
        Filter in ``numpy.fft.fftfreq`` order; about ``|f|`` with ``f`` in
        cycles/pixel (0.5 at Nyquist) and a small positive value at f = 0.
    """
    n = np.concatenate((np.arange(1, n_padded // 2 + 1, 2), np.arange(n_padded // 2 - 1, 0, -2)))
    h = np.zeros(n_padded)
    h[0] = 0.25
    h[1::2] = -1.0 / (np.pi * n) ** 2
    return np.real(np.fft.fft(h))  # = 2*real(fft)/2: |f| in cycles/pixel


def window(filter_name: str, freq: np.ndarray) -> np.ndarray:
    """Apodisation window of ``filter_name`` at frequencies ``freq``.

    Parameters
    ----------
    filter_name : str
        One of ``ramlak`` (and its alias ``none``: no window), ``shepp``
        (sinc), ``cosine``, ``hann``, ``hamming``, ``parzen``.
    freq : numpy.ndarray, float
        Frequencies in cycles/pixel, ``|freq| <= 0.5``.

    Returns
    -------
    numpy.ndarray, same shape as ``freq``, float64
    """
    f = np.abs(np.asarray(freq, dtype=np.float64))
    name = (filter_name or "ramlak").lower()
    if name in ("ramlak", "none"):
        return np.ones_like(f)
    if name == "shepp":
        return np.sinc(f)
    if name == "cosine":
        return np.cos(np.pi * f)
    if name == "hann":
        return 0.5 * (1.0 + np.cos(2.0 * np.pi * f))
    if name == "hamming":
        return 0.54 + 0.46 * np.cos(2.0 * np.pi * f)
    if name == "parzen":
        u = np.clip(f / 0.5, 0.0, 1.0)
        return np.where(u <= 0.5, 1.0 - 6.0 * u**2 + 6.0 * u**3, 2.0 * (1.0 - u) ** 3)
    raise ValueError(f"unknown filter_name {filter_name!r}; choose one of {', '.join(FILTER_NAMES)}")


def fourier_filter(filter_name: str, n_padded: int) -> np.ndarray:
    """Ramp times window for a padded projection length, in ``fftfreq`` order.

    Parameters
    ----------
    filter_name : str
        See :func:`window`.
    n_padded : int
        Padded projection length.

    Returns
    -------
    numpy.ndarray, shape (n_padded,), float64
    """
    return ramp_filter(n_padded) * window(filter_name, np.fft.fftfreq(n_padded))
