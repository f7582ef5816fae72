"""The extender's settings: one declared, documented, validated schema.

Every field can come from a YAML/JSON file (``beamhub scheduler --config FILE``, keys as
below) and from the command line; a wrong key or value stops start-up with a message naming
the field.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from beamhub.errors import UsageError
from beamhub.scheduler.policy.filter import FilterParams
from beamhub.scheduler.policy.score import STRATEGIES, ScoreParams

__all__ = ["SchedulerSettings"]


def _doc(text: str, default: Any = MISSING, factory: Any = MISSING):
    if factory is not MISSING:
        return field(default_factory=factory, metadata={"help": text})
    return field(default=default, metadata={"help": text})


@dataclass(frozen=True)
class SchedulerSettings:
    """Settings of ``beamhub scheduler``; see each field's ``help`` (also in docs/scheduler.md)."""

    host: str = _doc("Address to listen on.", "127.0.0.1")
    port: int = _doc("TCP port to listen on (0 picks a free one).", 8890)
    prometheus_url: str | None = _doc(
        "Base URL of Prometheus (http://prometheus:9090); unset = schedule from Node objects alone.", None
    )
    refresh_interval: float = _doc("Seconds between background metric refreshes.", 15.0)
    query_timeout: float = _doc("Seconds one Prometheus query may take before the refresh counts as failed.", 5.0)
    stale_after: float | None = _doc(
        "Seconds after which measured load is stale and scoring turns neutral (default 3 x refresh_interval).", None
    )
    rate_window: str = _doc("PromQL range for rate() over node_exporter counters.", "2m")
    instance_label: str = _doc(
        "Label carrying the node name on node_exporter series (a ':port' suffix is stripped).", "instance"
    )
    gpu_node_label: str = _doc("Label carrying the node name on dcgm-exporter series.", "Hostname")
    gpu_idle_threshold: float = _doc("A GPU below this utilisation (0..1) counts as idle.", 0.05)
    strategy: str = _doc(f"Scoring strategy: one of {', '.join(STRATEGIES)}.", "load-aware")
    node_class_label: str = _doc(
        "Node label naming the node class in /summary (falls back to node.kubernetes.io/instance-type).",
        "beamhub.io/node-class",
    )
    nodes_file: str | None = _doc(
        "JSON or YAML v1.NodeList preloading the node cache (node-cache mode without a prior full request).", None
    )
    kube_api: str | None = _doc(
        "List and watch Nodes from the API server: 'in-cluster' (service account) or a URL such as "
        "http://127.0.0.1:8001 (kubectl proxy); needed for nodeCacheCapable: true.",
        None,
    )
    max_body_bytes: int = _doc("Largest request body accepted, bytes.", 64 * 2**20)
    hot_threshold: float = _doc("Predicted CPU utilisation (0..1) above which a node is a hot spot.", 0.9)
    target_utilisation: float = _doc("Target CPU utilisation (0..1) of the target-load-packing strategy.", 0.4)
    net_capacity: float = _doc("Network bytes/s that count as saturated.", 1.25e9)
    memory_reserve: float = _doc("Fraction of node memory kept free after a pod's request (filter).", 0.05)
    min_fs_free: float = _doc("Minimum free fraction of the root filesystem (filter).", 0.05)

    def __post_init__(self) -> None:
        def bad(name: str, why: str) -> UsageError:
            return UsageError(f"scheduler setting {name!r}: {why} (got {getattr(self, name)!r})")

        if not isinstance(self.port, int) or isinstance(self.port, bool) or not 0 <= self.port <= 65535:
            raise bad("port", "must be an integer 0..65535")
        for name in ("refresh_interval", "query_timeout", "net_capacity"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
                raise bad(name, "must be a positive number")
        if self.stale_after is not None and (not isinstance(self.stale_after, (int, float)) or self.stale_after <= 0):
            raise bad("stale_after", "must be a positive number of seconds")
        for name in ("hot_threshold", "target_utilisation", "memory_reserve", "min_fs_free", "gpu_idle_threshold"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value <= 1:
                raise bad(name, "must be a fraction between 0 and 1")
        if not 0 < self.target_utilisation < 1:
            raise bad("target_utilisation", "must be strictly between 0 and 1")
        if self.strategy not in STRATEGIES:
            raise bad("strategy", f"unknown strategy; choose one of: {', '.join(STRATEGIES)}")
        if self.prometheus_url is not None and not str(self.prometheus_url).startswith(("http://", "https://")):
            raise bad("prometheus_url", "must start with http:// or https://")
        if (
            self.kube_api is not None
            and self.kube_api != "in-cluster"
            and not str(self.kube_api).startswith(("http://", "https://"))
        ):
            raise bad("kube_api", "must be 'in-cluster' or start with http:// or https://")
        if not isinstance(self.max_body_bytes, int) or self.max_body_bytes < 1024:
            raise bad("max_body_bytes", "must be an integer of at least 1024")
        if self.nodes_file is not None and not Path(self.nodes_file).is_file():
            raise bad("nodes_file", "no such file")

    @property
    def effective_stale_after(self) -> float:
        """``stale_after`` or its default, 3 x ``refresh_interval``."""
        return self.stale_after if self.stale_after is not None else 3 * self.refresh_interval

    @property
    def score_params(self) -> ScoreParams:
        return ScoreParams(
            hot_threshold=self.hot_threshold, target=self.target_utilisation, net_capacity=self.net_capacity
        )

    @property
    def filter_params(self) -> FilterParams:
        return FilterParams(memory_reserve=self.memory_reserve, min_fs_free=self.min_fs_free)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> SchedulerSettings:
        """Settings from a mapping (a config file); unknown keys are refused by name."""
        if not isinstance(values, Mapping):
            raise UsageError("scheduler settings must be a mapping of setting -> value")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise UsageError(
                f"unknown scheduler setting(s) {', '.join(map(repr, unknown))}; known: {', '.join(sorted(known))}"
            )
        return cls(**dict(values))

    def replace(self, **changes: Any) -> SchedulerSettings:
        """A copy with ``changes`` applied (validated again)."""
        return type(self).from_mapping({**asdict(self), **changes})

    @classmethod
    def describe(cls) -> list[tuple[str, Any, str]]:
        """(name, default, help) of every setting, for --help and the docs."""
        return [(f.name, f.default, f.metadata["help"]) for f in fields(cls)]
