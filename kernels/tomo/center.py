"""Finding the rotation axis: entropy minimisation (tomopy's ``find_center``) and Vo's method.

Both return the axis as a column position in pixels (sub-pixel), the
convention :func:`~beamhub.kernels.tomo.recon.recon` takes.  They look at one
sinogram, so they run on the CPU whatever array they are given.
"""

from __future__ import annotations

import numpy as np
import scipy.fft
import scipy.ndimage

from beamhub.kernels import backend
from beamhub.kernels.tomo._center_cpu import masked_histogram
from beamhub.kernels.tomo.geometry import default_center
from beamhub.kernels.tomo.gridrec import gridrec


def _sinogram(tomo, ind, sinogram_order: bool) -> np.ndarray:
    if tomo.ndim == 2:
        return np.asarray(backend.to_numpy(tomo), dtype=np.float32)
    n_rows = tomo.shape[0] if sinogram_order else tomo.shape[1]
    ind = n_rows // 2 if ind is None else int(ind)
    arr = tomo[ind] if sinogram_order else tomo[:, ind, :]
    return np.asarray(backend.to_numpy(arr), dtype=np.float32)


def _half_turn(sino: np.ndarray, theta) -> np.ndarray:
    """The projections of the first 180 degrees (Vo's method needs one half turn)."""
    if theta is None:
        return sino
    theta = np.asarray(backend.to_numpy(theta), dtype=np.float64)
    keep = (theta - theta[0]) < np.pi - 1e-9
    return sino[keep]


def _vo_mask(nrow: int, ncol: int, radius: float, drop: int) -> np.ndarray:
    """Vo's double-wedge mask in the 2-D spectrum of the doubled sinogram."""
    du = 1.0 / ncol
    dv = (nrow - 1.0) / (nrow * 2.0 * np.pi)
    cen_row = int(np.ceil(nrow / 2.0) - 1)
    cen_col = int(np.ceil(ncol / 2.0) - 1)
    drop = min(drop, int(np.ceil(0.05 * nrow)))
    mask = np.zeros((nrow, ncol), dtype=np.float32)
    for i in range(nrow):
        pos = int(np.ceil(((i - cen_row) * dv / radius) / du))
        pos1, pos2 = np.clip(np.sort((-pos + cen_col, pos + cen_col)), 0, ncol - 1)
        mask[i, pos1 : pos2 + 1] = 1.0
    mask[cen_row - drop : cen_row + drop + 1, :] = 0.0
    mask[:, cen_col - 1 : cen_col + 2] = 0.0
    return mask


def _vo_metric(sino, flip, comp, mask, shift: float) -> float:
    """Energy in the wedge for a doubled sinogram whose mirrored half is shifted by ``shift``."""
    if float(shift).is_integer():
        moved = np.roll(flip, int(shift), axis=1)
    else:
        moved = scipy.ndimage.shift(flip, (0, shift), order=3, prefilter=True, mode="nearest")
    if shift >= 0:
        k = int(np.ceil(shift))
        moved[:, :k] = comp[:, :k]
    else:
        k = int(np.floor(shift))
        moved[:, k:] = comp[:, k:]
    both = np.vstack((sino, moved))
    spec = np.abs(scipy.fft.fftshift(scipy.fft.fft2(both, workers=backend.cpu_workers())))
    return float(np.mean(spec * mask))


def _vo_coarse(sino: np.ndarray, smin: float, smax: float, ratio: float, drop: int) -> float:
    """Vo's coarse stage: the axis to half a pixel, from every few angles (as Vo does)."""
    nrow, ncol = sino.shape
    coarse = sino[:: max(1, nrow // 256)]
    middle = (ncol - 1.0) / 2.0
    # Beyond a quarter of the width too little of the mirrored half overlaps to judge.
    lo = int(max(smin, -ncol / 4.0))
    hi = int(min(smax, ncol / 4.0))
    cands = np.arange(ncol // 2 + lo, ncol // 2 + hi + 0.5, 0.5)
    flip, comp = np.fliplr(coarse), np.flipud(coarse)
    mask = _vo_mask(2 * coarse.shape[0], ncol, 0.5 * ratio * ncol, drop)
    metrics = [_vo_metric(coarse, flip, comp, mask, np.floor(2.0 * (c - middle))) for c in cands]
    return float(cands[int(np.argmin(metrics))])


def _rough_center(sino: np.ndarray, theta: np.ndarray) -> float:
    """A starting axis for the entropy search, good to a pixel or two, in well under a second.

    Vo's coarse stage on the first half turn with the columns binned to at most
    512 (tomopy's find_center_vo bins 4x above 2k x 2k too); the entropy scan
    around it does the rest.
    """
    half = _half_turn(sino, theta)
    ncol = half.shape[1]
    b = max(1, ncol // 512)
    binned = half[:, : ncol // b * b].reshape(half.shape[0], ncol // b, b).mean(axis=2)
    c = _vo_coarse(binned, -50.0 / b, 50.0 / b, 0.5, max(1, 20 // b))
    return (c + 0.5) * b - 0.5  # binned column c covers original columns c*b .. c*b + b - 1


def find_center_vo(
    tomo,
    theta=None,
    ind=None,
    smin: float = -50,
    smax: float = 50,
    srad: float = 6,
    step: float = 0.25,
    ratio: float = 0.5,
    drop: int = 20,
    sinogram_order: bool = False,
    ncore=None,
) -> float:
    """Rotation axis by Vo's Fourier method (Vo, Atwood & Drakopoulos, Opt. Express 2014).

    A 180-degree sinogram and its mirror image, stacked, make a 360-degree
    sinogram that is only consistent for the right axis; the wrong axis leaves
    energy inside a double wedge of the 2-D spectrum.  A coarse search over
    half-pixel steps is refined with sub-pixel shifts.

    Parameters
    ----------
    tomo : array, shape (angles, rows, N) (or (angles, N) for one sinogram)
        Line integrals.
    theta : array_like, shape (angles,), radians, optional
        When given, only the first half turn is used (360-degree scans).
    ind : int, optional
        Row to use; default the middle one.
    smin, smax : float, pixels
        Coarse search range of the axis relative to the detector middle.
    srad, step : float, pixels
        Fine search radius and step around the coarse result.
    ratio : float
        Object size relative to the field of view (sets the wedge).
    drop : int
        Rows around the spectrum's centre left out of the metric.
    sinogram_order : bool
        ``tomo`` is (rows, angles, N).

    Returns
    -------
    float
        Axis column in pixels (``(N - 1) / 2`` is the detector middle).
    """
    sino = _half_turn(_sinogram(tomo, ind, sinogram_order), theta)
    nrow, ncol = sino.shape
    first = _vo_coarse(sino, smin, smax, ratio, drop)
    middle = (ncol - 1.0) / 2.0

    srad = float(np.clip(abs(srad), 1.0, ncol / 4.0))
    step = float(np.clip(abs(step), 0.1, srad))
    first = float(np.clip(first, srad, ncol - srad - 1))
    fine = first + np.arange(-srad, srad + step, step)
    flip, comp = np.fliplr(sino), np.flipud(sino)
    mask = _vo_mask(2 * nrow, ncol, 0.5 * ratio * ncol, drop)
    metrics = np.array([_vo_metric(sino, flip, comp, mask, 2.0 * (c - middle)) for c in fine])
    best = int(np.argmin(metrics))
    # A parabola through the minimum and its neighbours gives the sub-step position.
    if 0 < best < len(fine) - 1:
        y0, y1, y2 = metrics[best - 1 : best + 2]
        denom = y0 - 2 * y1 + y2
        if denom > 0:
            return float(fine[best] + 0.5 * step * (y0 - y2) / denom)
    return float(fine[best])


def _entropy(image: np.ndarray, index: np.ndarray, lo: float, hi: float) -> float:
    """Entropy (bits) of the 64-bin histogram over [lo, hi] of ``image.flat[index]``."""
    hist = masked_histogram(image, index, lo, hi, 64)
    p = hist[hist > 0] / max(hist.sum(), 1)
    return float(-np.sum(p * np.log2(p)))


def find_center(
    tomo,
    theta,
    ind=None,
    init=None,
    tol: float = 0.5,
    mask: bool = True,
    ratio: float = 1.0,
    sinogram_order: bool = False,
    search: float = 8.0,
) -> float:
    """Rotation axis that minimises the entropy of the reconstructed slice (as tomopy).

    A wrong axis smears each edge into arcs and widens the histogram of the
    slice; the right one gives the sharpest, lowest-entropy slice.  The slice is
    reconstructed with gridrec at every trial.  The search scans ``init +-
    search`` in one-pixel steps, then ``+-1`` pixel around the best in steps of
    ``tol / 2``, then ``+-tol / 4`` in steps of ``tol / 8``.  The trials of each
    stage are independent, so they are reconstructed together, two to a
    complex gridrec and one pair per core (tomopy's Nelder-Mead, one trial after
    another, cannot do this).

    Parameters
    ----------
    tomo : array, shape (angles, rows, N)
        Line integrals.
    theta : array_like, shape (angles,), radians
    ind : int, optional
        Row to use; default the middle one.
    init : float, optional
        Starting guess (pixels); default Vo's coarse estimate on a binned copy.
    tol : float, pixels
        Desired accuracy: the last stage's step is ``tol / 8``.
    mask : bool
        Only the disc inside ``ratio`` of the slice counts.
    ratio : float
        Mask diameter relative to the slice.
    sinogram_order : bool
        ``tomo`` is (rows, angles, N).
    search : float, pixels
        Half-width of the scan around ``init``.

    Returns
    -------
    float
        Axis column in pixels.
    """

    sino = _sinogram(tomo, ind, sinogram_order)
    theta = np.asarray(backend.to_numpy(theta), dtype=np.float64)
    n = sino.shape[-1]
    if init is None:
        init = _rough_center(sino, theta)
    coords = np.arange(n) - (n - 1) / 2.0
    inside = (coords[None, :] ** 2 + coords[:, None] ** 2) <= (ratio * n / 2.0) ** 2
    if not mask:
        inside[:] = True
    inside = np.flatnonzero(inside)
    # Two trials per complex gridrec, one pair per core: reconstruct this many at once.
    batch = 2 * backend.cpu_workers()

    def slices(centers: np.ndarray):
        for i in range(0, centers.size, batch):
            part = centers[i : i + batch]
            recs = gridrec(np.broadcast_to(sino, (part.size, *sino.shape)), theta, part, "shepp")
            yield from recs

    tried: dict[float, float] = {}
    limits: list[float] = []  # the histogram's range, from the slice at ``init``

    def evaluate(centers) -> None:
        new = np.array([c for c in np.round(centers, 6) if c not in tried and 1 < c < n - 2])
        for c, rec in zip(new, slices(new)):
            if not limits:
                values = rec.reshape(-1)[inside]
                limits.extend((float(values.min()), float(values.max())))
            tried[float(c)] = _entropy(rec, inside, *limits)

    def best() -> float:
        return min(tried, key=tried.get)

    offsets = np.arange(-search, search + 0.5, 1.0)
    evaluate(float(init) + offsets[np.argsort(np.abs(offsets), kind="stable")])  # init first
    if not tried:
        return float(default_center(n))
    step = max(float(tol), 0.02) / 2.0
    evaluate(best() + step * np.arange(-int(round(1.0 / step)), int(round(1.0 / step)) + 1))
    fine = step / 4.0
    evaluate(best() + fine * np.arange(-2, 3))
    # A parabola through the best and its two fine neighbours places the minimum between them.
    c = best()
    around = [tried.get(float(np.round(c + d, 6))) for d in (-fine, 0.0, fine)]
    if None not in around:
        y0, y1, y2 = around
        curve = y0 - 2.0 * y1 + y2
        if curve > 0:
            return float(c + 0.5 * fine * (y0 - y2) / curve)
    return float(c)
