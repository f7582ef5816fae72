"""One place that decides numpy or cupy, and one FFT helper for both.

Kernels are written once against the array namespace of their input
(``xp = array_module(x)``) and never branch on numpy vs cupy inside an
algorithm.  The process-wide choice comes from ``BEAMHUB_BACKEND``:

``numpy``  always the CPU;
``cupy``   the GPU, and an error if cupy or a device is missing;
``auto``   (default) cupy when it imports and sees a device, else numpy.

cupy is imported lazily, so a CPU install never needs it.
"""

from __future__ import annotations

import functools
import os
from types import ModuleType
from typing import Any

import numpy as np
import scipy.fft

_VALID = ("numpy", "cupy", "auto")


class BackendError(RuntimeError):
    """The requested backend cannot be used here (cupy missing, no GPU, bad name)."""


@functools.lru_cache(maxsize=1)
def _cupy() -> ModuleType | None:
    """cupy when it imports and a device answers, else None (cached once per process)."""
    try:
        import cupy  # noqa: PLC0415 - lazy on purpose

        if cupy.cuda.runtime.getDeviceCount() < 1:
            return None
        return cupy
    except Exception:  # ImportError, CUDARuntimeError, missing driver...
        return None


def gpu_available() -> bool:
    """True when cupy imports and sees at least one CUDA device."""
    return _cupy() is not None


def backend_name(requested: str | None = None) -> str:
    """Resolve ``requested`` (or ``BEAMHUB_BACKEND``) to ``"numpy"`` or ``"cupy"``."""
    name = (requested or os.environ.get("BEAMHUB_BACKEND") or "auto").strip().lower()
    if name not in _VALID:
        raise BackendError(f"BEAMHUB_BACKEND={name!r} is not one of {', '.join(_VALID)}")
    if name == "auto":
        return "cupy" if gpu_available() else "numpy"
    if name == "cupy" and not gpu_available():
        raise BackendError(
            "BEAMHUB_BACKEND=cupy but cupy is not installed or sees no GPU; "
            "install beamhub[gpu] on a GPU node or use BEAMHUB_BACKEND=numpy"
        )
    return name


def describe() -> str:
    """One line saying which backend this process uses and why (printed by GPU images at start)."""
    requested = (os.environ.get("BEAMHUB_BACKEND") or "auto").strip().lower()
    try:
        import cupy  # noqa: PLC0415 - lazy on purpose

        installed = f"cupy {cupy.__version__}"
    except Exception:  # noqa: BLE001 - any import failure means no cupy here
        installed = ""
    if gpu_available():
        device = _cupy().cuda.runtime.getDeviceProperties(0)["name"]
        name = device.decode() if isinstance(device, bytes) else str(device)
        return f"beamhub backend: cupy on {name} (BEAMHUB_BACKEND={requested})"
    why = f"{installed} is installed but sees no CUDA device" if installed else "cupy is not installed"
    return f"beamhub backend: numpy on the CPU ({why}; BEAMHUB_BACKEND={requested})"


def get_xp(requested: str | None = None) -> ModuleType:
    """The array module (numpy or cupy) for ``requested`` or the process default."""
    return _cupy() if backend_name(requested) == "cupy" else np


def array_module(x: Any) -> ModuleType:
    """The array namespace an array belongs to: cupy for a cupy array, else numpy."""
    mod = type(x).__module__
    if mod.startswith("cupy"):
        return _cupy() or np
    return np


def asarray(x: Any, xp: ModuleType | None = None, dtype=None):
    """``x`` as an array of module ``xp`` (default: the process backend); copies across devices."""
    xp = xp or get_xp()
    if xp is np:
        return np.asarray(to_numpy(x), dtype=dtype)
    return xp.asarray(x, dtype=dtype)


def to_numpy(x: Any) -> np.ndarray:
    """A numpy array from a numpy or cupy array (a device-to-host copy for cupy)."""
    if type(x).__module__.startswith("cupy"):
        return x.get()
    return np.asarray(x)


def cpu_workers() -> int:
    """Threads for CPU FFTs and chunked loops: ``BEAMHUB_THREADS``, else the usable cores."""
    env = os.environ.get("BEAMHUB_THREADS")
    if env:
        return max(1, int(env))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def numba_jit(**options):
    """numba's ``njit`` decorator with ``options``, caching the compiled loops on disk where it can.

    The kernels' numba loops use it, so one rule holds for all of them: compiled once per install
    and loaded from numba's cache afterwards; where the install and the home folder are both
    unwritable numba cannot cache, and the loops are compiled in each process instead.  Raises
    ImportError where numba is missing (the callers then take their array path).
    """
    import numba  # noqa: PLC0415 - optional accelerator, imported on first use

    try:
        jit = numba.njit(cache=True, **options)
        jit(lambda: None)  # raises where no cache locator is writable
    except RuntimeError:
        jit = numba.njit(**options)
    return jit


def _fft_module(x):
    xp = array_module(x)
    if xp is np:
        return scipy.fft, {"workers": cpu_workers()}
    return xp.fft, {}


def fftn(x, axes=None, overwrite_x: bool = False):
    """Forward n-D FFT over ``axes`` (default all) on the array's own device.

    On CPU this is scipy.fft with ``cpu_workers()`` threads; the dtype is kept
    (complex64 in, complex64 out), which halves memory traffic against numpy.fft.
    """
    mod, kw = _fft_module(x)
    if mod.__name__.startswith("scipy"):
        kw["overwrite_x"] = overwrite_x
    return mod.fftn(x, axes=axes, **kw)


def ifftn(x, axes=None, overwrite_x: bool = False):
    """Inverse n-D FFT over ``axes`` (default all); see :func:`fftn`."""
    mod, kw = _fft_module(x)
    if mod.__name__.startswith("scipy"):
        kw["overwrite_x"] = overwrite_x
    return mod.ifftn(x, axes=axes, **kw)


def rfft(x, n=None, axis=-1):
    """Real-input FFT along one axis on the array's own device."""
    mod, kw = _fft_module(x)
    return mod.rfft(x, n=n, axis=axis, **kw)


def irfft(x, n=None, axis=-1):
    """Inverse of :func:`rfft` along one axis."""
    mod, kw = _fft_module(x)
    return mod.irfft(x, n=n, axis=axis, **kw)


def fftshift(x, axes=None):
    """``fftshift`` of the array's own module."""
    return array_module(x).fft.fftshift(x, axes=axes)


def ifftshift(x, axes=None):
    """``ifftshift`` of the array's own module."""
    return array_module(x).fft.ifftshift(x, axes=axes)


def float_dtype(dtype, xp: ModuleType = np):
    """scikit-image's policy: float16 -> float32; float32 stays; everything else float64."""
    dtype = np.dtype(dtype)
    if dtype in (np.float16, np.float32, np.complex64):
        return xp.float32
    return xp.float64


def default_rng(seed=None) -> np.random.Generator:
    """A numpy Generator from a seed, an existing Generator, or None."""
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)


if __name__ == "__main__":  # python -m beamhub.kernels.backend: the one-line report
    print(describe(), flush=True)
