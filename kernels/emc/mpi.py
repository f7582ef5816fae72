"""EMC across MPI ranks (mpi4py) — or a one-rank stand-in when not under mpiexec.

Every rank holds the whole model and every frame, and takes a contiguous share of the
orientation tiles (:mod:`~beamhub.kernels.emc.share`), whichever operator set runs; the
per-frame maximum, normalisation and figures are combined between the probability
passes and the merged volumes are added.  Every rank ends each iteration with the same
model, and sums over ranks change only the order of floating-point additions: results
agree with a one-rank run up to rounding.
"""

from __future__ import annotations

import os

import numpy as np

from beamhub.kernels.backend import to_numpy

__all__ = ["SerialComm", "MPIComm", "get_comm"]

_MPI_ENV = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS")


class SerialComm:
    """The one-process communicator: every collective is the identity."""

    rank = 0
    size = 1

    def allreduce_sum(self, arr):
        """Sum over ranks (here: ``arr`` itself)."""
        return arr

    def allreduce_max(self, arr):
        """Element-wise maximum over ranks (here: ``arr`` itself)."""
        return arr

    def allreduce_min(self, arr):
        """Element-wise minimum over ranks (here: ``arr`` itself)."""
        return arr

    def allreduce_scalar(self, value: float) -> float:
        """Sum of a float over ranks."""
        return float(value)

    def gather_rows(self, arr):
        """Concatenate per-rank arrays on rank 0 (here: ``arr``)."""
        return to_numpy(arr)

    def bcast(self, obj):
        """Rank 0's object on every rank."""
        return obj

    def barrier(self) -> None:
        """Wait for every rank."""


class MPIComm(SerialComm):
    """mpi4py's ``COMM_WORLD`` behind the same small interface."""

    def __init__(self, comm):
        self.comm = comm
        self.rank = comm.Get_rank()
        self.size = comm.Get_size()

    def _allreduce(self, arr, op: str):
        from mpi4py import MPI  # noqa: PLC0415  (optional dependency: beamhub[mpi])

        host = np.ascontiguousarray(to_numpy(arr))
        out = np.empty_like(host)
        self.comm.Allreduce(host, out, op=getattr(MPI, op))
        if type(arr).__module__.startswith("cupy"):
            import cupy  # noqa: PLC0415  (optional dependency: a GPU)

            return cupy.asarray(out)
        return out

    def allreduce_sum(self, arr):
        return self._allreduce(arr, "SUM")

    def allreduce_max(self, arr):
        return self._allreduce(arr, "MAX")

    def allreduce_min(self, arr):
        return self._allreduce(arr, "MIN")

    def allreduce_scalar(self, value: float) -> float:
        return float(self.comm.allreduce(float(value)))

    def gather_rows(self, arr):
        parts = self.comm.gather(to_numpy(arr), root=0)
        return np.concatenate(parts) if self.rank == 0 else None

    def bcast(self, obj):
        return self.comm.bcast(obj, root=0)

    def barrier(self) -> None:
        self.comm.Barrier()


def get_comm(use_mpi: bool | None = None) -> SerialComm:
    """The world communicator under ``mpiexec`` (mpi4py required), else :class:`SerialComm`.

    ``use_mpi=None`` decides from the environment mpiexec sets; ``True`` forces mpi4py.
    """
    if use_mpi is None:
        use_mpi = any(k in os.environ for k in _MPI_ENV)
    if not use_mpi:
        return SerialComm()
    try:
        from mpi4py import MPI  # noqa: PLC0415  (optional dependency: beamhub[mpi])
    except ImportError as exc:
        raise RuntimeError("running under mpiexec needs mpi4py: pip install 'beamhub[mpi]'") from exc
    comm = MPI.COMM_WORLD
    return MPIComm(comm) if comm.Get_size() > 1 else SerialComm()
