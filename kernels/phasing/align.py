"""Aligning phasing solutions: the ambiguities a Fourier modulus cannot resolve.

A solution is only defined up to a translation (periodic), the twin
``conj(x(-r))`` (centrosymmetric inversion) and a global phase factor.  These
functions undo all three against a reference, centre a solution in its box and
measure the error against a known object.
"""

from __future__ import annotations

import numpy as np

from beamhub.kernels import backend

__all__ = ["aligned_error", "center", "circular_center", "register", "twin"]


def circular_center(image) -> tuple[float, ...]:
    """Centre of mass of ``|image|`` on a periodic grid, in pixels, one value per axis.

    The circular mean (the phase of the first Fourier coefficient of each axis
    projection) is used so an object wrapped across the box edge still gets
    one well-defined centre.
    """
    xp = backend.array_module(image)
    mod = xp.abs(image).astype(np.float64)
    centre = []
    for axis, n in enumerate(image.shape):
        others = tuple(a for a in range(image.ndim) if a != axis)
        profile = mod.sum(axis=others) if others else mod
        phase = xp.exp(2j * np.pi * xp.arange(n) / n)
        angle = float(xp.angle(xp.sum(profile * phase)))
        centre.append((angle % (2 * np.pi)) * n / (2 * np.pi))
    return tuple(centre)


def center(image, *companions):
    """Roll ``image`` (and each array in ``companions`` alike) so its centre of mass is at ``n // 2``.

    Parameters
    ----------
    image : (...) array
    companions : arrays of the same shape (e.g. the support)

    Returns
    -------
    tuple
        The rolled ``image`` followed by the rolled companions.
    """
    xp = backend.array_module(image)
    shift = tuple(int(round(n // 2 - c)) for n, c in zip(image.shape, circular_center(image)))
    axes = tuple(range(image.ndim))
    return tuple(xp.roll(a, shift, axis=axes) for a in (image, *companions))


def twin(image):
    """The twin image ``conj(x(-r))`` (about index 0, which alignment makes irrelevant)."""
    xp = backend.array_module(image)
    axes = tuple(range(image.ndim))
    return xp.roll(xp.flip(xp.conj(image), axis=axes), 1, axis=axes)


def _best_shift(ref_spectrum, image):
    """Integer shift maximising the cross-correlation of ``image`` with the reference, and the peak."""
    xp = backend.array_module(image)
    spectrum = backend.fftn(image.astype(ref_spectrum.dtype))
    corr = xp.abs(backend.ifftn(ref_spectrum * xp.conj(spectrum), overwrite_x=True))
    peak = int(xp.argmax(corr))
    index = np.unravel_index(peak, image.shape)
    return tuple(int(i) for i in index), float(corr.reshape(-1)[peak])


def register(reference, image, *companions, allow_twin: bool = True):
    """Align ``image`` to ``reference``: translation, twin and global phase.

    Parameters
    ----------
    reference, image : (...) complex or real arrays of one shape
    companions : arrays of the same shape moved with ``image`` (e.g. its support);
        they are flipped with the twin but not conjugated or phase-shifted.
    allow_twin : bool
        Consider the twin ``conj(image(-r))`` too and keep whichever fits better.

    Returns
    -------
    aligned : complex array
        ``image`` translated (periodically, whole pixels), possibly twinned and
        multiplied by the unit phase factor that best matches ``reference``.
    companions : list of arrays
        Each companion moved the same way.
    info : dict
        ``shift`` (tuple of int), ``twin`` (bool), ``phase`` (radians).
    """
    xp = backend.array_module(image)
    cdtype = np.result_type(image.dtype, reference.dtype, np.complex64)
    ref_spectrum = backend.fftn(reference.astype(cdtype))
    candidates = [(image, companions, False)]
    if allow_twin:
        twinned = tuple(_flip(c) for c in companions)
        candidates.append((twin(image), twinned, True))
    best = None
    for cand, comps, is_twin in candidates:
        shift, peak = _best_shift(ref_spectrum, cand)
        if best is None or peak > best[0]:
            best = (peak, cand, comps, is_twin, shift)
    _, cand, comps, is_twin, shift = best
    axes = tuple(range(image.ndim))
    aligned = xp.roll(cand.astype(cdtype), shift, axis=axes)
    phase = float(xp.angle(xp.vdot(aligned, reference.astype(cdtype))))
    aligned *= np.exp(1j * phase).astype(cdtype)
    moved = [xp.roll(c, shift, axis=axes) for c in comps]
    return aligned, moved, {"shift": shift, "twin": is_twin, "phase": phase}


def _flip(array):
    xp = backend.array_module(array)
    axes = tuple(range(array.ndim))
    return xp.roll(xp.flip(array, axis=axes), 1, axis=axes)


def aligned_error(image, truth, *, allow_twin: bool = True) -> float:
    """Relative error of a solution against the known object, after alignment.

    ``image`` is registered to ``truth`` (:func:`register`), then scaled by the
    least-squares complex factor ``c``; the result is
    ``||truth - c * aligned|| / ||truth||`` (0 is perfect, 1 is no better than zero).

    Parameters
    ----------
    image, truth : (...) arrays of one shape (numpy or cupy)
    allow_twin : bool
        Accept the twin as a correct solution.

    Returns
    -------
    float
    """
    xp = backend.array_module(image)
    truth = backend.asarray(truth, xp)
    aligned, _, _ = register(truth, image, allow_twin=allow_twin)
    truth_c = truth.astype(aligned.dtype)
    denom = float(xp.vdot(aligned, aligned).real)
    scale = complex(xp.vdot(aligned, truth_c)) / denom if denom > 0 else 0.0
    residual = truth_c - scale * aligned
    return float(xp.linalg.norm(residual) / xp.linalg.norm(truth_c))
