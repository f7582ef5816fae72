"""Node facts as columns, so a strategy scores thousands of nodes in a few array operations."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields

import numpy as np

from beamhub.scheduler.load import FIELDS as LOAD_FIELDS
from beamhub.scheduler.load import LoadSnapshot
from beamhub.scheduler.models import NodeInfo

__all__ = ["NodeView"]


@dataclass
class NodeView:
    """Per-node facts, one float64 array of shape ``(n,)`` per field; ``nan`` = unknown.

    Capacity comes from the Node objects (``cpu_alloc`` cores, ``mem_alloc`` bytes,
    ``gpu_alloc`` devices); everything else from measurements (see
    :class:`beamhub.scheduler.load.NodeLoad` for units).
    """

    names: list[str]
    cpu_alloc: np.ndarray
    mem_alloc: np.ndarray
    gpu_alloc: np.ndarray
    cpu_util: np.ndarray
    iowait: np.ndarray
    mem_available: np.ndarray
    mem_total: np.ndarray
    net_bytes: np.ndarray
    fs_free: np.ndarray
    gpu_util: np.ndarray
    gpu_mem_free: np.ndarray
    gpus_idle: np.ndarray
    gpus_seen: np.ndarray
    cpu_requested: np.ndarray
    mem_requested: np.ndarray
    gpus_requested: np.ndarray

    def __len__(self) -> int:
        return len(self.names)

    @classmethod
    def build(cls, names: list[str], nodes: Iterable[NodeInfo | None], snapshot: LoadSnapshot | None) -> NodeView:
        """Columns for ``names`` from Node objects (None = unknown) and a load snapshot.

        Parameters
        ----------
        names : list of str
            Node names, in the order scores are wanted.
        nodes : iterable of NodeInfo or None
            The matching Node facts; None where the node is not known.
        snapshot : LoadSnapshot or None
            Measured load; None (or a stale snapshot the caller dropped) leaves all ``nan``.
        """
        nan = np.nan
        capacity = np.array(
            [(n.cpu, n.memory, n.gpus) if n is not None else (nan, nan, nan) for n in nodes],
            dtype=np.float64,
        ).reshape(len(names), 3)
        if snapshot is None or not snapshot.nodes:
            load = np.full((len(names), len(LOAD_FIELDS)), nan)
        else:
            index, matrix = snapshot.table
            missing = len(index)
            rows = np.fromiter((index.get(name, missing) for name in names), dtype=np.intp, count=len(names))
            load = matrix[rows]
        columns = {"cpu_alloc": capacity[:, 0], "mem_alloc": capacity[:, 1], "gpu_alloc": capacity[:, 2]}
        columns.update({name: load[:, i] for i, name in enumerate(LOAD_FIELDS)})
        return cls(names=list(names), **columns)

    @classmethod
    def from_columns(cls, names: list[str], **columns: np.ndarray) -> NodeView:
        """Columns given directly (the simulator); missing ones are all ``nan``."""
        n = len(names)
        known = {f.name for f in fields(cls)} - {"names"}
        unknown = set(columns) - known
        if unknown:
            raise TypeError(f"unknown NodeView columns: {sorted(unknown)}")
        full = {k: np.asarray(columns[k], dtype=np.float64) if k in columns else np.full(n, np.nan) for k in known}
        return cls(names=list(names), **full)
