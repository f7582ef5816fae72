"""The Prometheus client against a fake /api/v1/query: parsing, failures, slowness."""

import asyncio
import time

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from beamhub.scheduler.metrics_source import PrometheusSource, build_queries, node_name_from_label
from beamhub.scheduler.settings import SchedulerSettings


@pytest.mark.parametrize(
    "label, name",
    [("node-a:9100", "node-a"), ("node-a", "node-a"), ("10.0.0.1:9100", "10.0.0.1"), ("[fe80::1]:9100", "[fe80::1]")],
)
def test_node_name_from_label(label, name):
    assert node_name_from_label(label) == name


def test_queries_follow_settings():
    settings = SchedulerSettings(rate_window="5m", instance_label="node", gpu_node_label="kubernetes_node")
    queries = {q.field: q for q in build_queries(settings)}
    assert "[5m]" in queries["cpu_util"].promql and queries["cpu_util"].node_label == "node"
    assert queries["gpu_util"].node_label == "kubernetes_node"
    assert queries["gpus_idle"].promql.endswith("< bool 5)")


@pytest.fixture
async def fake_prometheus():
    mode = {"value": "ok"}

    async def query(request: web.Request) -> web.Response:
        promql = request.query["query"]
        if mode["value"] == "error":
            return web.json_response({"status": "error", "errorType": "bad_data", "error": "parse error"}, status=400)
        if mode["value"] == "slow":
            await asyncio.sleep(10)
        result = []
        if 'node_cpu_seconds_total{mode="idle"}' in promql and promql.startswith("1 -"):
            result = [
                {"metric": {"instance": "node-a:9100"}, "value": [time.time(), "0.25"]},
                {"metric": {"instance": "node-b:9100"}, "value": [time.time(), "NaN"]},
                {"metric": {"job": "no-instance"}, "value": [time.time(), "0.5"]},
            ]
        elif "DCGM_FI_DEV_GPU_UTIL) / 100" in promql:
            result = [{"metric": {"Hostname": "gpu-1"}, "value": [time.time(), "0.5"]}]
        return web.json_response({"status": "success", "data": {"resultType": "vector", "result": result}})

    app = web.Application()
    app.router.add_get("/api/v1/query", query)
    server = TestServer(app)
    await server.start_server()
    yield str(server.make_url("")).rstrip("/"), mode
    await server.close()


async def test_refresh_parses_keeps_old_snapshot_on_failure_and_times_out(fake_prometheus):
    url, mode = fake_prometheus
    # a timeout generous enough for a loaded CI machine, far below the slow server's 10 s
    source = PrometheusSource(SchedulerSettings(prometheus_url=url, query_timeout=3, refresh_interval=60))
    try:
        assert await source.refresh_once() is True
        snap = source.snapshot
        assert snap.nodes["node-a"].cpu_util == 0.25
        assert "node-b" not in snap.nodes  # NaN values are dropped, not stored
        assert snap.nodes["gpu-1"].gpu_util == 0.5 and snap.nodes["gpu-1"].cpu_util != snap.nodes["gpu-1"].cpu_util
        assert source.is_fresh()

        mode["value"] = "error"
        assert await source.refresh_once() is False
        assert source.snapshot is snap and "parse error" in source.last_error

        mode["value"] = "slow"
        # without the timeout the slow answer would arrive and the refresh succeed
        assert await source.refresh_once() is False
        assert "Timeout" in source.last_error
        assert source.refreshes_ok == 1 and source.refreshes_failed == 2
        assert not source.is_fresh(now=time.time() + 3 * 60 + 1)
    finally:
        await source.stop()


async def test_background_loop_refreshes(fake_prometheus):
    url, _ = fake_prometheus
    source = PrometheusSource(SchedulerSettings(prometheus_url=url, refresh_interval=0.1))
    await source.start()
    try:
        deadline = time.monotonic() + 10
        while source.refreshes_ok < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert source.refreshes_ok >= 3
    finally:
        await source.stop()
