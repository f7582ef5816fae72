"""SIRT: the simultaneous iterative reconstruction technique.

``x <- x + C A^T R (b - A x)`` with ``R = 1 / (A 1)`` (ray sums) and
``C = 1 / (A^T 1)`` (pixel sums), starting from ``init`` or zero.  ``A`` is the
pixel-driven linear-interpolation projector whose exact adjoint is
:func:`~beamhub.kernels.tomo.fbp.backproject`.  It is held as one sparse matrix
per rotation centre (``2 x N^2 x angles`` entries) and applied to all rows that
share the centre at once, on the GPU through cupyx.scipy.sparse.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse

from beamhub.kernels import backend
from beamhub.kernels.tomo.geometry import pixel_coordinates

#: Refuse to build a projector above this many stored entries (about 12 bytes each).
MAX_ENTRIES = 400_000_000


def projection_matrix(theta, n: int, center: float):
    """The parallel-beam projector as a sparse matrix.

    Parameters
    ----------
    theta : array_like, shape (angles,), radians
    n : int
        Detector columns; the slice is ``n x n``.
    center : float
        Rotation-axis column, pixels.

    Returns
    -------
    scipy.sparse.csr_matrix, shape (angles * n, n * n), float32
        Row ``a * n + k`` is detector column ``k`` at angle ``a``; column
        ``i * n + j`` is pixel ``(i, j)``.
    """
    theta = np.asarray(backend.to_numpy(theta), dtype=np.float64)
    n_angles = theta.size
    entries = 2 * n * n * n_angles
    if entries > MAX_ENTRIES:
        raise ValueError(
            f"SIRT on {n} columns x {n_angles} angles needs a projector of {entries:.3g} entries "
            f"(more than {MAX_ENTRIES:.3g}); bin the data (fewer columns or angles) or use "
            "algorithm='gridrec'"
        )
    coords = pixel_coordinates(n)
    pix = np.arange(n * n, dtype=np.int64)
    rows_list, cols_list, vals_list = [], [], []
    for a, th in enumerate(theta):
        # x = coords along columns, y = -coords up the rows (geometry module).
        u = (np.cos(th) * coords[None, :] - np.sin(th) * coords[:, None] + center).ravel()
        i0 = np.floor(u).astype(np.int64)
        w = u - i0
        for k, weight in ((i0, 1.0 - w), (i0 + 1, w)):
            ok = (k >= 0) & (k < n) & (weight > 0)
            rows_list.append(a * n + k[ok])
            cols_list.append(pix[ok])
            vals_list.append(weight[ok].astype(np.float32))
    return scipy.sparse.csr_matrix(
        (np.concatenate(vals_list), (np.concatenate(rows_list), np.concatenate(cols_list))),
        shape=(n_angles * n, n * n),
    )


def _on_device(matrix, xp):
    if xp is np:
        return matrix
    import cupyx.scipy.sparse as cusparse  # noqa: PLC0415 - optional dependency: cupy (GPU)

    return cusparse.csr_matrix(matrix)


def sirt(sino, theta, centers, num_iter: int = 50, init=None, nonnegative: bool = False):
    """Reconstruct slices with SIRT.

    Parameters
    ----------
    sino : array, shape (rows, angles, N), float32
        Sinograms (line integrals).
    theta : array_like, shape (angles,), radians
    centers : array_like, shape (rows,), pixels
        Rotation-axis column of each row.
    num_iter : int
        Iterations (50 is a fair default; SIRT converges slowly but steadily).
    init : array, shape (rows, N, N), optional
        Starting image (tomopy's ``init_recon``); zeros when omitted.
    nonnegative : bool
        Clip negative values after every iteration.

    Returns
    -------
    array of the input's module, shape (rows, N, N), float32
    """
    xp = backend.array_module(sino)
    n_rows, n_angles, n = sino.shape
    centers = np.asarray(centers, dtype=np.float64)
    out = xp.zeros((n_rows, n, n), dtype=xp.float32)
    if init is not None:
        out[...] = xp.asarray(init, dtype=xp.float32).reshape(n_rows, n, n)
    for c in np.unique(centers):
        rows = np.flatnonzero(centers == c)
        a = _on_device(projection_matrix(theta, n, float(c)), xp)
        at = a.T.tocsr()
        ones_pix = xp.ones((n * n,), dtype=xp.float32)
        ones_ray = xp.ones((n_angles * n,), dtype=xp.float32)
        ray_sum = a @ ones_pix
        pix_sum = at @ ones_ray
        r_inv = xp.where(ray_sum > 0, 1.0 / xp.maximum(ray_sum, 1e-12), 0.0).astype(xp.float32)
        c_inv = xp.where(pix_sum > 0, 1.0 / xp.maximum(pix_sum, 1e-12), 0.0).astype(xp.float32)
        b = xp.asarray(sino[rows], dtype=xp.float32).reshape(len(rows), -1).T  # (rays, rows)
        x = out[rows].reshape(len(rows), -1).T.copy()  # (pixels, rows)
        for _ in range(int(num_iter)):
            residual = (b - a @ x) * r_inv[:, None]
            x += (at @ residual) * c_inv[:, None]
            if nonnegative:
                xp.maximum(x, 0.0, out=x)
        out[rows] = x.T.reshape(len(rows), n, n)
    return out
