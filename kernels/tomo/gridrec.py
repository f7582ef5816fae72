"""Gridrec: filtered backprojection done in Fourier space by gridding.

The Fourier-slice theorem puts the 1-D FFT of each filtered projection on a
line through the origin of the slice's 2-D spectrum.  Gridrec (Dowd et al.
1999, as in tomopy) spreads these polar samples onto an oversampled Cartesian
grid (here twice the image size) with a Kaiser-Bessel kernel, takes one 2-D
inverse FFT, and divides by the kernel's Fourier transform (deapodisation).
That is the adjoint non-uniform FFT of the filtered polar spectrum: the same
image a filtered backprojection gives, at FFT cost instead of ``N^2 x angles``.

Two real slices travel as one complex sinogram (real and imaginary parts), as
in the original gridrec, which halves the work.  The gridding itself is a
sparse matrix (polar samples -> grid cells) that depends only on the angles
and the size, so it is built once per geometry, cached, and applied to many
slices at once with one sparse-times-dense product (cupyx.scipy.sparse on GPU).
"""

from __future__ import annotations

import functools
import hashlib

import numpy as np
import scipy.fft
import scipy.special

from beamhub.kernels import backend
from beamhub.kernels.tomo.filters import fourier_filter

#: Width of the Kaiser-Bessel gridding kernel in grid cells; with the 2x
#: oversampled grid this keeps the gridding error near 1e-4 of the image, far
#: below the discretisation error of any parallel-beam reconstruction.
KERNEL_WIDTH = 4
OVERSAMPLING = 2.0


def _kb_beta(width: int, sigma: float) -> float:
    # Beatty, Nishimura & Pauly (2005), eq. 5: the beta that balances aliasing.
    return float(np.pi * np.sqrt((width / sigma) ** 2 * (sigma - 0.5) ** 2 - 0.8))


def padded_size(n_columns: int) -> int:
    """Padded projection length and grid size for ``n_columns``: an FFT-fast even length >= 2N."""
    m = scipy.fft.next_fast_len(int(np.ceil(OVERSAMPLING * n_columns)))
    return m + (m % 2)


@functools.lru_cache(maxsize=4)
def _angle_phase(theta_key: bytes, n: int, m: int) -> np.ndarray:
    """Per-angle phase that puts even-N pixel centres half-way between grid nodes.

    Returns complex64 of shape (angles, m//2 + 1).
    """
    theta = np.frombuffer(theta_key, dtype=np.float64)
    offset = (n // 2) - (n - 1) / 2.0  # 0.5 for even N, 0 for odd N
    freq = np.fft.rfftfreq(m)
    # Grid axis 1 is x, axis 0 is -y (rows count downwards): see _gridding_matrix_cpu.
    shift = offset * (np.cos(theta) - np.sin(theta))
    return np.exp(2j * np.pi * shift[:, None] * freq[None, :]).astype(np.complex64)


def _kb_transform(nu: np.ndarray, width: int, beta: float) -> np.ndarray:
    """Fourier transform of the Kaiser-Bessel kernel at frequencies ``nu`` (cycles/cell)."""
    z = np.sqrt((beta**2 - (np.pi * width * nu) ** 2).astype(np.complex128))
    return np.real(width * np.sinh(z) / z)


@functools.lru_cache(maxsize=2)
def _gridding_matrix_cpu(theta_key: bytes, n_angles: int, m: int, width: int):
    """CSR matrix (m*m, n_angles*m) float32 spreading polar samples onto the grid."""
    import scipy.sparse  # noqa: PLC0415

    theta = np.frombuffer(theta_key, dtype=np.float64)
    beta = _kb_beta(width, OVERSAMPLING)
    k = np.fft.fftfreq(m, 1.0 / m)  # integer frequencies in grid cells
    taps = np.arange(width, dtype=np.int64)
    indices = np.empty((n_angles, m, width, width), dtype=np.int32)
    data = np.empty((n_angles, m, width, width), dtype=np.float32)
    step = max(1, 2_000_000 // m)
    for a0 in range(0, n_angles, step):
        th = theta[a0:a0 + step]
        # The sample at frequency k of angle theta lies at (kx, ky) = k (cos, sin)
        # (Fourier-slice theorem).  Grid axis 1 is kx; axis 0 counts image rows,
        # which run down while y runs up, so it holds -ky.
        gx = np.cos(th)[:, None] * k[None, :]
        gy = -np.sin(th)[:, None] * k[None, :]
        per_axis = []
        for g in (gx, gy):
            first = np.floor(g - width / 2.0).astype(np.int64) + 1
            cells = first[..., None] + taps
            t = (cells - g[..., None]) * (2.0 / width)
            w = scipy.special.i0(beta * np.sqrt(np.clip(1.0 - t * t, 0.0, None)))
            per_axis.append((cells % m, w))
        (cx, wx), (cy, wy) = per_axis
        indices[a0:a0 + step] = cy[..., :, None] * m + cx[..., None, :]
        data[a0:a0 + step] = wy[..., :, None] * wx[..., None, :]
    n_points = n_angles * m
    indptr = np.arange(0, n_points * width * width + 1, width * width, dtype=np.int64)
    csc = scipy.sparse.csc_matrix(
        (data.ravel(), indices.ravel(), indptr), shape=(m * m, n_points)
    )
    del indices, data
    # CSR gathers into each grid cell: scipy's CSR product releases the GIL,
    # so several chunks can grid at once on different cores.
    return csc.tocsr()


def _gridding_matrix(theta: np.ndarray, m: int, xp):
    theta = np.ascontiguousarray(theta, dtype=np.float64)
    g = _gridding_matrix_cpu(theta.tobytes(), theta.size, m, KERNEL_WIDTH)
    if xp is np:
        return g
    return _gridding_matrix_gpu(hashlib.sha1(theta.tobytes()).hexdigest(), g)


_GPU_CACHE: dict = {}


def _gridding_matrix_gpu(key: str, g_cpu):
    if key not in _GPU_CACHE:
        import cupyx.scipy.sparse as cusparse  # noqa: PLC0415

        _GPU_CACHE.clear()
        _GPU_CACHE[key] = cusparse.csr_matrix(g_cpu)
    return _GPU_CACHE[key]


def gridding_setup(theta, n_columns: int) -> None:
    """Build (and cache) the gridding matrix for ``theta`` and ``n_columns`` ahead of time.

    Parameters
    ----------
    theta : array_like, shape (angles,), radians
    n_columns : int
        Detector columns (the slice size ``N``).
    """
    _gridding_matrix(np.asarray(backend.to_numpy(theta)), padded_size(n_columns), np)


def gridrec(sino, theta, centers, filter_name: str = "shepp"):
    """Reconstruct slices from sinograms with gridrec.

    Parameters
    ----------
    sino : numpy.ndarray or cupy.ndarray, shape (rows, angles, N), float32
        Sinograms (line integrals, i.e. after ``minus_log``), one per row.
    theta : array_like, shape (angles,), float, radians
        Projection angles, evenly spread over 180 or 360 degrees.
    centers : array_like, shape (rows,), float, pixels
        Rotation-axis column of each row (see :mod:`beamhub.kernels.tomo.geometry`).
    filter_name : str
        ``ramlak``, ``shepp``, ``cosine``, ``hann``, ``hamming``, ``parzen`` or ``none``.

    Returns
    -------
    array of the input's module, shape (rows, N, N), float32
        Attenuation per pixel (1/pixel).
    """
    xp = backend.array_module(sino)
    sino = xp.asarray(sino, dtype=xp.float32)
    n_rows, n_angles, n = sino.shape
    theta_np = np.asarray(backend.to_numpy(theta), dtype=np.float64)
    m = padded_size(n)
    width = KERNEL_WIDTH
    beta = _kb_beta(width, OVERSAMPLING)
    grid = _gridding_matrix(theta_np, m, xp)

    # Filter, axis shift and the half-pixel image offset as phases on each sample.
    half = m // 2 + 1
    freq = np.fft.rfftfreq(m)
    filt = fourier_filter(filter_name, m)[:half] * (np.pi / n_angles) / m
    filt[-1] = 0.0  # the Nyquist sample has no sign; drop it rather than alias it
    spec = backend.rfft(sino, n=m, axis=-1)
    spec *= xp.asarray(_angle_phase(theta_np.tobytes(), n, m))[None]
    row_phase = np.exp(2j * np.pi * np.asarray(centers, dtype=np.float64)[:, None] * freq[None, :])
    spec *= xp.asarray((row_phase * filt).astype(np.complex64))[:, None, :]

    # Two real slices as one complex spectrum: Z = A + iB on the full line.
    if n_rows % 2:
        spec = xp.concatenate([spec, xp.zeros_like(spec[:1])], axis=0)
    a, b = spec[0::2], spec[1::2]
    n_pairs = a.shape[0]
    line = xp.empty((n_angles, m, n_pairs), dtype=xp.complex64)
    line[:, :half, :] = xp.moveaxis(a + 1j * b, 0, -1)
    neg = xp.conj(a[:, :, 1:m - half + 1][:, :, ::-1]) + 1j * xp.conj(b[:, :, 1:m - half + 1][:, :, ::-1])
    line[:, half:, :] = xp.moveaxis(neg, 0, -1)
    del spec, a, b, neg

    values = line.reshape(n_angles * m, n_pairs).view(xp.float32)  # (points, 2*pairs)
    gridded = grid @ values
    gridded = xp.ascontiguousarray(gridded).view(xp.complex64).reshape(m, m, n_pairs)
    del values, line

    # Pruned 2-D inverse FFT: only the N x N centre of the image is needed.
    keep = np.arange(-(n // 2), n - n // 2) % m
    keep_x = xp.asarray(keep)
    img = backend.ifftn(gridded, axes=(1,), overwrite_x=True)[:, keep_x, :]
    img = backend.ifftn(img, axes=(0,), overwrite_x=True)[keep_x, :, :]
    nu = np.arange(-(n // 2), n - n // 2) / m
    deapod = float(m) / _kb_transform(nu, width, beta)  # undoes 1/m of each ifft
    img *= xp.asarray((deapod[:, None, None] * deapod[None, :, None]).astype(np.float32))
    out = xp.empty((2 * n_pairs, n, n), dtype=xp.float32)
    out[0::2] = xp.moveaxis(img.real, -1, 0)
    out[1::2] = xp.moveaxis(img.imag, -1, 0)
    return out[:n_rows]
