"""Measured node load: one node's figures and a timestamped snapshot of the cluster."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

__all__ = ["LoadSnapshot", "NodeLoad", "StaticLoadSource"]

NAN = math.nan


@dataclass(frozen=True)
class NodeLoad:
    """Load figures for one node; ``nan`` where nothing was measured.

    Attributes
    ----------
    cpu_util : float
        Busy fraction of all CPUs, 0..1 (node_exporter ``node_cpu_seconds_total``).
    iowait : float
        Fraction of CPU time in I/O wait, 0..1.
    mem_available, mem_total : float
        Bytes (``node_memory_MemAvailable_bytes``, ``node_memory_MemTotal_bytes``).
    net_bytes : float
        Received plus transmitted bytes per second, physical interfaces.
    fs_free : float
        Free fraction of the root filesystem, 0..1.
    gpu_util : float
        Mean GPU utilisation, 0..1 (dcgm-exporter ``DCGM_FI_DEV_GPU_UTIL``).
    gpu_mem_free : float
        Free framebuffer memory summed over the node's GPUs, bytes.
    gpus_idle, gpus_seen : float
        GPUs below the idle threshold, and GPUs reported by dcgm-exporter.
    cpu_requested, mem_requested, gpus_requested : float
        Resources requested by the pods bound to the node (kube-state-metrics), cores / bytes / GPUs.
    """

    cpu_util: float = NAN
    iowait: float = NAN
    mem_available: float = NAN
    mem_total: float = NAN
    net_bytes: float = NAN
    fs_free: float = NAN
    gpu_util: float = NAN
    gpu_mem_free: float = NAN
    gpus_idle: float = NAN
    gpus_seen: float = NAN
    cpu_requested: float = NAN
    mem_requested: float = NAN
    gpus_requested: float = NAN


FIELDS = tuple(NodeLoad.__dataclass_fields__)
EMPTY = NodeLoad()


@dataclass(frozen=True)
class LoadSnapshot:
    """Every node's load at one moment.

    Attributes
    ----------
    nodes : dict of str to NodeLoad
        Keyed by Kubernetes node name.
    fetched_at : float
        Unix seconds of the successful refresh; 0 when there never was one.
    """

    nodes: dict[str, NodeLoad] = field(default_factory=dict)
    fetched_at: float = 0.0

    def age(self, now: float | None = None) -> float:
        """Seconds since the refresh (``inf`` when never refreshed)."""
        if not self.fetched_at:
            return math.inf
        return max(0.0, (time.time() if now is None else now) - self.fetched_at)

    def get(self, name: str) -> NodeLoad:
        """The node's load, or an all-``nan`` record."""
        return self.nodes.get(name, EMPTY)

    @cached_property
    def table(self) -> tuple[dict[str, int], np.ndarray]:
        """(row of each node, matrix of shape ``(len(nodes) + 1, len(FIELDS))``).

        The last row is all ``nan``: the row of a node the snapshot does not know.  Built once
        per snapshot, so scoring a thousand nodes gathers rows instead of reading attributes.
        """
        index = {name: i for i, name in enumerate(self.nodes)}
        matrix = np.full((len(index) + 1, len(FIELDS)), np.nan)
        for name, i in index.items():
            load = self.nodes[name]
            matrix[i] = [getattr(load, f) for f in FIELDS]
        return index, matrix


class StaticLoadSource:
    """A load source that serves a fixed snapshot (tests, demos, the benchmark).

    Parameters
    ----------
    snapshot : LoadSnapshot
    stale_after : float
        Seconds after ``snapshot.fetched_at`` at which it counts as stale.
    """

    def __init__(self, snapshot: LoadSnapshot, stale_after: float = math.inf) -> None:
        self.snapshot = snapshot
        self.stale_after = stale_after
        self.refreshes_ok = 1 if snapshot.fetched_at else 0
        self.refreshes_failed = 0

    def fresh_snapshot(self, now: float | None = None) -> LoadSnapshot | None:
        return self.snapshot if self.snapshot.age(now) <= self.stale_after else None

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None
