"""Filtering: which nodes may host the pod, and why each other one may not.

Checks, in order (the first failure is the reason given):

1. node conditions, always: cordoned (``spec.unschedulable``), ``Ready`` not ``True``,
   ``DiskPressure`` / ``MemoryPressure`` / ``PIDPressure`` ``True``;
2. measured headroom, only with a fresh load snapshot: a GPU pod needs that many GPUs free
   (allocatable minus requested, else idle as dcgm-exporter sees them); a pod's memory request
   must fit in the measured available memory minus a reserve; the root filesystem must keep
   a minimum free fraction.

Condition failures go to ``failedAndUnresolvableNodes`` (preempting pods would not help);
headroom failures to ``failedNodes``.  A node the extender knows nothing about (node-cache
mode, not yet seen) passes: kube-scheduler has already run its own filters on it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from beamhub.scheduler.load import LoadSnapshot
from beamhub.scheduler.models import NodeInfo, PodDemand

__all__ = ["FilterParams", "FilterVerdict", "filter_nodes"]

_PRESSURES = ("DiskPressure", "MemoryPressure", "PIDPressure")
_GIB = 2.0**30


@dataclass(frozen=True)
class FilterParams:
    """Thresholds of the measured checks.

    Attributes
    ----------
    memory_reserve : float
        Fraction of a node's memory kept free after the pod's request, 0..1.
    min_fs_free : float
        Free fraction of the root filesystem below which a node is refused, 0..1.
    """

    memory_reserve: float = 0.05
    min_fs_free: float = 0.05


@dataclass
class FilterVerdict:
    """Outcome of :func:`filter_nodes`: passed names (input order) and reasons for the rest."""

    passed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    unresolvable: dict[str, str] = field(default_factory=dict)


def _condition_failure(node: NodeInfo) -> str | None:
    if node.unschedulable:
        return "node is cordoned (spec.unschedulable is true)"
    ready = node.conditions.get("Ready")
    if ready is not None and ready != "True":
        return f"node is not Ready (Ready={ready})"
    for kind in _PRESSURES:
        if node.conditions.get(kind) == "True":
            return f"node has {kind}"
    return None


def _headroom_failure(pod: PodDemand, node: NodeInfo | None, load, params: FilterParams) -> tuple[str, bool] | None:
    """(reason, resolvable by preemption) for the first measured check that fails."""
    if pod.gpus > 0:
        alloc = node.gpus if node is not None else math.nan
        free = alloc - load.gpus_requested
        source = "allocatable minus requested"
        if math.isnan(free):
            free, source = load.gpus_idle, "idle per dcgm-exporter"
        if not math.isnan(free) and free < pod.gpus:
            return (
                f"insufficient measured GPU headroom: {free:g} GPU(s) free ({source}), pod needs {pod.gpus:g}",
                True,
            )
    if pod.memory > 0 and not math.isnan(load.mem_available):
        total = load.mem_total if not math.isnan(load.mem_total) else (node.memory if node else 0.0)
        spare = load.mem_available - pod.memory - params.memory_reserve * total
        if spare < 0:
            return (
                f"insufficient measured memory: {load.mem_available / _GIB:.1f} GiB available, "
                f"pod requests {pod.memory / _GIB:.1f} GiB plus a {params.memory_reserve:.0%} reserve",
                True,
            )
    if not math.isnan(load.fs_free) and load.fs_free < params.min_fs_free:
        return (f"root filesystem nearly full ({load.fs_free:.1%} free, minimum {params.min_fs_free:.0%})", False)
    return None


def filter_nodes(
    pod: PodDemand,
    names: list[str],
    nodes: list[NodeInfo | None],
    snapshot: LoadSnapshot | None,
    params: FilterParams | None = None,
) -> FilterVerdict:
    """Split candidate nodes into those that may host ``pod`` and those that may not.

    Parameters
    ----------
    pod : PodDemand
    names : list of str
        Candidate node names.
    nodes : list of NodeInfo or None
        The Node facts matching ``names``; None where unknown.
    snapshot : LoadSnapshot or None
        A *fresh* load snapshot, or None to judge on node conditions alone.
    params : FilterParams, optional

    Returns
    -------
    FilterVerdict
        Every candidate appears exactly once: in ``passed``, ``failed`` or ``unresolvable``.
    """
    params = params or FilterParams()
    verdict = FilterVerdict()
    for name, node in zip(names, nodes):
        reason = _condition_failure(node) if node is not None else None
        if reason is not None:
            verdict.unresolvable[name] = reason
            continue
        if snapshot is not None and name in snapshot.nodes:
            load = snapshot.nodes[name]
            failure = _headroom_failure(pod, node, load, params)
            if failure is not None:
                reason, resolvable = failure
                (verdict.failed if resolvable else verdict.unresolvable)[name] = reason
                continue
        verdict.passed.append(name)
    return verdict
