"""The C kernels of the CPU EMC iteration (``_native.c``): built on first use, loaded with ctypes.

Why C: the two photon products are sparse-times-dense with 32 orientations per row; kept
in vector registers they run ~1.5x faster than the best numba form, and the annealed
probabilities use vectorised ``expf``/``logf`` (glibc's libmvec), which numba's LLVM
has no access to.  The library is compiled once per machine type with the system C
compiler (``$CC``, else gcc/cc; ``-O3 -march=native -ffast-math -fopenmp``, linked without
-ffast-math so the process keeps IEEE subnormals) into
``$BEAMHUB_CACHE_DIR`` (default ``~/.cache/beamhub``), named by a hash of the source, the
flags and the CPU, and renamed into place (concurrent MPI ranks may build it at once).
Without a compiler, AVX2 or OpenMP the numba loops are used (``BEAMHUB_EMC_NATIVE=0``
forces that); both are checked against the whole-array numpy path by the tests.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
import warnings
from pathlib import Path

import numpy as np

SOURCE = Path(__file__).with_name("_native.c")
#: Compile flags.  -ffast-math is needed for glibc's vectorised expf/logf, but only when
#: compiling: linked with it, gcc 12 adds crtfastmath.o, whose constructor turns on
#: flush-to-zero for the whole process (numpy and everything else would lose subnormals).
FLAGS = ["-O3", "-march=native", "-ffast-math", "-fopenmp", "-fPIC", "-std=c11"]
LINK_FLAGS = ["-shared", "-fopenmp"]
#: One native call at a time per process (OpenMP teams from two Python threads would oversubscribe).
LAUNCH = threading.Lock()

__all__ = ["available", "library", "tile_width", "likelihood", "probabilities", "merge"]


def _cpu_signature() -> str:
    """CPU model and flags: a library built with -march=native runs only on its kind of CPU."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor()
    keep = [ln for ln in text.splitlines() if ln.startswith(("model name", "flags"))][:2]
    return "\n".join(keep)


def _has_avx2() -> bool:
    if platform.machine() not in ("x86_64", "AMD64"):
        return False
    flags = _cpu_signature()
    return " avx2" in flags and " fma" in flags


def _cache_dir() -> Path:
    base = os.environ.get("BEAMHUB_CACHE_DIR")
    if base:
        return Path(base)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "beamhub"


def _compiler() -> str | None:
    return os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")


def build(cc: str, dest_dir: Path) -> Path:
    """Compile ``_native.c`` into ``dest_dir`` (once per source/flags/CPU); returns the .so path."""
    source = SOURCE.read_bytes()
    key = hashlib.sha256(source + " ".join([cc] + FLAGS + LINK_FLAGS).encode() + _cpu_signature().encode())
    target = dest_dir / f"emc_native_{key.hexdigest()[:16]}.so"
    if target.exists():
        return target
    dest_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".emc_native_", suffix=".so", dir=dest_dir)
    os.close(fd)
    obj = tmp[:-3] + ".o"
    try:
        for cmd in ([cc, *FLAGS, "-c", str(SOURCE), "-o", obj],
                    [cc, *LINK_FLAGS, obj, "-o", tmp, "-lm"]):
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
            if res.returncode != 0:
                raise RuntimeError(f"{cc} could not build {SOURCE.name}: {res.stderr.strip()[:2000]}")
        os.replace(tmp, target)
    finally:
        for leftover in (tmp, obj):
            if os.path.exists(leftover):
                os.unlink(leftover)
    return target


_P = ctypes.c_void_p
_I = ctypes.c_int64
_D = ctypes.c_double
_SIGNATURES = {
    "emc_tile_width": ([], ctypes.c_int),
    "emc_likelihood": ([ctypes.c_int, _P, _I, _I, _P, _I, _P, _D, _P, _I, _I, _P, _P, _P, _P, _P, _P], None),
    "emc_prob_shift": ([ctypes.c_int, _P, _I, _I, _I, _P, _P, _P, _P], None),
    "emc_prob_exp": ([ctypes.c_int, _P, _I, _I, _P, _P, _D, _P, _P], None),
    "emc_prob_norm": ([ctypes.c_int, _P, _I, _I, _P, _P, _P, _P, _D, _D, _P, _P, _P], None),
    "emc_merge": ([ctypes.c_int, _P, _I, _I, _I, _P, _P, _P, _I, _P, _P, _P, _P, _D, _I, _P], None),
}


@functools.lru_cache(maxsize=1)
def library():
    """The loaded library, or None (with one warning saying why) when it cannot be had."""
    if os.environ.get("BEAMHUB_EMC_NATIVE", "1") == "0":
        return None
    if not _has_avx2():
        return None
    cc = _compiler()
    if cc is None:
        return None
    try:
        lib = ctypes.CDLL(str(build(cc, _cache_dir())))
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        warnings.warn(f"EMC native kernels unavailable, using numba: {exc}", RuntimeWarning, stacklevel=2)
        return None
    for name, (args, res) in _SIGNATURES.items():
        fn = getattr(lib, name)
        fn.argtypes = args
        fn.restype = res
    return lib


def available() -> bool:
    """True when the native kernels can be used on this machine."""
    return library() is not None


def tile_width() -> int:
    """Orientations per tile (the last axis of the tile-major probability matrix)."""
    return int(library().emc_tile_width())


def _ptr(a: np.ndarray):
    return a.ctypes.data_as(ctypes.c_void_p)


def _c(a, dtype) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=dtype)


def padded(values, num_chunks: int, fill: float, dtype=np.float64) -> np.ndarray:
    """``values`` (shape (nr, ...)) padded along axis 0 to ``num_chunks * tile_width()`` with ``fill``."""
    values = np.asarray(values, dtype=dtype)
    n = num_chunks * tile_width()
    out = np.full((n,) + values.shape[1:], fill, dtype=dtype)
    out[: len(values)] = values
    return out


def likelihood(threads: int, model, rot_pad, q, center: float, good_pos, lik_csr, bias_pad):
    """``L = log w + K log W`` for every frame and orientation, tile-major, and the slice sums.

    Parameters
    ----------
    model : ndarray, shape (s, s, s), float64
    rot_pad : ndarray, shape (nchunk * CW, 3, 3), float64
        Rotation matrices, padded to whole tiles.
    q : ndarray, shape (npix, 3), float64
    good_pos : ndarray, shape (npix,), int32
        Index of each pixel among the likelihood (mask-0) pixels, or -1.
    lik_csr : scipy.sparse.csr_matrix, shape (nd, ngood), float32
        Photon counts on the likelihood pixels.
    bias_pad : ndarray, shape (nchunk * CW,), float32
        ``log w_r`` (and a large negative number for the padding).

    Returns
    -------
    L : ndarray, shape (nchunk, nd, CW), float32
    sums : ndarray, shape (nchunk * CW,), float64
        ``Σ_t W_rt`` over the likelihood pixels.
    """
    lib = library()
    cw = tile_width()
    nchunk = len(rot_pad) // cw
    nd, ngood = lik_csr.shape
    model = _c(model, np.float64)
    rot = _c(rot_pad, np.float64)
    q = _c(q, np.float64)
    good_pos = _c(good_pos, np.int32)
    indptr, indices, data = _c(lik_csr.indptr, np.int64), _c(lik_csr.indices, np.int32), _c(lik_csr.data, np.float32)
    bias = _c(bias_pad, np.float32)
    L = np.empty((nchunk, nd, cw), dtype=np.float32)
    sums = np.empty(nchunk * cw, dtype=np.float64)
    with LAUNCH:
        lib.emc_likelihood(threads, _ptr(model), model.shape[0], nchunk, _ptr(rot), len(q), _ptr(q),
                           float(center), _ptr(good_pos), ngood, nd, _ptr(indptr), _ptr(indices),
                           _ptr(data), _ptr(bias), _ptr(L), _ptr(sums))
    return L, sums


def probabilities(threads: int, L, num_valid: int, col0: int, beta, logw_pad, phi, sums_pad,
                  frame_scale, cutoff: float, floor: float, comm):
    """Turn the tile-major ``L`` into probabilities in place, over all ranks' orientations.

    Each rank holds every frame and the orientations ``col0 : col0 + num_valid`` (its tiles);
    the per-frame maximum, normalisation and figures are combined over ``comm`` between the
    three passes of ``emc_prob_*``, so every rank ends with the same per-frame results.

    Parameters
    ----------
    L : ndarray, shape (nchunk, nd, CW), float32
        This rank's ``log w + K log W``; overwritten with ``P`` (0 at or below ``floor``).
    num_valid : int
        Real orientations in this rank's tiles (the rest is padding).
    col0 : int
        Global index of this rank's first orientation.
    beta, phi, frame_scale : ndarray, shape (nd,)
        Inverse temperature, expected-photons factor and scale (``φ_d``, or 1) per frame.
    logw_pad, sums_pad : ndarray, shape (nchunk * CW,)
        ``log w_r`` and ``Σ_t W_rt`` of this rank's orientations.

    Returns
    -------
    best : ndarray, shape (nd,), int64
        Global index of each frame's most likely orientation (the first, on ties).
    sum_ev, tot : ndarray, shape (nd,), float64
        ``Σ_r e v`` and ``Σ_r e`` (e = exp(x)); the likelihood is ``sum_ev / tot − Σ log K!``.
    mutual_info, expected : ndarray, shape (nd,), float64
        ``Σ_{P ≥ floor} P log(P / w)`` and ``Σ_r P Σ_t W_rt``.
    den : ndarray, shape (nchunk * CW,), float64
        ``Σ_d φ_d P_dr`` of this rank's orientations (complete: every rank has every frame).
    """
    lib = library()
    nchunk, nd, cw = L.shape
    beta, phi, sums, fscale = (_c(a, np.float64) for a in (beta, phi, sums_pad, frame_scale))
    logw = _c(logw_pad, np.float32)
    top = np.empty(nd)
    arg = np.empty(nd, dtype=np.int64)
    with LAUNCH:
        lib.emc_prob_shift(threads, _ptr(L), nchunk, nd, num_valid, _ptr(phi), _ptr(sums), _ptr(top),
                           _ptr(arg))
    best_top = comm.allreduce_max(top)
    mine = np.where(top == best_top, arg + col0, np.iinfo(np.int64).max)
    best = comm.allreduce_min(mine)
    tot, sum_ev = np.empty(nd), np.empty(nd)
    with LAUNCH:
        lib.emc_prob_exp(threads, _ptr(L), nchunk, nd, _ptr(best_top), _ptr(beta), float(cutoff),
                         _ptr(tot), _ptr(sum_ev))
    tot = comm.allreduce_sum(tot)
    sum_ev = comm.allreduce_sum(sum_ev)
    info, expected = np.empty(nd), np.empty(nd)
    den = np.zeros((threads, nchunk * cw))
    with LAUNCH:
        lib.emc_prob_norm(threads, _ptr(L), nchunk, nd, _ptr(tot), _ptr(logw), _ptr(sums),
                          _ptr(fscale), float(cutoff), float(floor), _ptr(info), _ptr(expected),
                          _ptr(den))
    info = comm.allreduce_sum(info)
    expected = comm.allreduce_sum(expected)
    return best, sum_ev, tot, info, expected, den.sum(axis=0)


def merge(threads: int, P, num_rot: int, counts_csr, den_pad, corr, rot_pad, q, center: float,
          size: int):
    """Probability-weighted photons of every orientation splatted into the model grid.

    Parameters
    ----------
    P : ndarray, shape (nchunk, nd, CW), float32
        From :func:`probabilities` (0 at or below the floor).
    counts_csr : scipy.sparse.csr_matrix, shape (nd, npix), float32
        Photon counts, frames as rows.
    den_pad : ndarray, shape (nchunk * CW,), float64
        ``Σ_d φ_d P_dr`` over all frames (all ranks).
    corr : ndarray, shape (npix,), float64

    Returns
    -------
    ndarray, shape (size, size, size), float64
        Sum of the splatted values ``Σ_d P K / den_r / corr_t`` (weights are separate).
    """
    lib = library()
    nchunk, nd, _ = P.shape
    acc = np.zeros((threads, size, size, size))
    k = counts_csr
    indptr, indices, data = _c(k.indptr, np.int64), _c(k.indices, np.int32), _c(k.data, np.float32)
    den = _c(den_pad, np.float64)
    corr = _c(corr, np.float64)
    rot = _c(rot_pad, np.float64)
    q = _c(q, np.float64)
    with LAUNCH:
        lib.emc_merge(threads, _ptr(P), nchunk, nd, num_rot, _ptr(indptr), _ptr(indices), _ptr(data),
                      k.shape[1], _ptr(den), _ptr(corr), _ptr(rot), _ptr(q), float(center), size,
                      _ptr(acc))
    return acc.sum(axis=0)
