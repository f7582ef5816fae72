"""The two projections one phasing iteration is made of, fused into single passes.

An iteration is ``FFT -> modulus projection -> inverse FFT -> real-space update``.
The FFTs dominate; everything else should cost one read and one write of each
array.  Two interchangeable operator sets implement the non-FFT passes on flat
(1-D, contiguous) views of the arrays:

* :class:`FusedOps` — numba-compiled, multithreaded loops for numpy arrays on
  the CPU (used when numba imports);
* :class:`ArrayOps` — plain whole-array expressions written once for any array
  module (numpy without numba, cupy on the GPU).

:func:`ops_for` picks one per array module; the algorithms never branch on it.

Conventions shared by both sets
-------------------------------
``amp``   measured Fourier amplitudes ``sqrt(I)`` in FFT order, real dtype;
          a negative value marks an unknown pixel, left free by the projection.
``mode``  real-space constraint: 0 none (complex object), 1 real, 2 real and
          positive.
The real-space update is written per component (real part, imaginary part) as
``new = y if ok else a*x + b*y`` with ``(a, b) = (0, 0)`` for ER,
``(1, -beta)`` for HIO and ``(beta, 1 - 2*beta)`` for RAAR; the positivity test
is made on ``y + t*(y - x)`` with ``t = 0`` for ER/HIO and ``t = 1`` for RAAR
(RAAR tests the reflection ``2y - x``).  ``update`` works on a complex
iterate (complex FFTs, in place); ``update_real`` on a real one, for the
real-to-complex FFT path (:func:`rfftn` / :func:`irfftn`) taken when the object
is real.  ``spectrum`` and ``constrain`` are the once-per-start steps: the random
starting spectrum and the support projection, also single passes.

The real path's FFT pair is a :class:`RealFFT`: on the CPU it writes into two
buffers it keeps (no 64 MB allocation and page-zeroing per transform at 256^3)
and runs the inverse in place.
"""

from __future__ import annotations

import functools
import os
import threading
from types import ModuleType

import numpy as np
import scipy.fft

from beamhub.kernels import backend

__all__ = ["ArrayOps", "FusedOps", "RealFFT", "irfftn", "ops_for", "rfftn", "update_coefficients"]

MODES = {"none": 0, "real": 1, "positive": 2}


def update_coefficients(name: str, beta: float) -> tuple[float, float, float]:
    """``(a, b, t)`` of the real-space update for algorithm ``name`` (``er``, ``hio``, ``raar``)."""
    if name == "er":
        return 0.0, 0.0, 0.0
    if name == "hio":
        return 1.0, -beta, 0.0
    if name == "raar":
        return beta, 1.0 - 2.0 * beta, 1.0
    raise ValueError(f"unknown phasing algorithm {name!r}; choose er, hio or raar")


class ArrayOps:
    """Whole-array implementation for any array module (numpy or cupy).

    Parameters
    ----------
    xp : module
        numpy or cupy; every array passed in belongs to it.
    """

    def __init__(self, xp: ModuleType):
        self.xp = xp

    def spectrum(self, amp, phases, dtype):
        """A random starting spectrum: ``amp * exp(i * phases)``, 0 where ``amp`` is unknown.

        Parameters
        ----------
        amp : real array, any shape
            Measured amplitudes (negative = unknown).
        phases : real array of ``amp``'s shape
            Phases, radians.
        dtype : complex64 or complex128
            dtype of the result.

        Returns
        -------
        complex array of ``amp``'s shape, a new array (free to overwrite).
        """
        xp = self.xp
        out = xp.where(amp >= 0, amp, 0).astype(dtype)
        out *= xp.exp(1j * phases).astype(dtype, copy=False)
        return out

    def fourier(self, f, amp, known):
        """Replace the modulus of ``f`` by ``amp`` where known; return the squared misfit before it.

        Parameters
        ----------
        f : (N,) complex array, modified in place
            Current Fourier transform, flat.
        amp : (N,) real array
            Measured amplitudes (negative = unknown).
        known : (N,) bool array
            ``amp >= 0``, precomputed once.

        Returns
        -------
        misfit : 0-d array or float
            ``sum((|f| - amp)**2)`` over known pixels.
        """
        xp = self.xp
        mod = xp.abs(f)
        diff = xp.where(known, mod - amp, 0)
        misfit = xp.vdot(diff, diff).real
        tiny = xp.finfo(mod.dtype).tiny
        scale = xp.where(known, amp / xp.maximum(mod, tiny), 1).astype(mod.dtype)
        # A zero coefficient has no phase: give it the measured amplitude at phase 0.
        fill = known & (mod == 0)
        f *= scale
        f += xp.where(fill, amp, 0).astype(mod.dtype)
        return misfit

    def update(self, x, y, support, a, b, t, mode):
        """Real-space update; writes the new iterate into both ``x`` and ``y``.

        Parameters
        ----------
        x : (N,) complex array, modified in place
            Current iterate.
        y : (N,) complex array, modified in place
            Its Fourier-projected version; on return a copy of the new ``x``.
        support : (N,) bool array
        a, b, t : float
            Update coefficients (:func:`update_coefficients`).
        mode : int
            0 none, 1 real, 2 real and positive.
        """
        xp = self.xp
        yr, yi, xr, xi = y.real, y.imag, x.real, x.imag
        if mode == 2:
            ok_r = support & ((yr + t * (yr - xr)) >= 0)
        else:
            ok_r = support
        new_r = xp.where(ok_r, yr, a * xr + b * yr)
        if mode == 0:
            new_i = xp.where(support, yi, a * xi + b * yi)
        else:
            new_i = a * xi + b * yi
        x.real[...] = new_r
        x.imag[...] = new_i
        y[...] = x

    def update_real(self, x, y, support, a, b, t, positive):
        """Real-space update of a real iterate (the real-FFT path); writes ``x`` only.

        Parameters
        ----------
        x : (N,) real array, modified in place
        y : (N,) real array
            Fourier-projected ``x``.
        support : (N,) bool array
        a, b, t : float
            Update coefficients (:func:`update_coefficients`).
        positive : bool
            Also require ``y + t*(y - x) >= 0`` inside the support.
        """
        xp = self.xp
        ok = support & ((y + t * (y - x)) >= 0) if positive else support
        x[...] = xp.where(ok, y, a * x + b * y)

    def constrain(self, x, support, mode):
        """Project ``x`` onto the support/object constraint in place (ER's real-space step)."""
        xp = self.xp
        if x.dtype.kind == "f":
            keep = support & (x >= 0) if mode == 2 else support
            x[...] = xp.where(keep, x, 0)
        elif mode == 2:
            x.real[...] = xp.where(support & (x.real >= 0), x.real, 0)
            x.imag[...] = 0
        elif mode == 1:
            x.real[...] = xp.where(support, x.real, 0)
            x.imag[...] = 0
        else:
            x[...] = xp.where(support, x, 0)


class FusedOps:
    """numba-compiled single-pass loops for numpy arrays (same contract as :class:`ArrayOps`)."""

    xp = np

    def __init__(self):
        (self._fourier, self._update, self._update_real, self._spectrum, self._constrain_real) = _compiled()

    def spectrum(self, amp, phases, dtype):  # noqa: D102 - see ArrayOps.spectrum
        out = np.empty(amp.shape, dtype)
        with _LAUNCH:
            self._spectrum(
                out.reshape(-1),
                np.ascontiguousarray(amp).reshape(-1),
                np.ascontiguousarray(phases, dtype=amp.dtype).reshape(-1),
            )
        return out

    def fourier(self, f, amp, known):  # noqa: D102 - see ArrayOps.fourier
        real = amp.dtype.type
        with _LAUNCH:
            return self._fourier(f, amp, real(0), real(1))

    def update(self, x, y, support, a, b, t, mode):  # noqa: D102 - see ArrayOps.update
        real = x.real.dtype.type
        with _LAUNCH:
            self._update(x, y, support, real(a), real(b), real(t), mode)

    def update_real(self, x, y, support, a, b, t, positive):  # noqa: D102 - see ArrayOps
        real = x.dtype.type
        with _LAUNCH:
            self._update_real(x, y, support, real(a), real(b), real(t), bool(positive))

    def constrain(self, x, support, mode):  # noqa: D102 - see ArrayOps.constrain
        if x.dtype.kind == "f" and x.flags.c_contiguous and support.flags.c_contiguous:
            with _LAUNCH:
                self._constrain_real(x.reshape(-1), support.reshape(-1), mode == 2)
        else:
            ArrayOps(np).constrain(x, support, mode)


# numba's workqueue pool is not re-entrant: concurrent launches from two Python
# threads abort the process.  The fused passes are short, so one lock is cheap.
_LAUNCH = threading.Lock()


@functools.lru_cache(maxsize=1)
def _compiled():
    """Compile (or load from numba's cache) the fused loops; raises ImportError without numba."""
    import numba  # noqa: PLC0415 - optional accelerator, imported on first use

    if "NUMBA_THREADING_LAYER" not in os.environ:
        # OpenMP workers spin after a parallel loop and then compete with
        # scipy.fft's own threads on the next FFT; workqueue threads sleep.
        numba.config.THREADING_LAYER = "workqueue"
    numba.set_num_threads(min(backend.cpu_workers(), numba.config.NUMBA_NUM_THREADS))
    options = {"parallel": True, "fastmath": True, "nogil": True}
    jit = backend.numba_jit(**options)

    # Written with selects rather than branches so LLVM vectorises the loop
    # (about 4x faster than the branchy form at 128^3); ``zero``/``one`` carry
    # the real dtype so no value is promoted to float64.
    @jit
    def fourier(f, amp, zero, one):
        misfit = 0.0
        for i in numba.prange(f.size):
            a = amp[i]
            v = f[i]
            re = v.real
            im = v.imag
            m = np.sqrt(re * re + im * im)
            known = a >= zero
            d = m - a if known else zero
            misfit += d * d
            s = a / (m if m > zero else one) if known else one
            nr = a if (known and m == zero) else re * s  # no phase: take phase 0
            f[i] = complex(nr, im * s)
        return misfit

    @jit
    def update(x, y, support, a, b, t, mode):
        for i in numba.prange(x.size):
            yv = y[i]
            xv = x[i]
            yr = yv.real
            yi = yv.imag
            xr = xv.real
            xi = xv.imag
            inside = support[i]
            if inside and (mode != 2 or yr + t * (yr - xr) >= 0):
                nr = yr
            else:
                nr = a * xr + b * yr
            if inside and mode == 0:
                ni = yi
            else:
                ni = a * xi + b * yi
            nv = nr + 1j * ni
            x[i] = nv
            y[i] = nv

    @jit
    def update_real(x, y, support, a, b, t, positive):
        zero = a - a
        for i in numba.prange(x.size):
            yv = y[i]
            xv = x[i]
            ok = support[i] and (not positive or yv + t * (yv - xv) >= zero)
            x[i] = yv if ok else a * xv + b * yv

    @jit
    def spectrum(out, amp, phases):
        for i in numba.prange(out.size):
            a = amp[i]
            p = phases[i]
            a = a if a >= a - a else a - a  # unknown (negative): no amplitude
            out[i] = complex(a * np.cos(p), a * np.sin(p))

    @jit
    def constrain_real(x, support, positive):
        for i in numba.prange(x.size):
            v = x[i]
            zero = v - v
            keep = support[i] and (not positive or v >= zero)
            x[i] = v if keep else zero

    return fourier, update, update_real, spectrum, constrain_real


def rfftn(x):
    """Real-to-complex n-D FFT of a real array on its own device (half spectrum on the last axis).

    Parameters
    ----------
    x : real array, shape ``(n0, ..., nk)``
        float32 gives complex64, float64 complex128.

    Returns
    -------
    complex array, shape ``(n0, ..., nk // 2 + 1)``, a new array.

    scipy.fft with ``cpu_workers()`` threads on the CPU, cupy.fft on the GPU.
    (kept here until backend grows an rfftn.)
    """
    xp = backend.array_module(x)
    if xp is np:
        return scipy.fft.rfftn(x, workers=backend.cpu_workers())
    return xp.fft.rfftn(x)


def irfftn(h, shape):
    """Inverse of :func:`rfftn` back to a real array of ``shape``; ``h`` is overwritten.

    Parameters
    ----------
    h : complex array, shape ``(n0, ..., nk // 2 + 1)``
        Half spectrum; used as scratch space on the CPU.
    shape : tuple of int
        ``(n0, ..., nk)``, the shape of the real result.

    Returns
    -------
    real array of ``shape`` (float32 from complex64), a new array.

    On the CPU this is done in two calls: the complex inverse over every axis but
    the last, in place in ``h``, then the complex-to-real inverse along the last
    axis.  That is what ``scipy.fft.irfftn`` computes, but irfftn first copies
    ``h`` into a fresh complex temporary whatever ``overwrite_x`` says; in place
    the inverse takes about two thirds of irfftn's time at 256^3 on 2 threads
    (benchmarks/phasing.py prints both pairs).
    """
    xp = backend.array_module(h)
    if xp is np:
        workers = backend.cpu_workers()
        if h.ndim > 1:
            h = scipy.fft.ifftn(h, axes=tuple(range(h.ndim - 1)), workers=workers, overwrite_x=True)
        return scipy.fft.irfft(h, n=shape[-1], axis=-1, workers=workers)
    return xp.fft.irfftn(h, s=shape)


class RealFFT:
    """The real-to-complex FFT pair of one real shape, writing into two buffers it keeps.

    Parameters
    ----------
    shape : tuple of int
        ``(n0, ..., nk)``, the real array's shape (2 or 3 axes in phasing).
    dtype : float32 or float64
        The real dtype; the half spectrum is complex64 or complex128.
    xp : module
        numpy or cupy.

    :meth:`forward` returns the half spectrum ``(n0, ..., nk // 2 + 1)`` in the
    pair's own buffer, :meth:`inverse` the real array in the other: each result is
    valid until the same method is called again.  On the CPU the transforms are
    scipy's pocketfft kernels with ``cpu_workers()`` threads called with ``out=``
    (through the private ``scipy.fft._pocketfft.pypocketfft``, checked once, else
    the public functions that allocate); on the GPU cupy.fft, whose memory pool
    already reuses buffers.
    """

    def __init__(self, shape, dtype, xp: ModuleType = np):
        self.shape = tuple(int(n) for n in shape)
        self.xp = xp
        real = np.dtype(dtype)
        self.half_shape = (*self.shape[:-1], self.shape[-1] // 2 + 1)
        self._kernels = _pocketfft_with_out() if xp is np else None
        if self._kernels is not None:
            complex_dtype = np.result_type(real, np.complex64)
            self._half = np.empty(self.half_shape, complex_dtype)
            self._real = np.empty(self.shape, real)
            self._workers = backend.cpu_workers()

    def forward(self, x):
        """Half spectrum of the real array ``x`` (shape ``shape``), not normalised."""
        if self._kernels is None:
            return rfftn(x)
        axes = tuple(range(x.ndim))
        return self._kernels.r2c(x, axes=axes, forward=True, inorm=0, out=self._half, nthreads=self._workers)

    def inverse(self, h):
        """Real array of ``shape`` whose :meth:`forward` is ``h`` (divided by N); ``h`` is overwritten."""
        if self._kernels is None:
            return irfftn(h, self.shape)
        workers, last = self._workers, h.ndim - 1
        if last:
            h = self._kernels.c2c(h, axes=tuple(range(last)), forward=False, inorm=2, out=h, nthreads=workers)
        return self._kernels.c2r(
            h, axes=(last,), lastsize=self.shape[-1], forward=False, inorm=2, out=self._real, nthreads=workers
        )


@functools.lru_cache(maxsize=1)
def _pocketfft_with_out():
    """scipy's pypocketfft module if its ``out=`` kernels behave as expected here, else None.

    It is scipy's private binding (the public scipy.fft has no ``out=``): a small
    round trip checks the signatures and the normalisation once, so that a scipy
    that changes it falls back to the public, allocating calls.
    """
    try:
        from scipy.fft._pocketfft import pypocketfft  # noqa: PLC0415 - private, checked below

        x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
        h = np.empty((2, 3, 3), np.complex64)
        y = np.empty_like(x)
        pypocketfft.r2c(x, axes=(0, 1, 2), forward=True, inorm=0, out=h, nthreads=1)
        if not np.allclose(h, scipy.fft.rfftn(x), atol=1e-4):
            return None
        pypocketfft.c2c(h, axes=(0, 1), forward=False, inorm=2, out=h, nthreads=1)
        pypocketfft.c2r(h, axes=(2,), lastsize=4, forward=False, inorm=2, out=y, nthreads=1)
        return pypocketfft if np.allclose(y, x, atol=1e-4) else None
    except Exception:  # noqa: BLE001 - any change in the private API means: do not use it
        return None


def _numba_usable() -> bool:
    try:
        _compiled()
    except ImportError:
        return False
    return True


def ops_for(xp: ModuleType, fused: bool | None = None):
    """The operator set for arrays of module ``xp``.

    Parameters
    ----------
    xp : module
        numpy or cupy.
    fused : bool or None
        None (default): numba loops for numpy when numba imports, else
        whole-array expressions.  True demands numba (ImportError without it);
        False forces the whole-array expressions.
    """
    if xp is np and fused is not False:
        if fused or _numba_usable():
            return FusedOps()
    return ArrayOps(xp)
