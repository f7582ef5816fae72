"""Node load from Prometheus' HTTP query API, cached and refreshed in the background.

Handlers never wait on Prometheus: they read :attr:`PrometheusSource.snapshot`, which a
background task replaces every ``refresh_interval`` seconds.  A refresh in which any query
fails (Prometheus down, slow beyond ``query_timeout``, an error reply) keeps the previous
snapshot, which then ages; past ``stale_after`` the extender scores neutrally and filters on
node conditions only.

Series read (node_exporter, dcgm-exporter, kube-state-metrics)::

    cpu_util        1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}[W]))
    iowait          avg by (instance) (rate(node_cpu_seconds_total{mode="iowait"}[W]))
    mem_available   max by (instance) (node_memory_MemAvailable_bytes)
    mem_total       max by (instance) (node_memory_MemTotal_bytes)
    net_bytes       sum by (instance) (rate(node_network_{receive,transmit}_bytes_total{device=~physical}[W]))
    fs_free         min by (instance) (node_filesystem_avail_bytes{mountpoint="/"} / ..._size_bytes)
    gpu_util        avg by (Hostname) (DCGM_FI_DEV_GPU_UTIL) / 100
    gpus_idle       sum by (Hostname) (DCGM_FI_DEV_GPU_UTIL < bool 100 * idle_threshold)
    gpus_seen       count by (Hostname) (DCGM_FI_DEV_GPU_UTIL)
    gpu_mem_free    sum by (Hostname) (DCGM_FI_DEV_FB_FREE) * 2^20
    *_requested     sum by (node) (kube_pod_container_resource_requests{resource=R} and on (namespace, pod)
                                   (kube_pod_status_phase{phase=~"Pending|Running"} == 1))
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from dataclasses import dataclass

import aiohttp

from beamhub.scheduler.load import LoadSnapshot, NodeLoad
from beamhub.scheduler.settings import SchedulerSettings

__all__ = ["PrometheusSource", "PrometheusError", "build_queries", "node_name_from_label"]

log = logging.getLogger("beamhub.scheduler.metrics")

_VIRTUAL_DEVICES = "lo|veth.*|docker.*|cali.*|flannel.*|cni.*|cilium.*|br-.*|virbr.*|tunl.*|vxlan.*"
_PORT = re.compile(r"^(\[[^\]]*\]|[^:]+):\d+$")


class PrometheusError(RuntimeError):
    """Prometheus could not answer a query (down, slow, or an error reply)."""


@dataclass(frozen=True)
class Query:
    """One PromQL instant query and the label that names the node in its result."""

    field: str
    promql: str
    node_label: str


def build_queries(settings: SchedulerSettings) -> list[Query]:
    """The queries for ``settings`` (rate window, node labels, idle threshold)."""
    w, inst, gpu = settings.rate_window, settings.instance_label, settings.gpu_node_label
    phys = f'device!~"{_VIRTUAL_DEVICES}"'
    running = 'and on (namespace, pod) (kube_pod_status_phase{phase=~"Pending|Running"} == 1)'

    def requested(resource: str) -> str:
        return f'sum by (node) (kube_pod_container_resource_requests{{resource="{resource}"}} {running})'

    return [
        Query("cpu_util", f'1 - avg by ({inst}) (rate(node_cpu_seconds_total{{mode="idle"}}[{w}]))', inst),
        Query("iowait", f'avg by ({inst}) (rate(node_cpu_seconds_total{{mode="iowait"}}[{w}]))', inst),
        Query("mem_available", f"max by ({inst}) (node_memory_MemAvailable_bytes)", inst),
        Query("mem_total", f"max by ({inst}) (node_memory_MemTotal_bytes)", inst),
        Query(
            "net_bytes",
            f"sum by ({inst}) (rate(node_network_receive_bytes_total{{{phys}}}[{w}]) "
            f"+ rate(node_network_transmit_bytes_total{{{phys}}}[{w}]))",
            inst,
        ),
        Query(
            "fs_free",
            f'min by ({inst}) (node_filesystem_avail_bytes{{mountpoint="/"}} '
            f'/ node_filesystem_size_bytes{{mountpoint="/"}})',
            inst,
        ),
        Query("gpu_util", f"avg by ({gpu}) (DCGM_FI_DEV_GPU_UTIL) / 100", gpu),
        Query("gpus_idle", f"sum by ({gpu}) (DCGM_FI_DEV_GPU_UTIL < bool {100 * settings.gpu_idle_threshold:g})", gpu),
        Query("gpus_seen", f"count by ({gpu}) (DCGM_FI_DEV_GPU_UTIL)", gpu),
        Query("gpu_mem_free", f"sum by ({gpu}) (DCGM_FI_DEV_FB_FREE) * 1048576", gpu),
        Query("cpu_requested", requested("cpu"), "node"),
        Query("mem_requested", requested("memory"), "node"),
        Query("gpus_requested", requested("nvidia_com_gpu"), "node"),
    ]


def node_name_from_label(value: str) -> str:
    """``"node-a:9100"`` -> ``"node-a"``; other values unchanged."""
    match = _PORT.match(value)
    return match.group(1) if match else value


class PrometheusSource:
    """Background-refreshed cache of node load read from Prometheus.

    Parameters
    ----------
    settings : SchedulerSettings
        Needs ``prometheus_url``; uses the refresh, timeout and label settings.

    Attributes
    ----------
    snapshot : LoadSnapshot
        The last successful refresh (empty, ``fetched_at == 0`` before the first).
    refreshes_ok, refreshes_failed : int
        Counters for the extender's /metrics.
    last_error : str
        Why the last failed refresh failed.
    """

    def __init__(self, settings: SchedulerSettings) -> None:
        if not settings.prometheus_url:
            raise ValueError("PrometheusSource needs settings.prometheus_url")
        self.settings = settings
        self.url = settings.prometheus_url.rstrip("/") + "/api/v1/query"
        self.queries = build_queries(settings)
        self.snapshot = LoadSnapshot()
        self.refreshes_ok = 0
        self.refreshes_failed = 0
        self.last_error = ""
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task | None = None

    # ------------------------------------------------------------------ freshness
    def is_fresh(self, now: float | None = None) -> bool:
        """True while the snapshot is younger than ``stale_after``."""
        return self.snapshot.age(now) <= self.settings.effective_stale_after

    def fresh_snapshot(self, now: float | None = None) -> LoadSnapshot | None:
        """The snapshot if fresh, else None (callers then fall back to neutral behaviour)."""
        return self.snapshot if self.is_fresh(now) else None

    # ------------------------------------------------------------------ queries
    async def _query(self, query: Query) -> dict[str, float]:
        assert self._session is not None
        timeout = self.settings.query_timeout
        params = {"query": query.promql, "timeout": f"{timeout:g}s"}
        try:
            async with self._session.get(
                self.url, params=params, timeout=aiohttp.ClientTimeout(total=timeout)
            ) as reply:
                body = await reply.json(content_type=None)
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            raise PrometheusError(f"{query.field}: {type(exc).__name__}: {exc}") from exc
        if not isinstance(body, dict) or body.get("status") != "success":
            error = body.get("error") if isinstance(body, dict) else body
            raise PrometheusError(f"{query.field}: Prometheus replied {error!r}")
        values: dict[str, float] = {}
        for item in body.get("data", {}).get("result", []):
            label = item.get("metric", {}).get(query.node_label)
            if not label:
                continue
            try:
                value = float(item["value"][1])
            except (KeyError, IndexError, TypeError, ValueError):
                continue
            if math.isfinite(value):
                values[node_name_from_label(label)] = value
        return values

    async def refresh_once(self) -> bool:
        """Run every query once; replace the snapshot only if all succeeded."""
        if self._session is None:
            self._session = aiohttp.ClientSession()
        started = time.time()
        try:
            results = await asyncio.gather(*(self._query(q) for q in self.queries))
        except PrometheusError as exc:
            self.refreshes_failed += 1
            if self.last_error != str(exc):
                log.warning("metrics refresh failed, keeping the last snapshot: %s", exc)
            self.last_error = str(exc)
            return False
        table: dict[str, dict[str, float]] = {}
        for query, values in zip(self.queries, results):
            for node, value in values.items():
                table.setdefault(node, {})[query.field] = value
        self.snapshot = LoadSnapshot({node: NodeLoad(**row) for node, row in table.items()}, fetched_at=started)
        self.refreshes_ok += 1
        if self.last_error:
            log.info("metrics refresh recovered (%d nodes)", len(table))
        self.last_error = ""
        return True

    async def _loop(self) -> None:
        while True:
            try:
                await self.refresh_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # never let the refresher die; the staleness metric shows it
                self.refreshes_failed += 1
                log.exception("unexpected error while refreshing metrics")
            await asyncio.sleep(self.settings.refresh_interval)

    async def start(self) -> None:
        """Start the background refresher (the first refresh runs immediately)."""
        if self._session is None:
            self._session = aiohttp.ClientSession()
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="beamhub-scheduler-metrics")

    async def stop(self) -> None:
        """Stop the refresher and close the HTTP session."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        if self._session is not None:
            await self._session.close()
            self._session = None
