"""Gridrec: filtered backprojection done in Fourier space by gridding.

The Fourier-slice theorem puts the 1-D FFT of each filtered projection on a
line through the origin of the slice's 2-D spectrum.  Gridrec (Dowd et al.
1999, as in tomopy) spreads these polar samples onto an oversampled Cartesian
grid with a Kaiser-Bessel kernel, takes one 2-D inverse FFT, and divides by the
kernel's Fourier transform (deapodisation).  That is the adjoint non-uniform
FFT of the filtered polar spectrum: the same image a filtered backprojection
gives, at FFT cost instead of ``N^2 x angles``.

Sizes, for ``N`` detector columns:

* projections are zero-padded to ``L = padded_size(N) >= 2N`` before the
  filter, so the ramp filter's convolution does not wrap around;
* the grid is ``M = grid_size(N) ~ 1.25 N`` cells a side with a 6-cell kernel
  (Beatty, Nishimura & Pauly 2005): the gridding error stays near 5e-4 of the
  image, as with the older 2N grid and 4-cell kernel, at a 2.5x smaller FFT.

Two real slices travel as one complex spectrum (real and imaginary parts), as
in the original gridrec, which halves the work.  On the CPU the spreading runs
in C loops (numba where no C compiler is found; :mod:`beamhub.kernels.tomo._gridrec_cpu`) that compute the
kernel weights on the fly, one pair of slices per thread; nothing per geometry
is stored.  On the GPU (or without C and numba) the spreading is a sparse matrix
(polar samples -> grid cells) built once per geometry, cached, and applied to
many slices at once with one sparse-times-dense product (cupyx.scipy.sparse).
"""

from __future__ import annotations

import functools
import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import scipy.fft
import scipy.sparse
import scipy.special

from beamhub.kernels import backend
from beamhub.kernels.tomo import _gridrec_cpu
from beamhub.kernels.tomo.filters import fourier_filter

#: Width of the Kaiser-Bessel gridding kernel in grid cells, and the grid's
#: oversampling over the slice size.  Together they keep the gridding error
#: near 5e-4 of the image (tests/kernels/test_tomo_recon.py checks 2e-3
#: against the direct Fourier sum), far below the discretisation error of any
#: parallel-beam reconstruction.
KERNEL_WIDTH = 6
OVERSAMPLING = 1.25
#: Samples per grid cell of the tabulated kernel profile; linear interpolation
#: between them is exact to ~2e-6 of the peak.
_TABLE_PER_CELL = 1024


def _kb_beta(width: int, sigma: float) -> float:
    # Beatty, Nishimura & Pauly (2005), eq. 5: the beta that balances aliasing.
    return float(np.pi * np.sqrt((width / sigma) ** 2 * (sigma - 0.5) ** 2 - 0.8))


def padded_size(n_columns: int) -> int:
    """Padded projection length ``L`` for ``n_columns``: an FFT-fast even length >= 2N."""
    m = scipy.fft.next_fast_len(int(np.ceil(2.0 * n_columns)))
    return m + (m % 2)


def grid_size(n_columns: int) -> int:
    """Side ``M`` of the Cartesian grid: an FFT-fast even length >= OVERSAMPLING x N."""
    m = scipy.fft.next_fast_len(int(np.ceil(OVERSAMPLING * n_columns)))
    while m % 2:
        m = scipy.fft.next_fast_len(m + 1)
    return m


def _beta(n: int, m: int) -> float:
    return _kb_beta(KERNEL_WIDTH, m / n)


@functools.lru_cache(maxsize=4)
def _angle_phase(theta_key: bytes, n: int, length: int) -> np.ndarray:
    """Per-angle phase that puts even-N pixel centres half-way between grid nodes.

    Returns complex64 of shape (angles, length//2 + 1).
    """
    theta = np.frombuffer(theta_key, dtype=np.float64)
    offset = (n // 2) - (n - 1) / 2.0  # 0.5 for even N, 0 for odd N
    freq = np.fft.rfftfreq(length)
    # Grid axis 1 is x, axis 0 is -y (rows count downwards): see _gridding_matrix_cpu.
    shift = offset * (np.cos(theta) - np.sin(theta))
    return np.exp(2j * np.pi * shift[:, None] * freq[None, :]).astype(np.complex64)


def _filter(filter_name: str, length: int, n_angles: int) -> np.ndarray:
    """The filter on rfft frequencies, with the backprojection's scale; Nyquist dropped."""
    half = length // 2 + 1
    filt = fourier_filter(filter_name, length)[:half] * (np.pi / n_angles) / length
    filt[-1] = 0.0  # the Nyquist sample has no sign; drop it rather than alias it
    return filt


@functools.lru_cache(maxsize=4)
def _filtered_phase(theta_key: bytes, n: int, length: int, filter_name: str) -> np.ndarray:
    """Filter times per-angle phase, complex64 (angles, length//2 + 1), shared by all rows."""
    n_angles = len(theta_key) // 8
    filt = _filter(filter_name, length, n_angles)
    return (_angle_phase(theta_key, n, length) * filt[None, :]).astype(np.complex64)


def _kb_transform(nu: np.ndarray, width: int, beta: float) -> np.ndarray:
    """Fourier transform of the Kaiser-Bessel kernel at frequencies ``nu`` (cycles/cell)."""
    z = np.sqrt((beta**2 - (np.pi * width * nu) ** 2).astype(np.complex128))
    return np.real(width * np.sinh(z) / z)


def _kb_profile(t: np.ndarray, beta: float) -> np.ndarray:
    """The kernel at ``t`` = offset / half-width, zero outside [-1, 1] (unnormalised)."""
    inside = np.abs(t) <= 1.0
    return np.where(inside, scipy.special.i0(beta * np.sqrt(np.clip(1.0 - t * t, 0.0, None))), 0.0)


def _deapodisation(n: int, m: int) -> np.ndarray:
    """Per-axis factor, float64 (N,): undoes the kernel and the 1/m of each inverse FFT."""
    nu = np.arange(-(n // 2), n - n // 2) / m
    return float(m) / _kb_transform(nu, KERNEL_WIDTH, _beta(n, m))


# ---------------------------------------------------------------- sparse path (GPU, no C or numba)
@functools.lru_cache(maxsize=2)
def _gridding_matrix_cpu(theta_key: bytes, n_angles: int, length: int, m: int, width: int, beta: float):
    """CSR matrix (m*m, n_angles*length) float32 spreading polar samples onto the grid."""

    theta = np.frombuffer(theta_key, dtype=np.float64)
    k = np.fft.fftfreq(length, 1.0 / length)  # signed frequency index
    # A negative frequency uses the mirrored taps of +|k| (as the numba path does),
    # so the two paths pick the same cells even where a sample sits on a node.
    sign = np.where(k < 0, -1, 1)
    k = np.abs(k) * (m / length)  # -> grid cells
    taps = np.arange(width, dtype=np.int64)
    indices = np.empty((n_angles, length, width, width), dtype=np.int32)
    data = np.empty((n_angles, length, width, width), dtype=np.float32)
    step = max(1, 2_000_000 // length)
    for a0 in range(0, n_angles, step):
        th = theta[a0 : a0 + step]
        # The sample at frequency k of angle theta lies at (kx, ky) = k (cos, sin)
        # (Fourier-slice theorem).  Grid axis 1 is kx; axis 0 counts image rows,
        # which run down while y runs up, so it holds -ky.
        gx = np.cos(th)[:, None] * k[None, :]
        gy = -np.sin(th)[:, None] * k[None, :]
        per_axis = []
        for g in (gx, gy):
            first = np.floor(g - width / 2.0).astype(np.int64) + 1
            cells = first[..., None] + taps
            w = _kb_profile((cells - g[..., None]) * (2.0 / width), beta)
            per_axis.append(((cells * sign[None, :, None]) % m, w))
        (cx, wx), (cy, wy) = per_axis
        indices[a0 : a0 + step] = cy[..., :, None] * m + cx[..., None, :]
        data[a0 : a0 + step] = wy[..., :, None] * wx[..., None, :]
    n_points = n_angles * length
    indptr = np.arange(0, n_points * width * width + 1, width * width, dtype=np.int64)
    csc = scipy.sparse.csc_matrix((data.ravel(), indices.ravel(), indptr), shape=(m * m, n_points))
    del indices, data
    # CSR gathers into each grid cell: scipy's CSR product releases the GIL.
    return csc.tocsr()


def _gridding_matrix(theta: np.ndarray, n: int, xp):
    theta = np.ascontiguousarray(theta, dtype=np.float64)
    m = grid_size(n)
    g = _gridding_matrix_cpu(theta.tobytes(), theta.size, padded_size(n), m, KERNEL_WIDTH, _beta(n, m))
    if xp is np:
        return g
    return _gridding_matrix_gpu(hashlib.sha1(theta.tobytes()).hexdigest() + f"/{n}", g)


_GPU_CACHE: dict = {}


def _gridding_matrix_gpu(key: str, g_cpu):
    if key not in _GPU_CACHE:
        import cupyx.scipy.sparse as cusparse  # noqa: PLC0415 - optional dependency: cupy (GPU)

        _GPU_CACHE.clear()
        _GPU_CACHE[key] = cusparse.csr_matrix(g_cpu)
    return _GPU_CACHE[key]


def _gridrec_sparse(sino, theta_np: np.ndarray, centers: np.ndarray, filter_name: str):
    """All rows at once through the cached sparse gridding matrix (any array module)."""
    xp = backend.array_module(sino)
    n_rows, n_angles, n = sino.shape
    length, m = padded_size(n), grid_size(n)
    grid = _gridding_matrix(theta_np, n, xp)

    # Filter, axis shift and the half-pixel image offset as phases on each sample.
    half = length // 2 + 1
    freq = np.fft.rfftfreq(length)
    spec = backend.rfft(sino, n=length, axis=-1)
    spec *= xp.asarray(_filtered_phase(theta_np.tobytes(), n, length, filter_name))[None]
    row_phase = np.exp(2j * np.pi * centers[:, None] * freq[None, :])
    spec *= xp.asarray(row_phase.astype(np.complex64))[:, None, :]

    # Two real slices as one complex spectrum: Z = A + iB on the full line.
    if n_rows % 2:
        spec = xp.concatenate([spec, xp.zeros_like(spec[:1])], axis=0)
    a, b = spec[0::2], spec[1::2]
    n_pairs = a.shape[0]
    line = xp.empty((n_angles, length, n_pairs), dtype=xp.complex64)
    line[:, :half, :] = xp.moveaxis(a + 1j * b, 0, -1)
    tail = slice(1, length - half + 1)
    neg = xp.conj(a[:, :, tail][:, :, ::-1]) + 1j * xp.conj(b[:, :, tail][:, :, ::-1])
    line[:, half:, :] = xp.moveaxis(neg, 0, -1)
    del spec, a, b, neg

    values = line.reshape(n_angles * length, n_pairs).view(xp.float32)  # (points, 2*pairs)
    gridded = grid @ values
    gridded = xp.ascontiguousarray(gridded).view(xp.complex64).reshape(m, m, n_pairs)
    del values, line

    # Pruned 2-D inverse FFT: only the N x N centre of the image is needed.
    keep_x = xp.asarray(np.arange(-(n // 2), n - n // 2) % m)
    img = backend.ifftn(gridded, axes=(1,), overwrite_x=True)[:, keep_x, :]
    img = backend.ifftn(img, axes=(0,), overwrite_x=True)[keep_x, :, :]
    deapod = _deapodisation(n, m)
    img *= xp.asarray((deapod[:, None, None] * deapod[None, :, None]).astype(np.float32))
    out = xp.empty((2 * n_pairs, n, n), dtype=xp.float32)
    out[0::2] = xp.moveaxis(img.real, -1, 0)
    out[1::2] = xp.moveaxis(img.imag, -1, 0)
    return out[:n_rows]


# ---------------------------------------------------------------- C / numba path (CPU)
@functools.lru_cache(maxsize=2)
def _cpu_plan(n: int) -> dict:
    """Sizes and tables for the CPU loops that depend only on ``N``."""
    length, m = padded_size(n), grid_size(n)
    width = KERNEL_WIDTH
    beta = _beta(n, m)
    per_cell = _TABLE_PER_CELL
    # Kernel profile against the offset (cell - sample) from -width/2, two guard samples.
    d = np.arange(width * per_cell + 2) / per_cell - width / 2.0
    table = _kb_profile(d * (2.0 / width), beta).astype(np.float32)
    # Taps reach width/2 + 1 cells past +-m/2; rows are written ROW_BLOCK cells wide.
    origin = m // 2 + width + 2
    rows = 2 * origin + 1
    stride = rows + _gridrec_cpu.ROW_BLOCK
    signed = np.arange(-(n // 2), n - n // 2)
    # The grid is stored centred (cell 0 at m//2), so the image carries (-1)^(x) per axis.
    scale = (_deapodisation(n, m) * np.where(signed % 2, -1.0, 1.0)).astype(np.float32)
    return dict(length=length, m=m, table=table, origin=origin, rows=rows, stride=stride, scale=scale)


#: Scratch grids kept between calls, by grid size: at most one set per worker thread.
_SCRATCH: dict[tuple[int, int], list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}
#: Angles per piece of a pair's spectrum (a piece's 2 MB temporary is reused by the allocator).
_SPECTRUM_ANGLES = 64
_SCRATCH_LOCK = threading.Lock()


def _take_buffers(plan: dict, n_angles: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A padded grid, a periodic grid and a pair's spectrum for one thread: kept, or new.

    Three 50 MB arrays (at N = 2048 x 1501 angles) freshly allocated per pair cost ~10 ms
    of page faults each (far more when the kernel must compact memory for huge pages, which
    made the time per slice vary by 1.5x); reused, the grid is re-zeroed in ~2 ms.  Up to
    ``cpu_workers()`` sets stay allocated between calls (~150 MB each at that size);
    :func:`release_scratch` frees them.
    """
    m = plan["m"]
    with _SCRATCH_LOCK:
        free = _SCRATCH.get((m, n_angles))
        if free:
            return free.pop()
    padded = np.empty(plan["rows"] * plan["stride"], dtype=np.complex64)
    # Rows a few cells longer than m: at m = 2560 a row of m cells is a multiple of
    # 4 KiB, which puts a column's cells on one cache set and slows the y FFT ~1.5x.
    grid = np.empty((m, m + 8), dtype=np.complex64)[:, :m]
    spectrum = np.empty((2, n_angles, plan["length"] // 2 + 1), dtype=np.complex64)
    return padded, grid, spectrum


def _give_back(plan: dict, buffers: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    n_angles = buffers[2].shape[1]
    with _SCRATCH_LOCK:
        free = _SCRATCH.setdefault((plan["m"], n_angles), [])
        if len(free) < backend.cpu_workers():
            free.append(buffers)


def release_scratch() -> None:
    """Free the scratch grids gridrec keeps between calls (they are made again when needed)."""
    with _SCRATCH_LOCK:
        _SCRATCH.clear()


def _gridrec_pair(spec_a, spec_b, phase, row_a, row_b, step_x, step_y, plan, n, out_a, out_b, buffers):
    """One pair of rows: spread, fold, pruned inverse FFT, deapodise (one thread, its ``buffers``)."""
    spread, fold, finish = _gridrec_cpu.loops()
    stride, m = plan["stride"], plan["m"]
    padded, grid, _ = buffers
    padded.fill(0)
    spread(
        spec_a,
        spec_b,
        phase,
        row_a,
        row_b,
        step_x,
        step_y,
        plan["table"],
        _TABLE_PER_CELL,
        KERNEL_WIDTH,
        plan["origin"],
        padded,
        stride,
        _gridrec_cpu.ROW_BLOCK,
    )
    fold(padded, stride, plan["origin"], m, grid)
    # Pruned 2-D inverse FFT: every column along y, then only the N kept rows
    # (two contiguous blocks in FFT order) along x, all in place in ``grid``.
    grid = scipy.fft.ifft(grid, axis=0, overwrite_x=True, workers=1)
    h = n // 2
    upper = scipy.fft.ifft(grid[: n - h], axis=1, overwrite_x=True, workers=1)
    lower = scipy.fft.ifft(grid[m - h :], axis=1, overwrite_x=True, workers=1)
    finish(upper, lower, plan["scale"], out_a, out_b)


def _gridrec_cpu_rows(
    sino: np.ndarray, theta_np: np.ndarray, centers: np.ndarray, filter_name: str, out: np.ndarray | None = None
) -> np.ndarray:
    """Pairs of rows on ``cpu_workers()`` threads, each pair on one core; into ``out`` when given."""
    n_rows, n_angles, n = sino.shape
    plan = _cpu_plan(n)
    length, m = plan["length"], plan["m"]
    phase = _filtered_phase(theta_np.tobytes(), n, length, filter_name)
    freq = np.fft.rfftfreq(length)
    row_phase = np.exp(2j * np.pi * centers[:, None] * freq[None, :]).astype(np.complex64)
    # Frequency index k of angle theta sits at k (cos, -sin) m / L grid cells (x, row).
    step_x = np.cos(theta_np) * (m / length)
    step_y = -np.sin(theta_np) * (m / length)
    if out is None:
        out = np.empty((n_rows, n, n), dtype=np.float32)
    # an odd row count: the last row's partner (zeros) lands in a spare slice
    spare = np.empty((n, n), dtype=np.float32) if n_rows % 2 else None

    n_pairs = (n_rows + 1) // 2
    pairs = iter(range(n_pairs))
    take = threading.Lock()

    def worker() -> None:
        """Pairs one after another, as they come, with this thread's own buffers."""
        buffers = _take_buffers(plan, n_angles)
        spec = buffers[2]
        while True:
            with take:
                p = next(pairs, None)
            if p is None:
                _give_back(plan, buffers)
                return
            r = 2 * p
            pair = sino[r : r + 2]
            for a0 in range(0, n_angles, _SPECTRUM_ANGLES):  # into the kept buffer, piece by piece
                a1 = min(n_angles, a0 + _SPECTRUM_ANGLES)
                spec[: len(pair), a0:a1] = scipy.fft.rfft(pair[:, a0:a1], n=length, axis=-1, workers=1)
            if len(pair) == 1:  # an odd row count: the last row pairs with zeros
                spec[1] = 0
            rb = row_phase[min(r + 1, n_rows - 1)]
            second = out[r + 1] if r + 1 < n_rows else spare
            _gridrec_pair(spec[0], spec[1], phase, row_phase[r], rb, step_x, step_y, plan, n, out[r], second, buffers)

    threads = min(n_pairs, backend.cpu_workers())
    if threads > 1:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            for done in [pool.submit(worker) for _ in range(threads)]:
                done.result()
    else:
        worker()
    return out


def threads_itself(xp) -> bool:
    """True where gridrec spreads its pairs of rows over the cores itself (numpy with C or numba).

    Callers then hand it many rows at once instead of running calls side by side.
    """
    return xp is np and _cpu_loops_available()


def _cpu_loops_available() -> bool:
    try:
        _gridrec_cpu.loops()
    except ImportError:
        return False
    return True


def gridding_setup(theta, n_columns: int) -> None:
    """Prepare what gridrec needs for ``theta`` and ``n_columns`` ahead of time.

    On the CPU that is only the compiled loops and small tables; on the GPU
    (or without C and numba) it builds and caches the sparse gridding matrix.

    Parameters
    ----------
    theta : array_like, shape (angles,), radians
    n_columns : int
        Detector columns (the slice size ``N``).
    """
    theta_np = np.ascontiguousarray(backend.to_numpy(theta), dtype=np.float64).ravel()
    _angle_phase(theta_np.tobytes(), int(n_columns), padded_size(int(n_columns)))
    if _cpu_loops_available():
        _cpu_plan(int(n_columns))
        return
    _gridding_matrix(theta_np, int(n_columns), np)


def gridrec(sino, theta, centers, filter_name: str = "shepp", out=None):
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
    out : array of the input's module, shape (rows, N, N), float32, C-contiguous slices, optional
        Where to write the slices (saves an allocation and a copy for callers that collect them).

    Returns
    -------
    array of the input's module, shape (rows, N, N), float32
        Attenuation per pixel (1/pixel); ``out`` when given.
    """
    xp = backend.array_module(sino)
    sino = xp.asarray(sino, dtype=xp.float32)
    theta_np = np.ascontiguousarray(backend.to_numpy(theta), dtype=np.float64).ravel()
    centers = np.asarray(backend.to_numpy(centers), dtype=np.float64).ravel()
    if out is not None and (out.shape != (sino.shape[0], sino.shape[2], sino.shape[2]) or out.dtype != xp.float32):
        raise ValueError(f"gridrec: out must be float32 of shape {(sino.shape[0], sino.shape[2], sino.shape[2])}")
    if threads_itself(xp):
        return _gridrec_cpu_rows(sino, theta_np, centers, filter_name, out)
    res = _gridrec_sparse(sino, theta_np, centers, filter_name)
    if out is None:
        return res
    out[...] = res
    return out
