"""Phase retrieval transfer function: how reproducibly each resolution shell was phased."""

from __future__ import annotations

import numpy as np

from beamhub.kernels import backend

__all__ = ["prtf", "shell_average"]


def shell_average(values, known=None) -> tuple[np.ndarray, np.ndarray]:
    """Average a centred Fourier-space array over spherical (or circular) shells 1 pixel wide.

    Parameters
    ----------
    values : (...) real array, q = 0 at index ``n // 2`` on every axis
    known : (...) bool array or None
        Pixels to include (e.g. those with a measured intensity).

    Returns
    -------
    average : (n_shells,) float64 ndarray
        Mean per shell; NaN for a shell with no included pixel.
    radius : (n_shells,) float64 ndarray
        Shell radius in Fourier pixels (0, 1, ..., ``min(shape) // 2 - 1``).
    """
    values = backend.to_numpy(values).astype(np.float64)
    shape = values.shape
    grids = np.ogrid[tuple(slice(0, n) for n in shape)]
    r = np.sqrt(sum((g - n // 2) ** 2 for g, n in zip(grids, shape)))
    index = np.rint(r).astype(np.int64)
    n_shells = min(shape) // 2
    keep = index < n_shells
    if known is not None:
        keep &= backend.to_numpy(known).astype(bool)
    sums = np.bincount(index[keep], weights=values[keep], minlength=n_shells)
    counts = np.bincount(index[keep], minlength=n_shells)
    with np.errstate(invalid="ignore", divide="ignore"):
        average = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return average, np.arange(n_shells, dtype=np.float64)


def prtf(images, known=None) -> tuple[np.ndarray, np.ndarray]:
    """PRTF of aligned solutions: ``|sum_k F_k| / sum_k |F_k|``, averaged over shells.

    1 where every solution has the same Fourier phase, falling towards
    ``1/sqrt(K)`` where the phases are random.

    Parameters
    ----------
    images : (K, ...) array
        Aligned real-space solutions (translation, twin and global phase
        removed, e.g. by :func:`beamhub.kernels.phasing.align.register`).
    known : (...) bool array or None
        Centred mask of measured Fourier pixels to include.

    Returns
    -------
    prtf : (n_shells,) float64 ndarray
    radius : (n_shells,) float64 ndarray
        Shell radius in Fourier pixels.
    """
    xp = backend.array_module(images)
    axes = tuple(range(1, images.ndim))
    cdtype = np.result_type(images.dtype, np.complex64)
    spectra = backend.fftn(images.astype(cdtype), axes=axes)
    coherent = xp.abs(spectra.sum(axis=0))
    incoherent = xp.abs(spectra).sum(axis=0)
    tiny = np.finfo(np.float32).tiny
    ratio = backend.fftshift(coherent / xp.maximum(incoherent, tiny))
    return shell_average(ratio, known)
