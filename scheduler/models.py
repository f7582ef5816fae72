"""The kube-scheduler extender v1 wire format, as typed models.

Names follow ``k8s.io/kube-scheduler/extender/v1``: :class:`ExtenderArgs` comes in (the pod
and either full ``Node`` objects or, when the extender is ``nodeCacheCapable``, node names
only), :class:`ExtenderFilterResult` and :class:`HostPriorityList` go out.  Parsing keeps
only what placement needs (requests, limits, QoS class, labels, allocatable, conditions)
and raises :class:`WireFormatError` naming the offending field, which the service turns
into a 400.  Upstream's Go structs carry no JSON tags, so kube-scheduler sends ``Pod``,
``Nodes``, ``NodeNames`` and decodes replies case-insensitively: requests are read with
keys of any case (as Go's decoder does); replies use ``nodes``, ``nodenames``,
``failedNodes``, ``failedAndUnresolvableNodes``, ``error``, ``host``, ``score``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from beamhub.qos import BEST_EFFORT, BURSTABLE, GUARANTEED, QOS_CLASSES
from beamhub.quantity import parse_quantity

__all__ = [
    "GPU_RESOURCES",
    "MAX_EXTENDER_PRIORITY",
    "ExtenderArgs",
    "ExtenderFilterResult",
    "HostPriority",
    "HostPriorityList",
    "NodeInfo",
    "PodDemand",
    "WireFormatError",
]

#: Highest score an extender may return (``extenderv1.MaxExtenderPriority``).
MAX_EXTENDER_PRIORITY = 10
#: Extended resources counted as GPUs.
GPU_RESOURCES = ("nvidia.com/gpu", "amd.com/gpu")


class WireFormatError(ValueError):
    """A request body that is not a valid ``ExtenderArgs``; the message names the field."""


# --------------------------------------------------------------------------- helpers
def _mapping(value: Any, where: str, *, optional: bool = True) -> Mapping[str, Any]:
    if value is None and optional:
        return {}
    if not isinstance(value, dict):
        raise WireFormatError(f"{where} must be a JSON object, got {type(value).__name__}")
    return value


def _list(value: Any, where: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise WireFormatError(f"{where} must be a JSON array, got {type(value).__name__}")
    return value


def _string_map(value: Any, where: str) -> dict[str, str]:
    found = _mapping(value, where)
    for key, item in found.items():
        if not isinstance(item, str):
            raise WireFormatError(f"{where}[{key!r}] must be a string")
    return dict(found)


def _quantity(value: Any, where: str) -> float:
    try:
        number = parse_quantity(value)
    except ValueError as exc:
        raise WireFormatError(f"{where}: {exc}") from None
    if number < 0:
        raise WireFormatError(f"{where}: negative quantity {value!r}")
    return number


def _resources(value: Any, where: str) -> dict[str, float]:
    return {name: _quantity(q, f"{where}[{name!r}]") for name, q in _mapping(value, where).items()}


def _gpus(resources: Mapping[str, float]) -> float:
    return sum(resources.get(name, 0.0) for name in GPU_RESOURCES)


# --------------------------------------------------------------------------- pod
@dataclass(frozen=True)
class PodDemand:
    """What a pod asks of a node.

    Attributes
    ----------
    name, namespace : str
        Pod identity (may be empty for a pod not yet named).
    cpu : float
        Effective CPU request in cores (containers summed, init containers maxed, overhead added).
    memory : float
        Effective memory request in bytes.
    gpus : float
        GPUs requested (``nvidia.com/gpu`` + ``amd.com/gpu``).
    cpu_limit : float or None
        Summed CPU limit in cores, None when any container is unlimited.
    qos_class : str
        ``"Guaranteed"``, ``"Burstable"`` or ``"BestEffort"`` (``status.qosClass`` when set,
        otherwise computed by the rules of the Kubernetes documentation).
    labels : dict of str to str
    """

    name: str = ""
    namespace: str = ""
    cpu: float = 0.0
    memory: float = 0.0
    gpus: float = 0.0
    cpu_limit: float | None = None
    qos_class: str = BEST_EFFORT
    labels: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_json(cls, pod: Any) -> PodDemand:
        """Parse a ``v1.Pod`` JSON object; raises :class:`WireFormatError`."""
        pod = _mapping(pod, "pod", optional=False)
        meta = _mapping(pod.get("metadata"), "pod.metadata")
        spec = _mapping(pod.get("spec"), "pod.spec")
        status = _mapping(pod.get("status"), "pod.status")
        name = meta.get("name", "")
        namespace = meta.get("namespace", "")
        if not isinstance(name, str) or not isinstance(namespace, str):
            raise WireFormatError("pod.metadata.name and .namespace must be strings")
        labels = _string_map(meta.get("labels"), "pod.metadata.labels")

        def containers(key: str) -> list[tuple[dict[str, float], dict[str, float]]]:
            found = []
            for i, container in enumerate(_list(spec.get(key), f"pod.spec.{key}")):
                where = f"pod.spec.{key}[{i}].resources"
                container = _mapping(container, f"pod.spec.{key}[{i}]", optional=False)
                resources = _mapping(container.get("resources"), where)
                limits = _resources(resources.get("limits"), f"{where}.limits")
                # The API server defaults a missing request to the limit.
                requests = {**limits, **_resources(resources.get("requests"), f"{where}.requests")}
                found.append((requests, limits))
            return found

        main = containers("containers")
        init = containers("initContainers")
        overhead = _resources(spec.get("overhead"), "pod.spec.overhead")

        def effective(resource: str) -> float:
            if resource == "gpu":
                total = sum(_gpus(r) for r, _ in main)
                peak = max((_gpus(r) for r, _ in init), default=0.0)
                return max(total, peak) + _gpus(overhead)
            total = sum(r.get(resource, 0.0) for r, _ in main)
            peak = max((r.get(resource, 0.0) for r, _ in init), default=0.0)
            return max(total, peak) + overhead.get(resource, 0.0)

        cpu_limit: float | None = None
        if main and all("cpu" in lim for _, lim in main):
            cpu_limit = sum(lim["cpu"] for _, lim in main) + overhead.get("cpu", 0.0)

        qos = status.get("qosClass")
        if qos not in QOS_CLASSES:
            qos = _qos_class(main + init)
        return cls(
            name=name,
            namespace=namespace,
            cpu=effective("cpu"),
            memory=effective("memory"),
            gpus=effective("gpu"),
            cpu_limit=cpu_limit,
            qos_class=qos,
            labels=labels,
        )


def _qos_class(containers: list[tuple[dict[str, float], dict[str, float]]]) -> str:
    """QoS class from requests and limits, as the kubelet computes it."""
    compute = ("cpu", "memory")
    if not any(r.get(k) or lim.get(k) for r, lim in containers for k in compute):
        return BEST_EFFORT
    guaranteed = all(k in lim and r.get(k) == lim[k] for r, lim in containers for k in compute)
    return GUARANTEED if guaranteed and containers else BURSTABLE


# --------------------------------------------------------------------------- node
@dataclass(frozen=True)
class NodeInfo:
    """What placement needs to know of a ``v1.Node``.

    Attributes
    ----------
    name : str
    labels : dict of str to str
    cpu, memory, gpus : float
        Allocatable cores, bytes and GPUs (``status.allocatable``, else ``status.capacity``).
    unschedulable : bool
        ``spec.unschedulable`` (cordoned).
    conditions : dict of str to str
        ``status.conditions`` as type -> status (``"True"``, ``"False"``, ``"Unknown"``).
    resource_version : str
        ``metadata.resourceVersion`` ("" when absent): the same name and version mean the same object.
    raw : dict
        The JSON object as received, echoed back in a full-mode filter result.
    """

    name: str
    resource_version: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    cpu: float = 0.0
    memory: float = 0.0
    gpus: float = 0.0
    unschedulable: bool = False
    conditions: dict[str, str] = field(default_factory=dict)
    raw: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, node: Any, where: str = "node") -> NodeInfo:
        """Parse a ``v1.Node`` JSON object; raises :class:`WireFormatError`."""
        node = _mapping(node, where, optional=False)
        meta = _mapping(node.get("metadata"), f"{where}.metadata")
        name = meta.get("name")
        if not isinstance(name, str) or not name:
            raise WireFormatError(f"{where}.metadata.name must be a non-empty string")
        spec = _mapping(node.get("spec"), f"{where}.spec")
        status = _mapping(node.get("status"), f"{where}.status")
        alloc_key = "allocatable" if status.get("allocatable") is not None else "capacity"
        alloc = _resources(status.get(alloc_key), f"{where}.status.{alloc_key}")
        conditions = {}
        for i, cond in enumerate(_list(status.get("conditions"), f"{where}.status.conditions")):
            cond = _mapping(cond, f"{where}.status.conditions[{i}]", optional=False)
            kind, state = cond.get("type"), cond.get("status")
            if not isinstance(kind, str) or not isinstance(state, str):
                raise WireFormatError(f"{where}.status.conditions[{i}] needs string 'type' and 'status'")
            conditions[kind] = state
        unschedulable = spec.get("unschedulable", False)
        if not isinstance(unschedulable, bool):
            raise WireFormatError(f"{where}.spec.unschedulable must be a boolean")
        version = meta.get("resourceVersion", "")
        return cls(
            name=name,
            resource_version=version if isinstance(version, str) else "",
            labels=_string_map(meta.get("labels"), f"{where}.metadata.labels"),
            cpu=alloc.get("cpu", 0.0),
            memory=alloc.get("memory", 0.0),
            gpus=_gpus(alloc),
            unschedulable=unschedulable,
            conditions=conditions,
            raw=node,
        )


# --------------------------------------------------------------------------- messages
@dataclass(frozen=True)
class ExtenderArgs:
    """The body of ``POST /filter`` and ``POST /prioritize``.

    Exactly one of ``nodes`` (``nodeCacheCapable: false``: full Node objects) and
    ``node_names`` (``nodeCacheCapable: true``) is set.
    """

    pod: PodDemand
    nodes: list[NodeInfo] | None = None
    node_names: list[str] | None = None

    @property
    def node_cache_capable(self) -> bool:
        """True when the scheduler sent node names only."""
        return self.nodes is None

    @property
    def names(self) -> list[str]:
        """Candidate node names, whichever way they were sent."""
        return self.node_names if self.nodes is None else [n.name for n in self.nodes]

    @classmethod
    def from_json(cls, body: Any, parse_node: Callable[[Any, str], NodeInfo] = NodeInfo.from_json) -> ExtenderArgs:
        """Parse decoded JSON; raises :class:`WireFormatError` naming the bad field.

        ``parse_node(obj, where)`` turns one Node object into :class:`NodeInfo`; the service
        passes a caching parser (:meth:`beamhub.scheduler.node_cache.NodeCache.parse`).
        """
        body = _mapping(body, "ExtenderArgs", optional=False)
        # kube-scheduler's ExtenderArgs has no JSON tags, so it sends "Pod", "Nodes", "NodeNames";
        # Go matches keys without regard to case, and so do we (found against the real kube-scheduler)
        body = {key.lower() if isinstance(key, str) else key: value for key, value in body.items()}
        if "pod" not in body or body["pod"] is None:
            raise WireFormatError("ExtenderArgs.pod is required")
        pod = PodDemand.from_json(body["pod"])
        nodes, names = body.get("nodes"), body.get("nodenames")
        if nodes is not None:
            items = _list(_mapping(nodes, "ExtenderArgs.nodes").get("items"), "ExtenderArgs.nodes.items")
            parsed = [parse_node(item, f"ExtenderArgs.nodes.items[{i}]") for i, item in enumerate(items)]
            return cls(pod=pod, nodes=parsed)
        if names is not None:
            names = _list(names, "ExtenderArgs.nodenames")
            if not all(isinstance(n, str) for n in names):
                raise WireFormatError("ExtenderArgs.nodenames must be an array of strings")
            return cls(pod=pod, node_names=list(names))
        raise WireFormatError(
            "ExtenderArgs needs 'nodes' (nodeCacheCapable: false) or 'nodenames' (nodeCacheCapable: true)"
        )


@dataclass
class ExtenderFilterResult:
    """The reply to ``POST /filter``.

    In full mode ``nodes`` holds the raw Node objects that passed; in node-cache mode
    ``node_names`` does.  Every node that failed is in ``failed_nodes`` (preemption might
    help) or ``failed_and_unresolvable_nodes`` (it would not), with a reason.
    """

    nodes: list[dict] | None = None
    node_names: list[str] | None = None
    failed_nodes: dict[str, str] = field(default_factory=dict)
    failed_and_unresolvable_nodes: dict[str, str] = field(default_factory=dict)
    error: str = ""

    def to_json(self) -> dict:
        """The JSON object kube-scheduler decodes (upstream keys, Go ``omitempty`` style)."""
        out: dict[str, Any] = {}
        if self.nodes is not None:
            out["nodes"] = {"metadata": {}, "items": self.nodes}
        if self.node_names is not None:
            out["nodenames"] = self.node_names
        out["failedNodes"] = self.failed_nodes
        out["failedAndUnresolvableNodes"] = self.failed_and_unresolvable_nodes
        out["error"] = self.error
        return out


@dataclass(frozen=True)
class HostPriority:
    """One node's score, an integer 0..``MAX_EXTENDER_PRIORITY``."""

    host: str
    score: int

    def to_json(self) -> dict:
        return {"host": self.host, "score": self.score}


class HostPriorityList(list):
    """The reply to ``POST /prioritize``: a JSON array of :class:`HostPriority`."""

    def to_json(self) -> list[dict]:
        return [item.to_json() for item in self]

    @staticmethod
    def encode(hosts: Iterable[str], scores: Iterable[int]) -> list[dict]:
        """The JSON of ``HostPriorityList(HostPriority(h, s) ...)`` without building the objects.

        The hot path of ``/prioritize`` at thousands of nodes.
        """
        return [{"host": h, "score": s} for h, s in zip(hosts, scores)]
