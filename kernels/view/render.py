"""Pure functions from arrays to pictures: contrast, scale, colour, PNG, downsampling.

Nothing here knows about widgets, so every step is testable on its own and
the widgets in :mod:`beamhub.kernels.view` stay thin.  Functions take numpy or
cupy arrays; what they hand back for display is always numpy (slices and
thumbnails are small, and the browser needs bytes on the host).
"""

from __future__ import annotations

import io

import numpy as np

from beamhub.kernels import backend

__all__ = [
    "SCALES",
    "as_real",
    "colorize",
    "contrast_limits",
    "crop_to_content",
    "downsample",
    "png_bytes",
    "sample",
    "scaled",
    "upscale",
]

#: Intensity scales a viewer offers.
SCALES = ("linear", "log")

#: Voxels drawn from a volume to estimate its percentiles (a strided subset).
SAMPLE_VOXELS = 2_000_000


def as_real(volume):
    """A real array to look at: ``abs`` of a complex one, the array itself otherwise.

    Parameters
    ----------
    volume : numpy or cupy array, any shape

    Returns
    -------
    Array of the same module and shape, real dtype (complex -> its modulus).
    """
    xp = backend.array_module(volume)
    if xp.iscomplexobj(volume):
        return xp.abs(volume)
    return volume


def sample(volume, max_voxels: int = SAMPLE_VOXELS) -> np.ndarray:
    """A strided subset of ``volume`` of at most about ``max_voxels`` values, on the host.

    Parameters
    ----------
    volume : (...) numpy or cupy array
    max_voxels : int

    Returns
    -------
    numpy.ndarray, 1-D, float64: the finite values of the subset.
    """
    step = max(1, int(np.ceil((volume.size / max_voxels) ** (1.0 / max(volume.ndim, 1)))))
    sub = backend.to_numpy(as_real(volume[(slice(None, None, step),) * volume.ndim]))
    values = np.asarray(sub, dtype=np.float64).ravel()
    return values[np.isfinite(values)]


def log_floor(values: np.ndarray) -> float:
    """The smallest value a log scale shows: the 0.1th percentile of the positive values.

    Parameters
    ----------
    values : numpy.ndarray, any shape
        A sample of the data (see :func:`sample`).

    Returns
    -------
    float, > 0; 1.0 when nothing is positive.
    """
    positive = values[values > 0]
    if positive.size == 0:
        return 1.0
    return float(np.percentile(positive, 0.1))


def scaled(data, scale: str, floor: float = 1.0):
    """``data`` on the display scale: itself (linear) or ``log10(max(data, floor))`` (log).

    Parameters
    ----------
    data : numpy or cupy array, any shape, real
    scale : {"linear", "log"}
    floor : float
        Values below it are shown as it on a log scale (photon counts of zero,
        negative noise); from :func:`log_floor`.

    Returns
    -------
    Array of the same module and shape, float32.
    """
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {', '.join(SCALES)}, got {scale!r}")
    xp = backend.array_module(data)
    data = data.astype(xp.float32, copy=False)
    if scale == "log":
        return xp.log10(xp.maximum(data, xp.float32(floor)))
    return data


def contrast_limits(values: np.ndarray, percentiles=(1.0, 99.5)) -> tuple[float, float]:
    """Display limits at two percentiles of ``values``, never equal.

    Parameters
    ----------
    values : numpy.ndarray, any shape
        Values on the display scale (see :func:`scaled`); non-finite ones are ignored.
    percentiles : (float, float)
        Lower and upper percentile, 0-100.

    Returns
    -------
    (vmin, vmax) : floats with ``vmin < vmax``.
    """
    lo_p, hi_p = (float(p) for p in percentiles)
    if not 0.0 <= lo_p < hi_p <= 100.0:
        raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100, got {percentiles!r}")
    values = np.asarray(values, dtype=np.float64).ravel()
    values = values[np.isfinite(values)]
    if values.size == 0:
        return 0.0, 1.0
    vmin, vmax = (float(v) for v in np.percentile(values, [lo_p, hi_p]))
    if vmax <= vmin:  # flat data: open a window around it so it still draws
        pad = max(abs(vmin) * 1e-6, 1e-12)
        vmin, vmax = vmin - pad, vmax + pad
    return vmin, vmax


def colorize(image, vmin: float, vmax: float, cmap: str = "viridis") -> np.ndarray:
    """An RGB picture of a 2-D array through a matplotlib colour map.

    Parameters
    ----------
    image : (H, W) numpy or cupy array, real, on the display scale
    vmin, vmax : float
        Values mapped to the two ends of the colour map (clipped beyond).
    cmap : str
        Name of a matplotlib colour map ("viridis", "gray", "magma", ...).
        NaN pixels take the map's "bad" colour.

    Returns
    -------
    numpy.ndarray, (H, W, 3), uint8.
    """
    import matplotlib  # noqa: PLC0415 - keep `import beamhub.kernels.view.render` light

    image = backend.to_numpy(image)
    if image.ndim != 2:
        raise ValueError(f"colorize needs a 2-D image, got shape {image.shape}")
    try:
        colormap = matplotlib.colormaps[cmap]
    except KeyError:
        raise ValueError(f"unknown colour map {cmap!r}; try one of viridis, gray, magma, inferno") from None
    norm = (image.astype(np.float32) - np.float32(vmin)) / np.float32(vmax - vmin)
    np.clip(norm, 0.0, 1.0, out=norm)
    return colormap(norm, bytes=True)[..., :3]


def upscale(rgb: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement by an integer factor (sharp pixels in the browser).

    Parameters
    ----------
    rgb : (H, W, C) numpy.ndarray
    factor : int >= 1

    Returns
    -------
    numpy.ndarray, (H * factor, W * factor, C), same dtype.
    """
    if factor <= 1:
        return rgb
    return np.repeat(np.repeat(rgb, factor, axis=0), factor, axis=1)


def png_bytes(rgb: np.ndarray) -> bytes:
    """PNG encoding of an RGB(A) uint8 picture (fast, light compression).

    Parameters
    ----------
    rgb : (H, W, 3) or (H, W, 4) uint8 numpy.ndarray

    Returns
    -------
    bytes
    """
    from PIL import Image  # noqa: PLC0415 - pillow comes with matplotlib

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def downsample(volume, max_size: int) -> tuple[np.ndarray, tuple[int, ...]]:
    """Block-mean a volume so no axis is longer than ``max_size``, for the 3-D view.

    Each axis is binned by its own integer factor ``ceil(n / max_size)``; the
    trailing voxels that do not fill a whole block are dropped.  The binning
    runs on the array's own device; the result comes back to the host.

    Parameters
    ----------
    volume : (Z, Y, X) numpy or cupy array, real
    max_size : int
        Longest axis after binning, voxels (>= 1).

    Returns
    -------
    small : numpy.ndarray, (Z // fz, Y // fy, X // fx), float32
    factors : (fz, fy, fx) tuple of int
    """
    if max_size < 1:
        raise ValueError(f"max_size must be >= 1, got {max_size}")
    xp = backend.array_module(volume)
    factors = tuple(max(1, int(np.ceil(n / max_size))) for n in volume.shape)
    if all(f == 1 for f in factors):
        return backend.to_numpy(volume).astype(np.float32), factors
    cut = tuple(slice(0, (n // f) * f) for n, f in zip(volume.shape, factors))
    v = volume[cut].astype(xp.float32)
    shape = []
    for n, f in zip(v.shape, factors):
        shape += [n // f, f]
    small = v.reshape(shape).mean(axis=tuple(range(1, 2 * v.ndim, 2)))
    return backend.to_numpy(small).astype(np.float32), factors


def crop_to_content(volume: np.ndarray, floor: float, margin: int = 2):
    """The smallest box holding every voxel above ``floor``, plus a margin.

    The 3-D view's camera frames the whole box it is given; an object in a
    mostly empty box (a phased image in its oversampled box) would be a speck.

    Parameters
    ----------
    volume : (Z, Y, X) numpy.ndarray
    floor : float
        Voxels at or below it count as empty background.
    margin : int
        Voxels kept around the content on every side (clipped at the edges).

    Returns
    -------
    cropped : numpy.ndarray, a view of ``volume``
    origin : (z0, y0, x0) tuple of int
        Index in ``volume`` of the cropped box's first voxel.  The whole
        volume (origin 0) when nothing is above ``floor``.
    """
    above = np.argwhere(volume > floor)
    if above.size == 0:
        return volume, (0,) * volume.ndim
    lo = np.maximum(above.min(axis=0) - margin, 0)
    hi = np.minimum(above.max(axis=0) + margin + 1, volume.shape)
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
    return volume[box], tuple(int(a) for a in lo)
