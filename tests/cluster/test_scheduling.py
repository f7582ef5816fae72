"""The BeamHub scheduler behind the real kube-scheduler: filter and prioritize calls, GPUs, hot nodes.

Pods are built as BeamSpawner builds them (hub/pods.py) and created through the API; the real
kube-scheduler (profile ``beamhub-scheduler`` from the chart's ConfigMap) calls our extender and
binds them; KWOK marks them Running.  Node load comes from a real Prometheus scraping a real
Pushgateway.
"""

from __future__ import annotations

import json
import time
import uuid
from urllib.request import Request, urlopen

import pytest
from beamhub_cluster import session_pod
from nodeload import NodeLoad

from beamhub.hub.catalog import load_catalog
from beamhub.hub.identity import Identity

CATALOG = load_catalog()
ALICE = Identity("alice", 2001, 2001, (3001, 3002), ("spi", "tomo"))
HOT = "kwok-cpu-0"


def _create_and_wait_bound(cluster, pods: list[dict]) -> dict[str, str]:
    """Create ``pods``; wait until every one is bound and Running; pod name -> node name."""
    cluster.plane.apply(pods)
    names = [p["metadata"]["name"] for p in pods]

    def placed():
        items = cluster.plane.get(
            "pods", "-n", "beamhub", "-l", f"test-batch={pods[0]['metadata']['labels']['test-batch']}"
        )["items"]
        running = {
            p["metadata"]["name"]: p["spec"].get("nodeName") for p in items if p["status"].get("phase") == "Running"
        }
        return running if set(running) == set(names) else None

    return cluster.plane.wait_for(placed, f"{len(pods)} pods bound and Running", timeout=90)


def _batch(env_slug: str, count: int, scheduler: str | None = "beamhub-scheduler") -> list[dict]:
    batch = uuid.uuid4().hex[:8]
    env = CATALOG.get(env_slug)
    return [
        session_pod(f"{env_slug}-{batch}-{i}", env, ALICE, scheduler=scheduler, labels={"test-batch": batch})
        for i in range(count)
    ]


def _delete_batch(cluster, pods):
    cluster.plane.kubectl(
        "delete",
        "pods",
        "-n",
        "beamhub",
        "-l",
        f"test-batch={pods[0]['metadata']['labels']['test-batch']}",
        "--wait=false",
    )


@pytest.fixture
def hot_node(cluster, load):
    """One CPU node at 97% CPU and 40% iowait; the extender's snapshot shows it before the test goes on."""
    load.set(HOT, NodeLoad(cpu=0.97, iowait=0.4, mem_free_gib=10))

    def extender_sees_it():
        summary = cluster.summary()
        return not summary["stale"] and summary

    cluster.plane.wait_for(extender_sees_it, "the extender reading node load from Prometheus", timeout=60)
    # the load is measured through rate(): give Prometheus a few scrapes of the new slope
    cluster.plane.wait_for(lambda: _hot_seen(cluster), "the hot node in the extender's scores", timeout=90)
    yield HOT
    load.set(HOT, NodeLoad())


def _hot_seen(cluster) -> bool:
    nodes = [n["metadata"]["name"] for n in cluster.plane.get("nodes")["items"] if "cpu" in n["metadata"]["name"]]
    body = {"Pod": session_pod("probe", CATALOG.get("scipy"), ALICE), "NodeNames": nodes}
    req = Request(
        f"{cluster.extender_url}/prioritize",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urlopen(req, timeout=5) as resp:
        scores = {h["host"]: h["score"] for h in json.load(resp)}
    return scores[HOT] < min(s for n, s in scores.items() if n != HOT)


def _hot_seen_steadily(cluster, probes: int = 4, interval: float = 0.5) -> bool:
    for i in range(probes):
        if not _hot_seen(cluster):
            return False
        if i < probes - 1:
            time.sleep(interval)
    return True


def test_session_pods_go_through_the_extender_and_avoid_the_hot_node(cluster, hot_node):
    before = {verb: cluster.extender_calls(verb) for verb in ("/filter", "/prioritize")}
    pods = _batch("scipy", 8)
    try:
        placement = _create_and_wait_bound(cluster, pods)
        assert hot_node not in placement.values(), placement
        assert all(node.startswith("kwok-cpu-") for node in placement.values())
        assert cluster.extender_calls("/filter") >= before["/filter"] + 8
        assert cluster.extender_calls("/prioritize") >= before["/prioritize"] + 8
        pod = cluster.plane.get("pod", pods[0]["metadata"]["name"], "-n", "beamhub")
        assert pod["spec"]["schedulerName"] == "beamhub-scheduler"
        assert pod["spec"]["priorityClassName"] == "beamhub-burstable" and pod["spec"]["priority"] == 500
        assert pod["status"]["qosClass"] == "Burstable"
    finally:
        _delete_batch(cluster, pods)


def test_a_gpu_environment_lands_on_a_gpu_node_with_its_class(cluster):
    pods = _batch("phasing-gpu", 2)
    try:
        placement = _create_and_wait_bound(cluster, pods)
        assert all(node.startswith("kwok-gpu-") for node in placement.values()), placement
        pod = cluster.plane.get("pod", pods[0]["metadata"]["name"], "-n", "beamhub")
        limits = pod["spec"]["containers"][0]["resources"]["limits"]
        assert limits["nvidia.com/gpu"] == "1"
        assert pod["status"]["qosClass"] == "Guaranteed" and pod["spec"]["priorityClassName"] == "beamhub-guaranteed"
        assert pod["spec"]["securityContext"]["runAsUser"] == 2001
        assert pod["spec"]["securityContext"]["supplementalGroups"] == [3001, 3002]
    finally:
        _delete_batch(cluster, pods)


def test_pods_still_schedule_with_the_extender_down(cluster):
    """ignorable: true -- a dead extender never blocks a session."""
    cluster.stop_extender()
    pods = _batch("scipy", 2)
    try:
        placement = _create_and_wait_bound(cluster, pods)
        assert len(placement) == 2
    finally:
        _delete_batch(cluster, pods)
        cluster.start_extender()


@pytest.fixture
def via_plugin(cluster, monitoring):
    """The chart upgraded to ``scheduler.extender.via: plugin``: beamhub-kube-scheduler with BeamHubLoad.

    Answers are kept 30 s here (1 s by default) so that the test can count the extender's calls
    whatever the machine's speed; the fixture puts the chart and kube-scheduler back afterwards.
    """

    def switch(via: str, cache_seconds: float = 1) -> dict:
        extender = {
            "port": cluster.extender_port,
            "prometheusUrl": monitoring.prometheus_url,
            "settings": {"refresh_interval": 1},
            "via": via,
            "pluginCacheSeconds": cache_seconds,
        }
        cluster.install_chart({"scheduler": {"extender": extender}}, action="upgrade")
        config, _ = cluster.scheduler_config()
        cluster.start_kube_scheduler(config)
        return config

    config = switch("plugin", cache_seconds=30)
    yield config
    switch("http")


def test_the_beamhubload_plugin_asks_the_extender_once_per_pod_shape(cluster, hot_node, via_plugin):
    """kube-scheduler built with BeamHubLoad: the extender's answers, one round trip for a batch of one shape."""
    profile = via_plugin["profiles"][0]
    assert "extenders" not in via_plugin
    assert profile["pluginConfig"][0]["args"]["extenderURL"] == cluster.extender_url
    binary = cluster.plane.procs["beamhub-scheduler"].args[0]
    assert binary.endswith("beamhub-kube-scheduler"), binary
    # one answer serves the whole batch here (30 s): ask for it only once the extender has
    # scored the hot node lowest several times running, not on a passing sample
    cluster.plane.wait_for(lambda: _hot_seen_steadily(cluster), "the hot node scored lowest, steadily", 90)
    before = {verb: cluster.extender_calls(verb) for verb in ("/filter", "/prioritize")}
    pods = _batch("scipy", 8)
    try:
        placement = _create_and_wait_bound(cluster, pods)
        assert hot_node not in placement.values(), placement
        assert all(node.startswith("kwok-cpu-") for node in placement.values())
        # asked (the hot node is avoided by the extender's verdict), but not once per pod
        for verb in ("/filter", "/prioritize"):
            assert 1 <= cluster.extender_calls(verb) - before[verb] <= 2, verb
        assert cluster.plane.get("pod", pods[0]["metadata"]["name"], "-n", "beamhub")["spec"]["schedulerName"] == (
            "beamhub-scheduler"
        )
    finally:
        _delete_batch(cluster, pods)
    gpu = _batch("phasing-gpu", 2)
    try:
        placement = _create_and_wait_bound(cluster, gpu)
        assert all(node.startswith("kwok-gpu-") for node in placement.values()), placement
    finally:
        _delete_batch(cluster, gpu)


def test_the_beamhubload_plugin_schedules_with_the_extender_down(cluster, via_plugin):
    """As the ignorable extender: a shape the plugin has no answer for still binds when the extender is gone."""
    cluster.stop_extender()
    pods = _batch("spi-emc", 2)
    try:
        placement = _create_and_wait_bound(cluster, pods)
        assert len(placement) == 2
        log = (cluster.plane.workdir / "logs" / "beamhub-scheduler.log").read_text(errors="replace")
        assert "BeamHub extender unreachable" in log
    finally:
        _delete_batch(cluster, pods)
        cluster.start_extender()
