"""The HTTP service: extender v1 conformance in both nodeCacheCapable modes, /summary, /metrics."""

import json

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sched_objects import full_args, load, make_node, make_pod, names_args

from beamhub.scheduler.app import create_app
from beamhub.scheduler.load import StaticLoadSource
from beamhub.scheduler.settings import SchedulerSettings

NODES = [
    make_node("cpu-idle", node_class="cpu"),
    make_node("cpu-busy", node_class="cpu"),
    make_node("cpu-disk", node_class="cpu", conditions={"DiskPressure": "True"}),
    make_node("gpu-a", cpu="32", memory="256Gi", gpus=4, node_class="gpu-a100"),
]
ROWS = {
    "cpu-idle": load(cpu=0.05),
    "cpu-busy": load(cpu=0.8),
    "cpu-disk": load(cpu=0.0),
    "gpu-a": load(cpu=0.2, mem_total_gib=256, mem_avail_gib=200, gpus_requested=1.0, gpu_util=0.3, cpu_requested=8.0),
}


async def start(settings=None, source=None):
    client = TestClient(TestServer(create_app(settings or SchedulerSettings(), load_source=source)))
    await client.start_server()
    return client


@pytest.fixture
async def fresh(snapshot_factory):
    client = await start(source=StaticLoadSource(snapshot_factory(ROWS), stale_after=60))
    yield client
    await client.close()


@pytest.fixture
async def stale(snapshot_factory):
    client = await start(source=StaticLoadSource(snapshot_factory(ROWS, age=120), stale_after=60))
    yield client
    await client.close()


async def post(client, path, body):
    reply = await client.post(path, data=json.dumps(body), headers={"Content-Type": "application/json"})
    return reply.status, await reply.json()


async def test_filter_full_mode_echoes_node_objects(fresh):
    status, body = await post(fresh, "/filter", full_args(make_pod(), NODES))
    assert status == 200
    assert set(body) == {"nodes", "failedNodes", "failedAndUnresolvableNodes", "error"}
    assert [n["metadata"]["name"] for n in body["nodes"]["items"]] == ["cpu-idle", "cpu-busy", "gpu-a"]
    assert body["nodes"]["items"][0] == NODES[0]  # returned untouched, as kube-scheduler expects
    assert body["failedAndUnresolvableNodes"] == {"cpu-disk": "node has DiskPressure"}
    assert body["error"] == ""


async def test_filter_names_mode_uses_node_cache(fresh):
    await post(fresh, "/filter", full_args(make_pod(), NODES))  # kube-scheduler taught us the nodes
    status, body = await post(
        fresh, "/filter", names_args(make_pod(gpus=4), [n["metadata"]["name"] for n in NODES] + ["never-seen"])
    )
    assert status == 200 and "nodes" not in body
    assert body["nodenames"] == ["cpu-idle", "cpu-busy", "never-seen"]
    assert "3 GPU(s) free" in body["failedNodes"]["gpu-a"]
    assert body["failedAndUnresolvableNodes"] == {"cpu-disk": "node has DiskPressure"}


@pytest.mark.parametrize("mode", ["full", "names"])
async def test_prioritize_ranks_by_load(fresh, mode):
    names = [n["metadata"]["name"] for n in NODES]
    await post(fresh, "/filter", full_args(make_pod(), NODES))
    args = full_args(make_pod(), NODES) if mode == "full" else names_args(make_pod(), names)
    status, body = await post(fresh, "/prioritize", args)
    assert status == 200
    assert [h["host"] for h in body] == names
    assert all(set(h) == {"host", "score"} and isinstance(h["score"], int) and 0 <= h["score"] <= 10 for h in body)
    scores = {h["host"]: h["score"] for h in body}
    assert scores["cpu-idle"] > scores["cpu-busy"]
    assert scores["cpu-idle"] > scores["gpu-a"]  # a CPU session keeps off the GPU node


async def test_stale_metrics_mean_neutral_scores_and_condition_filtering(stale):
    status, body = await post(stale, "/prioritize", full_args(make_pod(), NODES))
    assert status == 200 and {h["score"] for h in body} == {5}
    status, body = await post(stale, "/filter", full_args(make_pod(gpus=4), NODES))
    assert status == 200 and body["failedNodes"] == {}
    assert list(body["failedAndUnresolvableNodes"]) == ["cpu-disk"]
    metrics = await (await stale.get("/metrics")).text()
    assert "beamhub_scheduler_metrics_stale 1.0" in metrics
    assert "beamhub_scheduler_neutral_scores_total 1.0" in metrics


async def test_without_prometheus_works_from_node_objects():
    client = await start()
    try:
        status, body = await post(client, "/prioritize", names_args(make_pod(), ["a", "b"]))
        assert status == 200 and body == [{"host": "a", "score": 5}, {"host": "b", "score": 5}]
        status, body = await post(client, "/filter", full_args(make_pod(), NODES))
        assert status == 200 and len(body["nodes"]["items"]) == 3
    finally:
        await client.close()


@pytest.mark.parametrize(
    "payload, words",
    [
        (b"{not json", "not valid JSON"),
        (b'{"pod": {}}', "needs 'nodes'"),
        (b'{"pod": {}, "nodes": {"items": [{"metadata": {"name": ""}}]}}', "metadata.name"),
        (b"\xff\xfe", "not valid JSON"),
    ],
)
@pytest.mark.parametrize("path", ["/filter", "/prioritize"])
async def test_malformed_requests_get_400_with_message(fresh, path, payload, words):
    reply = await fresh.post(path, data=payload)
    assert reply.status == 400
    assert words in (await reply.json())["error"]


async def test_summary_shape_and_values(fresh):
    await post(fresh, "/filter", full_args(make_pod(), NODES))
    reply = await fresh.get("/summary")
    body = await reply.json()
    assert set(body) == {"generated", "stale", "classes", "free_gpus", "total_gpus"}
    assert body["stale"] is False and isinstance(body["generated"], int)
    classes = {c["name"]: c for c in body["classes"]}
    assert classes["gpu-a100"] == {"name": "gpu-a100", "nodes": 1, "free_cpu": 24.0, "free_gpus": 3, "total_gpus": 4}
    assert classes["cpu"]["nodes"] == 3 and classes["cpu"]["total_gpus"] == 0
    # measured: 16 x 0.95 + 16 x 0.2 + 16 x 1.0 (no requests known -> allocatable x (1 - utilisation))
    assert classes["cpu"]["free_cpu"] == pytest.approx(16 * 0.95 + 16 * 0.2 + 16 * 1.0, abs=0.05)
    assert body["free_gpus"] == 3 and body["total_gpus"] == 4


async def test_summary_class_falls_back_to_instance_type(fresh):
    await post(fresh, "/filter", full_args(make_pod(), [make_node("plain", instance_type="g5.xlarge", gpus=1)]))
    body = await (await fresh.get("/summary")).json()
    assert [c["name"] for c in body["classes"]] == ["g5.xlarge"]


async def test_healthz_and_metrics(fresh):
    assert (await fresh.get("/healthz")).status == 200
    await post(fresh, "/prioritize", names_args(make_pod(), ["a"]))
    await fresh.post("/prioritize", data=b"[")
    text = await (await fresh.get("/metrics")).text()
    assert 'beamhub_scheduler_requests_total{code="200",endpoint="/prioritize"} 1.0' in text
    assert 'beamhub_scheduler_requests_total{code="400",endpoint="/prioritize"} 1.0' in text
    assert 'beamhub_scheduler_request_duration_seconds_count{endpoint="/prioritize"} 2.0' in text
    assert "beamhub_scheduler_metrics_stale 0.0" in text
    assert (await fresh.get("/nowhere")).status == 404
    assert (await fresh.get("/filter")).status == 405


def test_settings_refuse_bad_values_by_name():
    from beamhub.errors import UsageError

    with pytest.raises(UsageError, match="'strategy'"):
        SchedulerSettings(strategy="coin-flip")
    with pytest.raises(UsageError, match="'refresh_interval'"):
        SchedulerSettings(refresh_interval=0)
    with pytest.raises(UsageError, match="unknown scheduler setting"):
        SchedulerSettings.from_mapping({"prometheus": "http://x"})


async def test_node_objects_are_reparsed_when_their_resource_version_changes(fresh):
    node = make_node("cpu-idle", node_class="cpu")
    status, body = await post(fresh, "/filter", full_args(make_pod(), [node]))
    assert status == 200 and body["failedAndUnresolvableNodes"] == {}
    node["metadata"]["resourceVersion"] = "98766"
    node["status"]["conditions"][2]["status"] = "True"  # DiskPressure
    status, body = await post(fresh, "/filter", full_args(make_pod(), [node]))
    assert body["failedAndUnresolvableNodes"] == {"cpu-idle": "node has DiskPressure"}
    # node-cache mode now knows the new state too
    status, body = await post(fresh, "/filter", names_args(make_pod(), ["cpu-idle"]))
    assert body["nodenames"] == [] and "cpu-idle" in body["failedAndUnresolvableNodes"]
