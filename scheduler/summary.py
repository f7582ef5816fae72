"""The public load summary (``GET /summary``) that the hub's launch page reads."""

from __future__ import annotations

import math

from beamhub.scheduler.load import LoadSnapshot, NodeLoad
from beamhub.scheduler.models import NodeInfo

__all__ = ["FALLBACK_CLASS_LABEL", "build_summary", "node_class", "free_resources"]

#: Label used for the node class when the configured one is absent.
FALLBACK_CLASS_LABEL = "node.kubernetes.io/instance-type"


def node_class(node: NodeInfo, label: str) -> str:
    """The node's class: ``label``, else its instance type, else ``"unknown"``."""
    return node.labels.get(label) or node.labels.get(FALLBACK_CLASS_LABEL) or "unknown"


def free_resources(node: NodeInfo, load: NodeLoad | None) -> tuple[float, float]:
    """Free (cores, GPUs) on a node.

    Allocatable minus what pods request (kube-state-metrics) when known; otherwise what the
    measurements show idle (CPU: allocatable x (1 - utilisation); GPUs: idle per dcgm-exporter);
    otherwise allocatable.
    """
    cpu, gpus = node.cpu, node.gpus
    if load is None:
        return cpu, gpus
    if not math.isnan(load.cpu_requested):
        cpu = node.cpu - load.cpu_requested
    elif not math.isnan(load.cpu_util):
        cpu = node.cpu * (1.0 - load.cpu_util)
    if not math.isnan(load.gpus_requested):
        gpus = node.gpus - load.gpus_requested
    elif not math.isnan(load.gpus_idle):
        gpus = min(node.gpus, load.gpus_idle)
    return max(cpu, 0.0), max(gpus, 0.0)


def build_summary(
    nodes: list[NodeInfo], snapshot: LoadSnapshot | None, *, stale: bool, class_label: str, now: float
) -> dict:
    """Free CPU and GPUs per node class.

    Parameters
    ----------
    nodes : list of NodeInfo
        Every node the extender knows.
    snapshot : LoadSnapshot or None
        The latest load (even if stale: it is still the best estimate; ``stale`` says so).
    stale : bool
        Whether the measurements are missing or older than ``stale_after``.
    class_label : str
        Node label naming the class.
    now : float
        Unix seconds, reported as ``generated``.

    Returns
    -------
    dict
        ``{"generated": int, "stale": bool, "classes": [{"name", "nodes", "free_cpu",
        "free_gpus", "total_gpus"}, ...], "free_gpus": int, "total_gpus": int}``; classes
        sorted by name, ``free_cpu`` in cores rounded to 0.1.
    """
    classes: dict[str, dict] = {}
    for node in nodes:
        if node.unschedulable or node.conditions.get("Ready", "True") != "True":
            free_cpu, free_gpus = 0.0, 0.0
        else:
            free_cpu, free_gpus = free_resources(node, snapshot.nodes.get(node.name) if snapshot else None)
        entry = classes.setdefault(
            node_class(node, class_label), {"nodes": 0, "free_cpu": 0.0, "free_gpus": 0, "total_gpus": 0}
        )
        entry["nodes"] += 1
        entry["free_cpu"] += free_cpu
        entry["free_gpus"] += int(math.floor(free_gpus))
        entry["total_gpus"] += int(round(node.gpus))
    rows = [
        {
            "name": name,
            "nodes": e["nodes"],
            "free_cpu": round(e["free_cpu"], 1),
            "free_gpus": e["free_gpus"],
            "total_gpus": e["total_gpus"],
        }
        for name, e in sorted(classes.items())
    ]
    return {
        "generated": int(now),
        "stale": bool(stale),
        "classes": rows,
        "free_gpus": sum(r["free_gpus"] for r in rows),
        "total_gpus": sum(r["total_gpus"] for r in rows),
    }
