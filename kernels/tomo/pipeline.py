"""Slab streaming: reconstruct a scan larger than memory, a slab of rows at a time, on one or many ranks.

A scan is read a slab of detector rows at a time (flat/dark correction, -log,
optional ring removal, reconstruction), and each slab is handed to ``out`` as
soon as it is done, so memory holds one slab per rank whatever the scan's size.
The slab boundaries depend only on ``rows`` and ``slab_rows``, never on the
number of MPI ranks, and every slab is reconstructed the same way wherever it
runs, so ``mpiexec -n N`` writes exactly what one process writes.  Under MPI,
slab ``i`` runs on rank ``i % N``; rank 0 receives the others' slabs in order
and is the only one that touches ``out``.
"""

from __future__ import annotations

import sys
from typing import Any, Protocol

import numpy as np
from tqdm import tqdm

from beamhub.kernels import backend


class ScanSource(Protocol):
    """What :func:`reconstruct_slabs` reads: :class:`beamhub.kernels.io.dxchange.DataExchangeScan` fits."""

    shape: tuple[int, int, int]  # (angles, rows, columns)
    theta: np.ndarray  # (angles,), radians

    def read_rows(self, start: int, stop: int) -> tuple[Any, Any, Any]:
        """Raw projections, flats and darks of rows ``start:stop``."""


class ArrayScan:
    """An in-memory scan behind the :class:`ScanSource` interface (for notebooks and tests).

    Parameters
    ----------
    tomo : array, shape (angles, rows, N), counts
    flat : array, shape (n_flat, rows, N), counts
    dark : array, shape (n_dark, rows, N), counts
    theta : array_like, shape (angles,), radians
    """

    def __init__(self, tomo, flat, dark, theta):
        self.tomo, self.flat, self.dark = tomo, flat, dark
        self.theta = np.asarray(theta, dtype=np.float64)
        self.shape = tuple(tomo.shape)

    def read_rows(self, start: int, stop: int):
        return self.tomo[:, start:stop], self.flat[:, start:stop], self.dark[:, start:stop]


def line_integrals(tomo, flat, dark, stripe: str = "none"):
    """``minus_log(normalize(...))``, then ``remove_stripe(method=stripe)`` unless ``stripe="none"``.

    Returns
    -------
    array of the input's module, shape (angles, rows, N), float32
    """
    from beamhub.kernels import tomo as bt  # noqa: PLC0415 - the package imports this module (a cycle)

    proj = bt.minus_log(bt.normalize(tomo, flat, dark))
    if stripe != "none":
        proj = bt.remove_stripe(proj, method=stripe)
    return proj


def slab_starts(start: int, stop: int, slab_rows: int) -> list[int]:
    """First row of each slab of ``rows start:stop`` cut ``slab_rows`` at a time."""
    return list(range(start, stop, slab_rows))


def reconstruct_slabs(
    scan: ScanSource,
    center,
    *,
    out=None,
    rows: tuple[int, int] | None = None,
    slab_rows: int = 16,
    stripe: str = "none",
    algorithm: str = "gridrec",
    filter_name: str = "shepp",
    num_iter: int = 50,
    circ_mask: bool = False,
    progress: bool = True,
    comm=None,
    xp=None,
):
    """Reconstruct rows of a scan slab by slab, optionally over MPI ranks.

    Parameters
    ----------
    scan : ScanSource
        Anything with ``shape`` (angles, rows, N), ``theta`` (radians) and
        ``read_rows(a, b) -> (tomo, flat, dark)``: a
        :class:`~beamhub.kernels.io.dxchange.DataExchangeScan` (reads only the
        rows asked for) or an :class:`ArrayScan`.
    center : float or array_like of shape (rows,)
        Rotation-axis column (pixels, see :mod:`beamhub.kernels.tomo.geometry`);
        one value per selected row is allowed.
    out : object with ``write(offset, slab)``, or numpy.ndarray of shape (rows, N, N), optional
        Where finished slabs go (``offset`` counts from ``rows[0]``); a
        :class:`~beamhub.kernels.io.dxchange.ReconWriter` streams them to disk.
        Default: a new float32 array, returned.
    rows : (int, int), optional
        Row range ``start, stop``; default all rows.
    slab_rows : int
        Rows read and reconstructed at a time.  Memory per rank is about
        ``slab_rows x (angles x N x 4 B x 3 + N^2 x 4 B)`` plus the gridding setup.
    stripe : {"none", "sorting", "fw"}
        Ring removal before reconstruction.
    algorithm, filter_name, num_iter :
        As :func:`~beamhub.kernels.tomo.recon.recon`.
    circ_mask : bool
        Zero outside the reconstruction circle.
    progress : bool
        A tqdm bar on stderr (on rank 0; off when stderr is not a terminal is
        up to the caller).
    comm : optional
        ``beamhub.kernels.emc.mpi.get_comm()``'s communicator, or None for one
        process.  Every rank calls this function with the same arguments.
    xp : module, optional
        numpy or cupy for the work; default from ``BEAMHUB_BACKEND``.

    Returns
    -------
    numpy.ndarray of shape (rows, N, N) float32 when ``out`` is None or an
    array (on rank 0; None elsewhere), else ``out``.
    """
    from beamhub.kernels import tomo as bt  # noqa: PLC0415 - the package imports this module (a cycle)

    n_angles, n_rows, n = scan.shape
    start, stop = (0, n_rows) if rows is None else (int(rows[0]), int(rows[1]))
    if not 0 <= start < stop <= n_rows:
        raise ValueError(f"rows=({start}, {stop}): choose 0 <= start < stop <= {n_rows}")
    if slab_rows < 1:
        raise ValueError(f"slab_rows={slab_rows}: must be at least 1")
    rank, size = (0, 1) if comm is None else (comm.rank, comm.size)
    centers = (
        np.broadcast_to(np.asarray(center, dtype=np.float64), (stop - start,))
        if np.ndim(center) == 0
        else np.asarray(center, dtype=np.float64)
    )
    if centers.shape != (stop - start,):
        raise ValueError(f"center has {centers.size} values for {stop - start} rows")
    xp = xp or backend.get_xp()
    if out is None and rank == 0:
        out = np.empty((stop - start, n, n), dtype=np.float32)

    def sink(offset: int, slab: np.ndarray) -> None:
        if isinstance(out, np.ndarray):
            out[offset : offset + slab.shape[0]] = slab
        else:
            out.write(offset, slab)

    def compute(r0: int) -> np.ndarray:
        r1 = min(stop, r0 + slab_rows)
        tomo, flat, dark = scan.read_rows(r0, r1)
        proj = line_integrals(backend.asarray(tomo, xp), backend.asarray(flat, xp), backend.asarray(dark, xp), stripe)
        rec = bt.recon(
            proj,
            scan.theta,
            center=centers[r0 - start : r1 - start],
            algorithm=algorithm,
            filter_name=filter_name,
            num_iter=num_iter,
        )
        if circ_mask:
            rec = bt.circ_mask(rec, axis=0)
        return np.ascontiguousarray(backend.to_numpy(rec), dtype=np.float32)

    starts = slab_starts(start, stop, slab_rows)
    bar = None
    if rank == 0 and progress:
        bar = tqdm(total=stop - start, unit="slice", file=sys.stderr, desc="reconstructing")
    try:
        for i, r0 in enumerate(starts):
            owner = i % size
            r1 = min(stop, r0 + slab_rows)
            if owner == rank:
                slab = compute(r0)
                if rank != 0:
                    comm.comm.Send(slab, dest=0, tag=i)
            elif rank == 0:
                slab = np.empty((r1 - r0, n, n), dtype=np.float32)
                comm.comm.Recv(slab, source=owner, tag=i)
            else:
                continue
            if rank == 0:
                sink(r0 - start, slab)
                if bar:
                    bar.update(r1 - r0)
    finally:
        if bar:
            bar.close()
    return out if rank == 0 else None
