"""Which code runs the EMC kernels, chosen once: :func:`ops_for`.

Three interchangeable operator sets implement the same small set of operations:

* :class:`~beamhub.kernels.emc._native.NativeOps` — C with OpenMP threads and AVX2 / FMA
  vectors (``_native.c``), for numpy arrays on an x86-64 CPU with a C compiler;
* :class:`~beamhub.kernels.emc._numba.NumbaOps` — numba-compiled multithreaded loops, for
  numpy arrays where the C kernels cannot be built;
* :class:`ArrayOps` — whole-array expressions written once for any array module (numpy
  without numba, cupy on a GPU).

The iteration (:mod:`~beamhub.kernels.emc.iteration`) never branches on which one it has.
Each rank takes a contiguous share of the orientations for every frame (as Dragonfly
splits them), whichever set runs.

The operations (``P`` / ``L``: the set's own layout of the frames x orientations matrix of
this rank's share; :meth:`to_layout` / :meth:`from_layout` convert from / to (nd, n)):

``prepare(detector, frames, rot, log_weights, weights)``
    this rank's orientations and the detector, in the set's form (once per run);
``slice_model(model, rot, q, center, good)``
    the model at the rotated pixels (Dragonfly's ``slice_gen3d``);
``likelihood(model, prep, out=None)``
    ``L = log w_r + Σ_t K_dt log W_rt`` over the likelihood pixels, and ``Σ_t W_rt``;
``prob_shift / prob_exp / prob_norm``
    the three per-frame passes that turn ``L`` into annealed probabilities in place
    (combined over ranks by :func:`~beamhub.kernels.emc.maximize.probabilities`);
``merge(P, prep, den)``
    the probability-weighted photons of every orientation splatted into the model grid;
``merge_weights(rot, q, center, size)``
    the interpolation weight every voxel gets from those splats (data-independent).
"""

from __future__ import annotations

import os
from types import ModuleType

import numpy as np

from beamhub.kernels.emc import _native, _numba
from beamhub.kernels.emc._arrays import ArrayOps

__all__ = ["ArrayOps", "ops_for", "KINDS"]

#: Names accepted by :func:`ops_for` (and ``BEAMHUB_EMC_KERNELS``).
KINDS = ("native", "numba", "array")


def _wanted(kind: str | None) -> str:
    kind = kind or os.environ.get("BEAMHUB_EMC_KERNELS") or "auto"
    if kind not in KINDS + ("auto",):
        raise ValueError(f"unknown EMC kernels {kind!r}; choose one of {', '.join(KINDS)} or auto")
    return kind


def ops_for(xp: ModuleType = np, kind: str | None = None, chunk: int = 256):
    """The operator set for arrays of module ``xp`` on this machine.

    Parameters
    ----------
    xp : module
        numpy or cupy.
    kind : {"native", "numba", "array", "auto"} or None
        None / "auto" (default, or ``$BEAMHUB_EMC_KERNELS``): for numpy the C kernels when
        they build here (not with ``BEAMHUB_EMC_NATIVE=0``), else the numba loops when
        numba imports (not with ``BEAMHUB_EMC_NUMBA=0``), else whole-array expressions;
        for cupy always the whole-array expressions.  A named kind is demanded
        (RuntimeError when it cannot run here).
    chunk : int
        Orientations per chunk on the numba and whole-array sets.
    """
    kind = _wanted(kind)
    if xp is not np:
        if kind in ("native", "numba"):
            raise RuntimeError(f"the {kind} EMC kernels work on numpy arrays, not {xp.__name__}")
        return ArrayOps(xp, chunk)
    if kind in ("auto", "native"):
        if _native.available():
            return _native.NativeOps()
        if kind == "native":
            raise RuntimeError("the C EMC kernels cannot be built here (x86-64 with AVX2 and a C compiler needed)")
    if kind in ("auto", "numba"):
        if _numba.available():
            return _numba.NumbaOps(chunk)
        if kind == "numba":
            raise RuntimeError("the numba EMC kernels need numba: pip install numba")
    return ArrayOps(np, chunk)
