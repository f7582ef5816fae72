"""One rank's share of an EMC problem, in the form the operator sets work on.

Every operator set (:mod:`~beamhub.kernels.emc.ops`) splits the work the same way: each
rank takes a contiguous run of whole orientation tiles for every frame (as Dragonfly
splits its orientations) and keeps every frame.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from beamhub.kernels.backend import cpu_workers
from beamhub.kernels.emc.expand import good_positions

__all__ = ["Prepared", "padded", "prepare_share", "share_of", "threads_per_process"]


def threads_per_process(limit: int | None = None) -> int:
    """Threads for this process: BEAMHUB_THREADS, else NUMBA_NUM_THREADS, else the usable
    cores shared among the MPI ranks on this node (so `mpiexec -n 2` on 2 cores uses 1 each)."""
    if os.environ.get("BEAMHUB_THREADS"):
        want = cpu_workers()
    elif os.environ.get("NUMBA_NUM_THREADS"):
        want = int(os.environ["NUMBA_NUM_THREADS"])
    else:
        local = os.environ.get("OMPI_COMM_WORLD_LOCAL_SIZE") or os.environ.get("MPI_LOCALNRANKS") or "1"
        want = max(1, cpu_workers() // max(1, int(local)))
    return max(1, min(want, limit or want))


def share_of(num_rot: int, tile: int, rank: int, size: int) -> tuple[int, int, int]:
    """This rank's orientations ``a:b`` and its number of tiles (whole tiles of ``tile``).

    Tiles are split into contiguous, near-equal runs, one per rank; the last tile of the
    last rank may be partly padding.
    """
    tiles = np.array_split(np.arange(-(-num_rot // tile)), size)[rank]
    if not len(tiles):
        return 0, 0, 0
    a = int(tiles[0]) * tile
    b = min(num_rot, (int(tiles[-1]) + 1) * tile)
    return a, b, len(tiles)


def padded(values, length: int, fill: float, dtype=np.float64, xp=np):
    """``values`` (shape (n, ...)) padded along axis 0 to ``length`` with ``fill``."""
    values = np.asarray(values, dtype=dtype)
    out = np.full((length,) + values.shape[1:], fill, dtype=dtype)
    out[: len(values)] = values
    return xp.asarray(out)


@dataclass
class Prepared:
    """One rank's share of a problem in the form an operator set works on.

    Attributes
    ----------
    col0, count : int
        Global index of the first orientation of this rank, and how many it has.
    rot : array, shape (n, 3, 3), float64
        Rotation matrices, ``n >= count`` (whole tiles; the padding never wins).
    bias : array, shape (n,), float32
        ``log w_r`` added to every likelihood (−1e30 on the padding).
    logw : array, shape (n,), float32
        ``log w_r`` for the mutual information (0 on the padding).
    w : array, shape (n,), float64
        ``w_r`` (0 on the padding).
    q, corr, good, good_pos, center, size
        The detector (``good_pos``: index among the likelihood pixels, or −1).
    lik : sparse, shape (nd, ngood), float32
        Photon counts on the likelihood pixels.
    counts : sparse, shape (nd, npix), float32
        Photon counts on every used pixel (the merge).
    extra : dict
        Whatever else a set keeps (transposed counts, ...).
    """

    col0: int
    count: int
    rot: Any
    bias: Any
    logw: Any
    w: Any
    q: Any
    corr: Any
    good: Any
    good_pos: Any
    center: int
    size: int
    lik: Any
    counts: Any
    extra: dict


def prepare_share(xp, tile: int, detector, frames, rot, log_weights, weights, rank: int = 0, size: int = 1) -> Prepared:
    """The arrays every set needs for this rank's orientations, in module ``xp`` (numpy sparse)."""
    a, b, ntiles = share_of(len(rot), tile, rank, size)
    n = ntiles * tile
    good_cols = np.flatnonzero(detector.good)
    lik = frames.good_counts[:, good_cols].tocsr()
    lik.sort_indices()
    counts = frames.counts.tocsr()
    counts.sort_indices()
    return Prepared(
        col0=a,
        count=b - a,
        rot=padded(rot[a:b], n, 0.0, xp=xp),
        # padding orientations: a log-prior no frame can prefer (never probable)
        bias=padded(log_weights[a:b], n, -1e30, np.float32, xp),
        logw=padded(log_weights[a:b], n, 0.0, np.float32, xp),
        w=padded(weights[a:b], n, 0.0, xp=xp),
        q=xp.asarray(detector.q),
        corr=xp.asarray(detector.corr),
        good=xp.asarray(detector.good),
        good_pos=good_positions(detector.good, np.int32),
        center=int(detector.center),
        size=int(detector.size),
        lik=lik,
        counts=counts,
        extra={},
    )
