"""``recon``: one entry point for every reconstruction algorithm, tomopy's signature.

Rows are independent, so they are cut into chunks that run on ``ncore``
threads on CPU (the heavy steps are FFTs and sparse products that release the
GIL) or one after another on the GPU.  ``backend="tomopy"`` hands the whole call
to tomopy where it is installed.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from beamhub.kernels import backend as _backend
from beamhub.kernels.tomo.fbp import fbp
from beamhub.kernels.tomo.filters import FILTER_NAMES
from beamhub.kernels.tomo.geometry import centers_per_row
from beamhub.kernels.tomo.gridrec import gridding_setup, gridrec, threads_itself
from beamhub.kernels.tomo.sirt import sirt

ALGORITHMS = ("gridrec", "fbp", "sirt")


def _rows_per_chunk(algorithm: str, n_columns: int, n_angles: int) -> int:
    if algorithm == "sirt":
        return 16  # the projector is shared, so more rows per product is cheaper
    # gridrec holds a (1.25N)^2 complex64 grid per pair of rows (4 bytes a row per cell) beside the
    # row's filtered projections; keep a chunk near 0.5 GB.
    per_row = 4.0 * (1.25 * n_columns) ** 2 + 24.0 * n_angles * n_columns
    return int(max(2, min(16, (5e8 // per_row) // 2 * 2)))


def _delegate_to_tomopy(tomo, theta, center, sinogram_order, algorithm, init_recon, ncore, nchunk, kwargs):
    try:
        import tomopy  # noqa: PLC0415 - optional dependency: the tomopy backend
    except ImportError as exc:
        raise _backend.BackendError(
            "recon(..., backend='tomopy') needs tomopy, which does not import here "
            f"({exc}); install it with 'conda install -c conda-forge tomopy' (the tomo image "
            "has it) or use the built-in reconstruction with backend='beamhub'"
        ) from exc
    return tomopy.recon(
        _backend.to_numpy(tomo),
        _backend.to_numpy(theta),
        center=center,
        sinogram_order=sinogram_order,
        algorithm=algorithm,
        init_recon=init_recon,
        ncore=ncore,
        nchunk=nchunk,
        **kwargs,
    )


def recon(
    tomo,
    theta,
    center=None,
    sinogram_order: bool = False,
    algorithm: str = "gridrec",
    init_recon=None,
    ncore: int | None = None,
    nchunk: int | None = None,
    filter_name: str = "shepp",
    num_iter: int | None = None,
    backend: str = "beamhub",
    progress=None,
    **kwargs,
):
    """Reconstruct a stack of slices from parallel-beam projections.

    Parameters
    ----------
    tomo : numpy.ndarray or cupy.ndarray, shape (angles, rows, N), float
        Line integrals (after ``normalize`` and ``minus_log``).  With
        ``sinogram_order=True`` the shape is (rows, angles, N).
    theta : array_like, shape (angles,), float, radians
        Projection angles, evenly spread over 180 or 360 degrees.
    center : float or array_like of shape (rows,), optional
        Rotation-axis column in pixels (0-based, pixel centres at integers);
        default ``(N - 1) / 2``.
    sinogram_order : bool
        Whether ``tomo`` is (rows, angles, N) instead of (angles, rows, N).
    algorithm : {"gridrec", "fbp", "sirt"}
        ``gridrec``: Fourier gridding (fast); ``fbp``: filtered backprojection
        with linear interpolation; ``sirt``: iterative.
    init_recon : array, shape (rows, N, N), optional
        Starting image for ``sirt``.
    ncore : int, optional
        Threads on CPU; default :func:`beamhub.kernels.backend.cpu_workers`.
    nchunk : int, optional
        Rows per chunk; default from the slice size.
    filter_name : str
        ``ramlak``, ``shepp`` (default, as tomopy), ``cosine``, ``hann``, ``hamming``,
        ``parzen`` or ``none``; for ``gridrec`` and ``fbp``.
    num_iter : int, optional
        SIRT iterations (default 50).
    backend : {"beamhub", "tomopy"}
        ``tomopy`` hands the call to ``tomopy.recon`` (with the remaining keyword
        arguments); a clear :class:`~beamhub.kernels.backend.BackendError` when
        tomopy does not import.
    progress : callable, optional
        Called with the number of rows just finished (e.g. ``tqdm.update``).

    Returns
    -------
    array of the input's module, shape (rows, N, N), float32
        Attenuation per pixel (1/pixel).

    Examples
    --------
    >>> from beamhub.kernels import sim, tomo as bt
    >>> scan = sim.simulate_scan(n=64, rows=2, n_angles=90, seed=0)
    >>> proj = bt.minus_log(bt.normalize(scan.tomo, scan.flat, scan.dark))
    >>> rec = bt.recon(proj, scan.theta, center=scan.center)
    >>> rec.shape
    (2, 64, 64)
    """
    if backend == "tomopy":
        return _delegate_to_tomopy(
            tomo,
            theta,
            center,
            sinogram_order,
            algorithm,
            init_recon,
            ncore,
            nchunk,
            dict(kwargs, filter_name=filter_name, **({"num_iter": num_iter} if num_iter else {})),
        )
    if backend != "beamhub":
        raise ValueError(f"backend={backend!r}: choose 'beamhub' or 'tomopy'")
    if kwargs:
        raise TypeError(f"recon() got unexpected keyword arguments: {', '.join(sorted(kwargs))}")
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm={algorithm!r}: choose one of {', '.join(ALGORITHMS)}")
    if (filter_name or "none").lower() not in FILTER_NAMES:
        raise ValueError(f"filter_name={filter_name!r}: choose one of {', '.join(FILTER_NAMES)}")
    xp = _backend.array_module(tomo)
    if tomo.ndim != 3:
        raise ValueError(f"tomo must be 3-D (angles, rows, columns), got shape {tuple(tomo.shape)}")
    sino_view = tomo if sinogram_order else xp.moveaxis(tomo, 0, 1)
    n_rows, n_angles, n = sino_view.shape
    theta = np.asarray(_backend.to_numpy(theta), dtype=np.float64).ravel()
    if theta.size != n_angles:
        raise ValueError(f"theta has {theta.size} angles but tomo has {n_angles} projections")
    centers = centers_per_row(center, n_rows, n)
    if init_recon is not None and algorithm != "sirt":
        raise ValueError("init_recon is only used by algorithm='sirt'")
    chunk = int(nchunk or _rows_per_chunk(algorithm, n, n_angles))
    if algorithm == "gridrec":
        gridding_setup(theta, n)  # once, before threads race to build it

    def run(r0: int):
        r1 = min(n_rows, r0 + chunk)
        if direct:  # gridrec's pairs read the rows where they are and write into `out`
            return r0, r1, gridrec(sino_view[r0:r1], theta, centers[r0:r1], filter_name, out=out[r0:r1])
        sino = xp.ascontiguousarray(sino_view[r0:r1], dtype=xp.float32)
        if algorithm == "gridrec":
            res = gridrec(sino, theta, centers[r0:r1], filter_name)
        elif algorithm == "fbp":
            res = fbp(sino, theta, centers[r0:r1], filter_name)
        else:
            init = None if init_recon is None else init_recon[r0:r1]
            res = sirt(sino, theta, centers[r0:r1], num_iter=num_iter or 50, init=init)
        return r0, r1, res

    out = xp.empty((n_rows, n, n), dtype=xp.float32)
    starts = range(0, n_rows, chunk)
    threads = 1 if xp is not np else int(ncore or _backend.cpu_workers())
    direct = algorithm == "gridrec" and threads_itself(xp) and sino_view.dtype == xp.float32
    if algorithm == "gridrec" and threads_itself(xp):
        threads = 1  # gridrec puts one pair of rows on each core; calls side by side would oversubscribe them
    if threads > 1 and len(starts) > 1:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            for r0, r1, res in pool.map(run, starts):
                if not direct:
                    out[r0:r1] = res
                if progress:
                    progress(r1 - r0)
    else:
        for r0 in starts:
            _, r1, res = run(r0)
            if not direct:
                out[r0:r1] = res
            if progress:
                progress(r1 - r0)
    return out
