"""Pre-processing of projections: flat/dark correction, -log, ring (stripe) removal.

All functions take projections as tomopy lays them out, ``(angles, rows,
columns)``, accept numpy or cupy arrays and return the same kind.
"""

from __future__ import annotations

import numpy as np

from beamhub.kernels import backend

STRIPE_METHODS = ("sorting",)


def _ndimage(xp):
    if xp is np:
        import scipy.ndimage as nd  # noqa: PLC0415
    else:  # pragma: no cover - GPU only
        import cupyx.scipy.ndimage as nd  # noqa: PLC0415
    return nd


def normalize(arr, flat, dark, cutoff: float | None = None, ncore=None, out=None):
    """Flat-field correction: ``(arr - dark) / (flat - dark)``.

    Parameters
    ----------
    arr : array, shape (angles, rows, N), counts
        Raw projections.
    flat : array, shape (n_flat, rows, N), counts
        White (open-beam) fields; averaged over the first axis.
    dark : array, shape (n_dark, rows, N), counts
        Dark fields; averaged over the first axis.
    cutoff : float, optional
        Upper limit applied to the result.
    ncore, out :
        Accepted for tomopy compatibility; ``out``, when given, receives the result.

    Returns
    -------
    array of the input's module, shape (angles, rows, N), float32
        Transmission (1 where nothing absorbs).  Where ``flat <= dark`` the
        denominator is clamped to 1e-6, as tomopy does.
    """
    xp = backend.array_module(arr)
    flat_m = xp.mean(xp.asarray(flat, dtype=xp.float32), axis=0)
    dark_m = xp.mean(xp.asarray(dark, dtype=xp.float32), axis=0)
    if flat_m.shape != arr.shape[1:] or dark_m.shape != arr.shape[1:]:
        raise ValueError(
            f"flat {tuple(flat.shape)} and dark {tuple(dark.shape)} do not match projections "
            f"{tuple(arr.shape)} in (rows, columns)"
        )
    denom = xp.maximum(flat_m - dark_m, np.float32(1e-6))
    res = (xp.asarray(arr, dtype=xp.float32) - dark_m) / denom
    if cutoff is not None:
        res = xp.minimum(res, np.float32(cutoff))
    if out is not None:
        out[...] = res
        return out
    return res


def minus_log(arr, ncore=None, out=None):
    """``-log(arr)``: transmission to line integrals (attenuation x length, in pixels).

    Non-positive values (dead pixels, noise below dark) are clamped to 1e-6
    first, so the result is finite.

    Parameters
    ----------
    arr : array, any shape, float
        Transmission from :func:`normalize`.

    Returns
    -------
    array of the input's module, same shape, float32
    """
    xp = backend.array_module(arr)
    res = -xp.log(xp.maximum(xp.asarray(arr, dtype=xp.float32), np.float32(1e-6)))
    if out is not None:
        out[...] = res
        return out
    return res


def remove_stripe_based_sorting(tomo, size: int | None = None, dim: int = 1, ncore=None):
    """Vo's sorting-based stripe removal (Vo, Atwood & Drakopoulos 2018, algorithm 3).

    In each sinogram every column is sorted along the angles, the sorted
    image is median-filtered across columns (which removes the column offsets
    that draw rings while keeping the object), and the sort is undone.

    Parameters
    ----------
    tomo : array, shape (angles, rows, N), float
        Line integrals (after ``minus_log``).
    size : int, optional
        Median window across columns (odd); default ``max(3, N // 100) | 1``
        (21 at 2048 columns).  Wider removes wider stripes but blurs fine
        detail of the object.
    dim : {1, 2}
        1: filter across columns only; 2: also 3 angles deep.

    Returns
    -------
    array of the input's module, shape (angles, rows, N), float32
    """
    xp = backend.array_module(tomo)
    n = tomo.shape[-1]
    size = int(size or (max(3, n // 100) | 1))
    sino = xp.moveaxis(xp.asarray(tomo, dtype=xp.float32), 0, 1)  # (rows, angles, N)
    order = xp.argsort(sino, axis=1)
    ranked = xp.take_along_axis(sino, order, axis=1)
    footprint = (1, 3 if dim == 2 else 1, size)
    ranked = _ndimage(xp).median_filter(ranked, size=footprint, mode="reflect")
    result = xp.empty_like(sino)
    xp.put_along_axis(result, order, ranked, axis=1)
    return xp.ascontiguousarray(xp.moveaxis(result, 1, 0))


def remove_stripe(tomo, method: str = "sorting", size: int | None = None, ncore=None):
    """Remove the stripes in sinograms that reconstruct as rings.

    Parameters
    ----------
    tomo : array, shape (angles, rows, N), float
        Line integrals (after ``minus_log``).
    method : {"sorting"}
        ``sorting``: :func:`remove_stripe_based_sorting` (Vo's method: robust,
        no parameters to tune beyond the window).
    size : int, optional
        Median window across columns.

    Returns
    -------
    array of the input's module, shape (angles, rows, N), float32
    """
    if method == "sorting":
        return remove_stripe_based_sorting(tomo, size=size)
    raise ValueError(f"method={method!r}: choose one of {', '.join(STRIPE_METHODS)}")
