"""Pre-processing of projections: flat/dark correction, -log, ring (stripe) removal.

All functions take projections as tomopy lays them out, ``(angles, rows,
columns)``, accept numpy or cupy arrays and return the same kind.
"""

from __future__ import annotations

import numpy as np

from beamhub.kernels import backend
from beamhub.kernels.tomo.wavelet import daubechies, wavedec2, waverec2

STRIPE_METHODS = ("sorting", "fw")


def _ndimage(xp):
    if xp is np:
        import scipy.ndimage as nd  # noqa: PLC0415 - the array's backend picks the ndimage module
    else:  # pragma: no cover - GPU only
        import cupyx.scipy.ndimage as nd  # noqa: PLC0415 - optional dependency: cupy (GPU)
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


def default_fw_level(n_columns: int) -> int:
    """Decomposition levels :func:`remove_stripe_fw` uses by default: ``log2(N) - 6`` in [1, 4].

    Level ``L`` holds column structure about ``2**L`` pixels wide.  Each level
    also damps the parts of the object that look like stripes (edges of
    features centred on the axis, the turning points of every trace), so the
    default stays shallow: 1 up to 255 columns, 4 from 1024.  tomopy's default
    (``log2`` of the whole sinogram) removes far more of the object.
    """
    return int(np.clip(int(np.log2(max(n_columns, 2))) - 6, 1, 4))


def remove_stripe_fw(
    tomo, level: int | None = None, wname: str = "db5", sigma: float = 1.0, pad: bool = True, ncore=None, nchunk=None
):
    """Fourier-wavelet ring removal (Münch, Trtik, Marone & Stampanoni, Opt. Express 2009).

    Each sinogram is split by a 2-D wavelet transform; stripes (constant along
    the angles, narrow across the columns) land in the vertical detail
    coefficients of every level, where they are the low frequencies along the
    angle axis.  Those are damped by ``1 - exp(-k^2 / (2 sigma^2))`` (``k`` the
    angle-axis frequency index) and the sinogram is rebuilt.  tomopy's name and
    parameters; the defaults are safer than tomopy's (``level`` there grows to
    ``log2`` of the whole sinogram, ``sigma`` is 2): anything in the object
    that is locally constant along the angles -- rings centred on the axis, the
    turning points of off-axis traces -- is damped together with the stripes,
    more with every level and a wider ``sigma``.  Prefer
    :func:`remove_stripe_based_sorting` for sharp stripes of single columns;
    use this for wide, smooth ones, raising ``level`` until they go.

    Parameters
    ----------
    tomo : array, shape (angles, rows, N), float
        Line integrals (after ``minus_log``).
    level : int, optional
        Decomposition levels; default :func:`default_fw_level` (1 at 128
        columns, 4 at 2048).  Level ``L`` removes stripes up to about ``2**L``
        columns wide (and a stripe's energy spread over coarser scales).
    wname : str
        Daubechies wavelet ``db1`` .. ``db20`` (tomopy's default ``db5``).
    sigma : float
        Damping width along the angles, in frequency samples (default 1;
        tomopy's 2): larger removes stripes that vary more along the scan, and
        more of the object.
    pad : bool
        Mirror-pad the columns by N/8 on each side (and both axes to a multiple
        of ``2**level``) so the periodic transform sees no edge.
    ncore, nchunk :
        Accepted for tomopy compatibility; all rows are filtered at once.

    Returns
    -------
    array of the input's module, shape (angles, rows, N), float32
    """

    xp = backend.array_module(tomo)
    if tomo.ndim != 3:
        raise ValueError(f"remove_stripe_fw expects (angles, rows, columns), got shape {tuple(tomo.shape)}")
    name = str(wname).lower()
    if not (name.startswith("db") and name[2:].isdigit()):
        raise ValueError(f"wname={wname!r}: choose a Daubechies wavelet 'db1' .. 'db20'")
    h = daubechies(int(name[2:]))
    if sigma <= 0:
        raise ValueError(f"sigma={sigma}: must be positive")
    n_angles, _, n = tomo.shape
    level = default_fw_level(n) if level is None else int(level)
    if not 1 <= level <= int(np.log2(min(n_angles, n))):
        raise ValueError(
            f"level={level}: choose 1 to {int(np.log2(min(n_angles, n)))} for {n_angles} angles x {n} columns"
        )
    step = 2**level
    sino = xp.moveaxis(xp.asarray(tomo, dtype=xp.float32), 0, 1)  # (rows, angles, N)
    side = n // 8 if pad else 0
    width = -(-(n + 2 * side) // step) * step
    height = -(-n_angles // step) * step
    left = side + (width - n - 2 * side) // 2
    mode = "reflect" if pad else "wrap"
    padded = xp.pad(sino, ((0, 0), (0, height - n_angles), (left, width - n - left)), mode=mode)
    approx, details = wavedec2(padded, h, level)
    damped = []
    for hl, lh, hh in details:
        k = np.fft.fftfreq(lh.shape[-2]) * lh.shape[-2]
        damp = xp.asarray((1.0 - np.exp(-(k**2) / (2.0 * sigma**2))).astype(np.float32))
        spec = xp.fft.fft(lh, axis=-2)
        lh = xp.real(xp.fft.ifft(spec * damp[:, None], axis=-2)).astype(xp.float32)
        damped.append((hl, lh, hh))
    out = waverec2(approx, damped, h)[:, :n_angles, left : left + n]
    return xp.ascontiguousarray(xp.moveaxis(out, 1, 0))


def remove_stripe(tomo, method: str = "sorting", size: int | None = None, ncore=None):
    """Remove the stripes in sinograms that reconstruct as rings.

    Parameters
    ----------
    tomo : array, shape (angles, rows, N), float
        Line integrals (after ``minus_log``).
    method : {"sorting", "fw"}
        ``sorting``: :func:`remove_stripe_based_sorting` (Vo's method: robust,
        no parameters to tune beyond the window; best on sharp, full or
        partial stripes from single columns).  ``fw``:
        :func:`remove_stripe_fw` with its defaults (Münch's Fourier-wavelet
        filter: also removes wide, smooth stripes; may dim features centred on
        the axis).
    size : int, optional
        Median window across columns (``sorting`` only).

    Returns
    -------
    array of the input's module, shape (angles, rows, N), float32
    """
    if method == "sorting":
        return remove_stripe_based_sorting(tomo, size=size)
    if method == "fw":
        return remove_stripe_fw(tomo)
    raise ValueError(f"method={method!r}: choose one of {', '.join(STRIPE_METHODS)}")
