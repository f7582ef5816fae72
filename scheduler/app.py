"""The extender's HTTP service (aiohttp): parse, call a pure policy, serialise.

Routes: ``POST /filter``, ``POST /prioritize`` (kube-scheduler extender v1), ``GET /healthz``,
``GET /metrics`` (Prometheus text format), ``GET /summary`` (free CPU/GPUs per node class).
Build one with :func:`create_app`; nothing is created at import time.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable

import numpy as np
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from beamhub.scheduler.kube_nodes import NodeWatcher
from beamhub.scheduler.load import LoadSnapshot
from beamhub.scheduler.metrics_source import PrometheusSource
from beamhub.scheduler.models import (
    MAX_EXTENDER_PRIORITY,
    ExtenderArgs,
    ExtenderFilterResult,
    HostPriorityList,
    WireFormatError,
)
from beamhub.scheduler.node_cache import NodeCache
from beamhub.scheduler.policy import NodeView, filter_nodes, get_strategy, score_nodes
from beamhub.scheduler.settings import SchedulerSettings
from beamhub.scheduler.summary import build_summary

__all__ = ["create_app", "answer_filter", "answer_prioritize", "SETTINGS_KEY", "STATE_KEY", "ExtenderState"]

log = logging.getLogger("beamhub.scheduler")


class ExtenderState:
    """Everything a handler needs: settings, node cache, load source, service metrics."""

    def __init__(self, settings: SchedulerSettings, load_source=None) -> None:
        self.settings = settings
        self.strategy = get_strategy(settings.strategy)
        self.score_params = settings.score_params
        self.filter_params = settings.filter_params
        self.nodes = NodeCache()
        if settings.nodes_file:
            self.nodes.load_file(settings.nodes_file)
        self.watcher = NodeWatcher(self.nodes, settings.kube_api) if settings.kube_api else None
        if load_source is not None:
            self.source = load_source
        else:
            self.source = PrometheusSource(settings) if settings.prometheus_url else None

        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "beamhub_scheduler_requests", "Extender HTTP requests.", ["endpoint", "code"], registry=r
        )
        self.latency = Histogram(
            "beamhub_scheduler_request_duration_seconds",
            "Time to answer an extender request.",
            ["endpoint"],
            registry=r,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        )
        self.neutral = Counter(
            "beamhub_scheduler_neutral_scores",
            "Prioritize calls answered with neutral scores (no fresh load metrics).",
            registry=r,
        )
        self.fallback_filters = Counter(
            "beamhub_scheduler_condition_only_filters",
            "Filter calls judged on node conditions alone (no fresh load metrics).",
            registry=r,
        )
        Gauge(
            "beamhub_scheduler_metrics_age_seconds",
            "Age of the cached load metrics (+Inf before the first refresh or without Prometheus).",
            registry=r,
        ).set_function(lambda: self.snapshot.age())
        Gauge(
            "beamhub_scheduler_metrics_stale",
            "1 when load metrics are missing or older than stale_after (scores are neutral).",
            registry=r,
        ).set_function(lambda: 0.0 if self.fresh_snapshot() is not None else 1.0)
        Gauge("beamhub_scheduler_metrics_refreshes_ok", "Successful Prometheus refreshes.", registry=r).set_function(
            lambda: self.source.refreshes_ok if self.source else 0
        )
        Gauge("beamhub_scheduler_metrics_refreshes_failed", "Failed Prometheus refreshes.", registry=r).set_function(
            lambda: self.source.refreshes_failed if self.source else 0
        )
        Gauge("beamhub_scheduler_nodes_known", "Nodes in the extender's node cache.", registry=r).set_function(
            lambda: len(self.nodes)
        )

    @property
    def snapshot(self) -> LoadSnapshot:
        return self.source.snapshot if self.source else LoadSnapshot()

    def fresh_snapshot(self) -> LoadSnapshot | None:
        return self.source.fresh_snapshot() if self.source else None

    def resolve(self, args: ExtenderArgs):
        """(names, node facts) for a request, remembering full Node objects."""
        if args.nodes is not None:
            self.nodes.update(args.nodes)
            return args.names, list(args.nodes)
        return args.names, self.nodes.lookup(args.names)


#: Keys of the application's shared objects.
SETTINGS_KEY = web.AppKey("settings", SchedulerSettings)
STATE_KEY = web.AppKey("state", ExtenderState)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


try:  # orjson, when installed, decodes and encodes large node lists several times faster
    import orjson

    def _loads(raw: bytes):
        return orjson.loads(raw)

    def _dumps(data) -> bytes:
        try:
            return orjson.dumps(data)
        except TypeError:  # integers beyond 64 bits, echoed from an odd Node object
            return json.dumps(data, separators=(",", ":")).encode()
except ImportError:  # pragma: no cover - exercised where orjson is absent

    def _loads(raw: bytes):
        return json.loads(raw)

    def _dumps(data) -> bytes:
        return json.dumps(data, separators=(",", ":")).encode()


def _json(data, status: int = 200) -> web.Response:
    return web.Response(body=_dumps(data), status=status, content_type="application/json")


def parse_args(state: ExtenderState, raw: bytes) -> ExtenderArgs:
    """Decode a request body into :class:`ExtenderArgs`; :class:`WireFormatError` if malformed."""
    try:
        body = _loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise WireFormatError(f"request body is not valid JSON: {exc}") from None
    return ExtenderArgs.from_json(body, state.nodes.parse)


def answer_filter(state: ExtenderState, raw: bytes) -> tuple[int, object]:
    """(HTTP status, JSON payload) of ``POST /filter`` for a request body; no I/O."""
    try:
        args = parse_args(state, raw)
    except WireFormatError as exc:
        return 400, {"error": str(exc)}
    names, nodes = state.resolve(args)
    snapshot = state.fresh_snapshot()
    if snapshot is None:
        state.fallback_filters.inc()
    try:
        verdict = filter_nodes(args.pod, names, nodes, snapshot, state.filter_params)
    except Exception:  # a bug must not block scheduling: pass every node, say so in the log
        log.exception("filter policy failed; passing all %d nodes", len(names))
        verdict = filter_nodes(args.pod, names, [None] * len(names), None)
    result = ExtenderFilterResult(failed_nodes=verdict.failed, failed_and_unresolvable_nodes=verdict.unresolvable)
    if args.nodes is None:
        result.node_names = verdict.passed
    else:
        keep = set(verdict.passed)
        result.nodes = [n.raw for n in args.nodes if n.name in keep]
    return 200, result.to_json()


def answer_prioritize(state: ExtenderState, raw: bytes) -> tuple[int, object]:
    """(HTTP status, JSON payload) of ``POST /prioritize`` for a request body; no I/O."""
    try:
        args = parse_args(state, raw)
    except WireFormatError as exc:
        return 400, {"error": str(exc)}
    names, nodes = state.resolve(args)
    snapshot = state.fresh_snapshot()
    scores = None
    if snapshot is None:
        state.neutral.inc()
    else:
        try:
            view = NodeView.build(names, nodes, snapshot)
            scores = score_nodes(args.pod, view, state.strategy, state.score_params)
        except Exception:  # never fail a pod over a scoring bug: neutral scores instead
            log.exception("scoring failed; answering neutrally for %d nodes", len(names))
            state.neutral.inc()
    if scores is None:
        scores = np.full(len(names), MAX_EXTENDER_PRIORITY // 2, dtype=np.int64)
    return 200, HostPriorityList.encode(names, scores.tolist())


async def handle_filter(request: web.Request) -> web.Response:
    """``POST /filter``: ExtenderArgs -> ExtenderFilterResult."""
    status, payload = answer_filter(request.app[STATE_KEY], await request.read())
    return _json(payload, status)


async def handle_prioritize(request: web.Request) -> web.Response:
    """``POST /prioritize``: ExtenderArgs -> HostPriorityList (scores 0..10)."""
    status, payload = answer_prioritize(request.app[STATE_KEY], await request.read())
    return _json(payload, status)


async def handle_healthz(request: web.Request) -> web.Response:
    """``GET /healthz``: 200 while the service runs (stale metrics do not make it unhealthy)."""
    state = request.app[STATE_KEY]
    return _json({"status": "ok", "metrics_fresh": state.fresh_snapshot() is not None, "nodes_known": len(state.nodes)})


async def handle_metrics(request: web.Request) -> web.Response:
    """``GET /metrics`` in the Prometheus text exposition format."""
    state = request.app[STATE_KEY]
    body = generate_latest(state.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def handle_summary(request: web.Request) -> web.Response:
    """``GET /summary``: free CPU and GPUs per node class (the hub's launch page reads it)."""
    state = request.app[STATE_KEY]
    fresh = state.fresh_snapshot()
    snapshot = state.snapshot if state.source else None
    summary = build_summary(
        state.nodes.all(), snapshot, stale=fresh is None, class_label=state.settings.node_class_label, now=time.time()
    )
    return _json(summary)


@web.middleware
async def _observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count and time every request; turn anything unexpected into a logged 500."""
    state = request.app[STATE_KEY]
    route = request.match_info.route.resource
    endpoint = route.canonical if route is not None else "other"
    started = time.perf_counter()
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        response = exc
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        response = _json({"error": "internal error; see the extender's log"}, status=500)
    state.latency.labels(endpoint).observe(time.perf_counter() - started)
    state.requests.labels(endpoint, str(response.status)).inc()
    if isinstance(response, web.HTTPException) and response.status >= 400:
        return _json({"error": response.reason}, status=response.status)
    return response


def create_app(settings: SchedulerSettings | None = None, *, load_source=None) -> web.Application:
    """Build the extender application.

    Parameters
    ----------
    settings : SchedulerSettings, optional
        Validated settings (defaults when omitted).
    load_source : object, optional
        Where node load comes from, replacing the Prometheus source that ``prometheus_url``
        would build: anything with ``snapshot``, ``fresh_snapshot()``, ``refreshes_ok``,
        ``refreshes_failed`` and async ``start()`` / ``stop()`` (the simulator and tests
        pass a static one).

    Returns
    -------
    aiohttp.web.Application
        Starting it starts the background metrics refresher (when ``prometheus_url`` is
        set) and the node watcher (when ``kube_api`` is set); cleaning it up stops them.
    """
    settings = settings or SchedulerSettings()
    app = web.Application(middlewares=[_observe], client_max_size=settings.max_body_bytes)
    state = ExtenderState(settings, load_source)
    app[SETTINGS_KEY] = settings
    app[STATE_KEY] = state
    app.router.add_post("/filter", handle_filter)
    app.router.add_post("/prioritize", handle_prioritize)
    app.router.add_get("/healthz", handle_healthz)
    app.router.add_get("/metrics", handle_metrics)
    app.router.add_get("/summary", handle_summary)

    async def start_source(app: web.Application) -> None:
        if state.source is not None:
            await state.source.start()
        if state.watcher is not None:
            await state.watcher.start()

    async def stop_source(app: web.Application) -> None:
        if state.source is not None:
            await state.source.stop()
        if state.watcher is not None:
            await state.watcher.stop()

    app.on_startup.append(start_source)
    app.on_cleanup.append(stop_source)
    return app
