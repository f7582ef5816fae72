"""gridrec's CPU loops: spreading the polar spectrum and finishing the image, in C or numba.

A private sibling of :mod:`beamhub.kernels.tomo.gridrec` (as scikit-image keeps
``_radon_transform.pyx`` beside ``radon_transform.py``); the maths and the
array conventions are documented there.  Three loops:

* ``spread`` multiplies each polar sample by its filter and phases, forms
  the complex pair value ``A + iB`` (and its mirror ``conj(A) + i conj(B)`` at
  ``-k``) and adds it, weighted by the separable Kaiser-Bessel kernel, into a
  padded Cartesian grid.  The kernel weights are interpolated from a fine table
  at run time, so no per-geometry gridding matrix is built or kept.
* ``fold`` wraps the padded grid's borders onto the periodic FFT grid;
* ``finish`` takes the two inverse FFTs' result and writes the deapodised
  real and imaginary parts as the two slices.

All three release the GIL and run on one core; gridrec runs pairs of slices
on threads.  The tap loops run over a runtime length (``taps``) on purpose: LLVM's
loop vectoriser then turns each grid-row update into SIMD code, whereas a
constant length is unrolled first and stays scalar (numba leaves LLVM's SLP
vectoriser off).

:func:`loops` picks the C versions of the same three loops (``_gridrec.c``, built once per
machine by :mod:`beamhub.kernels.native`; 1.6x faster spreading, see there) and falls back to
these numba ones without a C compiler or AVX2, or with ``BEAMHUB_TOMO_NATIVE=0``.
"""

from __future__ import annotations

import ctypes
import functools
import os
from pathlib import Path

import numpy as np

from beamhub.kernels import backend, native

#: Writes per grid row are padded to this many cells (the extra weights are 0)
#: so each row update is one SIMD-friendly block of contiguous cells.
ROW_BLOCK = 8
#: Angles spread together (see ``spread``).
ANGLE_BLOCK = 32


SOURCE = Path(__file__).with_name("_gridrec.c")
_P = ctypes.c_void_p
_I = ctypes.c_int64
_SIGNATURES = {
    "gridrec_taps": ([], ctypes.c_int),
    "gridrec_spread": ([_P] * 7 + [_I, _I, _P, _I, _I, _I, _P, _I], None),
    "gridrec_fold": ([_P, _I, _I, _I, _I, _P, _I], None),
    "gridrec_finish": ([_P, _I, _P, _I, _I, _I, _P, _P, _P], None),
}


@functools.lru_cache(maxsize=1)
def library():
    """The C loops' library, or None (numba then); ``BEAMHUB_TOMO_NATIVE=0`` forces None."""
    if os.environ.get("BEAMHUB_TOMO_NATIVE", "1") == "0":
        return None
    lib = native.load(SOURCE, _SIGNATURES, what="gridrec's C loops")
    if lib is not None and lib.gridrec_taps() != ROW_BLOCK:
        raise RuntimeError(f"_gridrec.c writes {lib.gridrec_taps()} cells a row, gridrec plans for {ROW_BLOCK}")
    return lib


def _ptr(a: np.ndarray) -> int:
    return a.ctypes.data


def _row_pitch(a: np.ndarray) -> int:
    """Complex elements between rows of a 2-D complex64 array whose rows are contiguous."""
    if a.strides[1] != a.itemsize:
        raise ValueError("gridrec's C loops need rows of contiguous complex64 cells")
    return a.strides[0] // a.itemsize


def _c_loops(lib):
    """``(spread, fold, finish)`` calling the C library, with the numba loops' signatures."""

    def spread(spec_a, spec_b, phase, row_a, row_b, step_x, step_y, table, per_cell, width, origin, grid, stride, taps):
        arrays = [np.ascontiguousarray(x) for x in (spec_a, spec_b, phase, row_a, row_b)]
        steps = [np.ascontiguousarray(x, dtype=np.float64) for x in (step_x, step_y)]
        n_angles, half = arrays[0].shape
        if arrays[1].shape != (n_angles, half) or arrays[2].shape != (n_angles, half) or taps != ROW_BLOCK:
            raise ValueError("gridrec spread: spectra, phases and taps do not agree")
        table = np.ascontiguousarray(table, dtype=np.float32)
        lib.gridrec_spread(
            *(_ptr(x) for x in arrays + steps), n_angles, half, _ptr(table), per_cell, width, origin, _ptr(grid), stride
        )

    def fold(grid, stride, origin, m, out):
        lib.gridrec_fold(_ptr(grid), grid.size // stride, stride, origin, m, _ptr(out), _row_pitch(out))

    def finish(upper, lower, scale, out_a, out_b):
        n = out_a.shape[0]
        if not (out_a.flags.c_contiguous and out_b.flags.c_contiguous):
            raise ValueError("gridrec finish: the output slices must be C-contiguous")
        scale = np.ascontiguousarray(scale, dtype=np.float32)
        lib.gridrec_finish(
            _ptr(upper),
            _row_pitch(upper),
            _ptr(lower),
            _row_pitch(lower),
            n,
            upper.shape[1],
            _ptr(scale),
            _ptr(out_a),
            _ptr(out_b),
        )

    return spread, fold, finish


@functools.lru_cache(maxsize=1)
def loops():
    """``(spread, fold, finish)``: the C loops where they build, else the numba ones.

    Raises ImportError where neither can be had (no C compiler and no numba); gridrec then
    uses its sparse-matrix path.
    """
    lib = library()
    if lib is not None:
        return _c_loops(lib)
    return compiled()


@functools.lru_cache(maxsize=1)
def compiled():
    """``(spread, fold, finish)`` compiled with numba (or loaded from its cache).

    Raises ImportError where numba is missing; the caller then uses the sparse path.
    """
    import numba  # noqa: PLC0415 - optional accelerator, imported on first use

    options = {"nogil": True, "fastmath": True, "boundscheck": False}
    jit = backend.numba_jit(**options)
    u64 = numba.uint64

    @jit
    def spread(spec_a, spec_b, phase, row_a, row_b, step_x, step_y, table, per_cell, width, origin, grid, stride, taps):
        """Add the pair's polar samples into the padded complex grid (flat, rows x stride).

        spec_a, spec_b : (angles, half) complex64, rfft of the two rows' projections
        phase : (angles, half) complex64, filter x per-angle phase (shared by all rows)
        row_a, row_b : (half,) complex64, each row's axis-shift phase
        step_x, step_y : (angles,) float64, grid cells per frequency index along x and y
        table : float32 kernel profile, ``per_cell`` samples a cell over ``width`` cells
        origin : index of grid cell 0 in each padded axis
        grid : complex64, flat (rows * stride), zeroed by the caller
        taps : ROW_BLOCK (a runtime value on purpose, see the module docstring)
        """
        n_angles, half = spec_a.shape
        wx = np.zeros(taps, np.float32)
        wxr = np.zeros(taps, np.float32)
        wy = np.zeros(width, np.float32)
        hw = width * 0.5
        st = u64(stride)
        # Angles in blocks, the block's lines walked outwards together: neighbouring
        # lines overlap on the grid, so their cells are still in cache (~10 % faster).
        for a0 in range(0, n_angles, ANGLE_BLOCK):
            for k in range(half - 1):  # the Nyquist sample is dropped (no sign)
                for a in range(a0, min(a0 + ANGLE_BLOCK, n_angles)):
                    cx = step_x[a]
                    cy = step_y[a]
                    ph = phase[a, k]
                    za = spec_a[a, k] * (ph * row_a[k])
                    zb = spec_b[a, k] * (ph * row_b[k])
                    # A + iB at +k; conj(A) + i conj(B) at -k (both rows are real).
                    pr = za.real - zb.imag
                    pi = za.imag + zb.real
                    mr = za.real + zb.imag
                    mi = zb.real - za.imag
                    gx = cx * k
                    gy = cy * k
                    fx = np.floor(gx - hw) + 1.0
                    fy = np.floor(gy - hw) + 1.0
                    px = (fx - gx + hw) * per_cell
                    py = (fy - gy + hw) * per_cell
                    ix = int(px)
                    iy = int(py)
                    tx = np.float32(px - ix)
                    ty = np.float32(py - iy)
                    for j in range(width):
                        i = ix + j * per_cell
                        w = table[i] + tx * (table[i + 1] - table[i])
                        wx[j] = w
                        wxr[width - 1 - j] = w
                        i = iy + j * per_cell
                        wy[j] = table[i] + ty * (table[i + 1] - table[i])
                    base = u64(int(fy) + origin) * st + u64(int(fx) + origin)
                    zp = complex(pr, pi)
                    for jy in range(width):
                        v = np.complex64(zp * wy[jy])
                        b = base + u64(jy) * st
                        for j in range(taps):
                            grid[b + u64(j)] += v * wx[j]
                    if k > 0:
                        # The mirror point -g: cells -(fx + j) carry the same weights reversed.
                        base = u64(origin - int(fy) - (width - 1)) * st + u64(origin - int(fx) - (width - 1))
                        zm = complex(mr, mi)
                        for jy in range(width):
                            v = np.complex64(zm * wy[width - 1 - jy])
                            b = base + u64(jy) * st
                            for j in range(taps):
                                grid[b + u64(j)] += v * wxr[j]

    @jit
    def fold(grid, stride, origin, m, out):
        """Wrap the padded grid onto the periodic (m, m) complex grid, centred order.

        ``out[i, j]`` holds cell ``(i - m//2, j - m//2)`` (``out`` may have spare
        columns past m, left untouched); it need not be zeroed:
        the central block is copied, then the border strips beyond it are added.
        """
        h = m // 2
        lo = origin - h  # padded index of centred index 0
        rows = grid.size // stride
        for i in range(m):
            r0 = (lo + i) * stride + lo
            for j in range(m):
                out[i, j] = grid[r0 + j]
        for py in range(rows):
            inside_row = lo <= py < lo + m
            i = (py - lo) % m
            r0 = py * stride
            for px in range(stride):
                if inside_row and lo <= px < lo + m:
                    continue
                v = grid[r0 + px]
                if v != 0:
                    out[i, (px - lo) % m] += v

    @jit
    def finish(upper, lower, scale, out_a, out_b):
        """Deapodised real and imaginary parts of the kept image block as two slices.

        upper : (N - N//2, m) complex64, image rows 0 .. N - N//2 - 1 of the grid's
        transform (y >= 0 in FFT order); lower : (N//2, m), rows m - N//2 .. m - 1
        (y < 0).  Only columns -(N//2) .. N - N//2 - 1 (mod m) are kept.
        scale : (N,) float32, deapodisation with the centring sign, by signed index + N//2
        out_a, out_b : (N, N) float32
        """
        n = out_a.shape[0]
        h = n // 2
        m = upper.shape[1]
        for y in range(n):
            sy = scale[y]
            for x in range(n):
                col = (x - h) % m
                if y < h:
                    v = lower[y, col]
                else:
                    v = upper[y - h, col]
                s = sy * scale[x]
                out_a[y, x] = v.real * s
                out_b[y, x] = v.imag * s

    return spread, fold, finish
