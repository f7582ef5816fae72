"""Against a real Prometheus scraping a real Pushgateway fed with synthetic node series.

Needs the Debian packages ``prometheus`` and ``prometheus-pushgateway``; without them this
test fails (it does not skip): the extender's reason to exist is reading real Prometheus.
"""

import asyncio
import json
import shutil
import socket
import subprocess
import threading
import time

import pytest
import requests
from aiohttp.test_utils import TestClient, TestServer
from sched_objects import full_args, make_node, make_pod, names_args

from beamhub.scheduler.app import STATE_KEY, create_app
from beamhub.scheduler.settings import SchedulerSettings

pytestmark = pytest.mark.integration

GIB = 2**30
# node -> (cpu utilisation, iowait, MemAvailable GiB); all have 64 GiB and 16 CPUs
NODE_SERIES = {
    "node-a": (0.10, 0.00, 55.0),
    "node-b": (0.85, 0.01, 40.0),
    "node-c": (0.40, 0.20, 50.0),
    "gpu-1": (0.20, 0.00, 200.0),
}
GPU_NODE = "gpu-1"


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"{name} is not installed: apt-get install -y --no-install-recommends "
            "prometheus prometheus-pushgateway (the Makefile does this)"
        )
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(url: str, proc: subprocess.Popen, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{what} exited with status {proc.returncode}: {proc.stderr.read().decode()[-2000:]}")
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    pytest.fail(f"{what} did not become ready at {url} within {timeout} s")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@pytest.fixture
def pushgateway(tmp_path):
    port = _free_port()
    proc = subprocess.Popen(
        [
            _binary("prometheus-pushgateway"),
            f"--web.listen-address=127.0.0.1:{port}",
            f"--persistence.file={tmp_path / 'pushgateway.data'}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url + "/-/ready", proc, "pushgateway")
        yield url
    finally:
        _stop(proc)


@pytest.fixture
def prometheus(tmp_path, pushgateway):
    port = _free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: pushgateway\n    honor_labels: true\n"
        f"    static_configs:\n      - targets: ['{pushgateway.removeprefix('http://')}']\n"
    )
    proc = subprocess.Popen(
        [
            _binary("prometheus"),
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url + "/-/ready", proc, "prometheus")
        yield url, proc
    finally:
        _stop(proc)


def _node_exposition(node: str, elapsed: float) -> str:
    util, iowait, avail = NODE_SERIES[node]
    lines = ["# TYPE node_cpu_seconds_total counter"]
    for cpu in range(2):  # two CPU series are enough for avg by (instance)
        lines.append(f'node_cpu_seconds_total{{cpu="{cpu}",mode="idle"}} {(1 - util) * elapsed:.6f}')
        lines.append(f'node_cpu_seconds_total{{cpu="{cpu}",mode="iowait"}} {iowait * elapsed:.6f}')
        lines.append(f'node_cpu_seconds_total{{cpu="{cpu}",mode="user"}} {(util - iowait) * elapsed:.6f}')
    total = (256 if node == GPU_NODE else 64) * GIB
    lines += [
        "# TYPE node_memory_MemAvailable_bytes gauge",
        f"node_memory_MemAvailable_bytes {avail * GIB:.0f}",
        "# TYPE node_memory_MemTotal_bytes gauge",
        f"node_memory_MemTotal_bytes {total}",
        "# TYPE node_network_receive_bytes_total counter",
        f'node_network_receive_bytes_total{{device="eth0"}} {1e6 * elapsed:.0f}',
        f'node_network_receive_bytes_total{{device="lo"}} {1e9 * elapsed:.0f}',
        "# TYPE node_network_transmit_bytes_total counter",
        f'node_network_transmit_bytes_total{{device="eth0"}} {1e6 * elapsed:.0f}',
        f'node_network_transmit_bytes_total{{device="lo"}} {1e9 * elapsed:.0f}',
        "# TYPE node_filesystem_avail_bytes gauge",
        f'node_filesystem_avail_bytes{{mountpoint="/",fstype="ext4"}} {50 * GIB}',
        "# TYPE node_filesystem_size_bytes gauge",
        f'node_filesystem_size_bytes{{mountpoint="/",fstype="ext4"}} {100 * GIB}',
    ]
    return "\n".join(lines) + "\n"


def _gpu_exposition() -> str:
    lines = ["# TYPE DCGM_FI_DEV_GPU_UTIL gauge"]
    for gpu, util in enumerate([95, 90, 80, 0]):
        lines.append(f'DCGM_FI_DEV_GPU_UTIL{{gpu="{gpu}",Hostname="{GPU_NODE}"}} {util}')
    lines.append("# TYPE DCGM_FI_DEV_FB_FREE gauge")
    for gpu in range(4):
        lines.append(f'DCGM_FI_DEV_FB_FREE{{gpu="{gpu}",Hostname="{GPU_NODE}"}} 20000')
    return "\n".join(lines) + "\n"


def _ksm_exposition() -> str:
    # Three GPUs requested on gpu-1 by running pods, plus a finished pod that must not count.
    lines = ["# TYPE kube_pod_container_resource_requests gauge"]
    for pod, gpus in (("train-1", 2), ("train-2", 1), ("done-1", 1)):
        lines.append(
            f'kube_pod_container_resource_requests{{namespace="u",pod="{pod}",node="{GPU_NODE}",'
            f'resource="nvidia_com_gpu",unit="integer"}} {gpus}'
        )
        lines.append(
            f'kube_pod_container_resource_requests{{namespace="u",pod="{pod}",node="{GPU_NODE}",'
            f'resource="cpu",unit="core"}} 4'
        )
    lines.append("# TYPE kube_pod_status_phase gauge")
    for pod, phase in (("train-1", "Running"), ("train-2", "Running"), ("done-1", "Succeeded")):
        for p in ("Pending", "Running", "Succeeded"):
            lines.append(f'kube_pod_status_phase{{namespace="u",pod="{pod}",phase="{p}"}} {int(p == phase)}')
    return "\n".join(lines) + "\n"


class Pusher:
    """Pushes counters that grow at the configured rates, as exporters would, every 0.25 s."""

    def __init__(self, url: str):
        self.url, self.started = url, time.monotonic()
        self._stop = threading.Event()
        self.error: Exception | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def push_once(self) -> None:
        elapsed = 1000.0 + time.monotonic() - self.started
        for node in NODE_SERIES:
            requests.put(
                f"{self.url}/metrics/job/node/instance/{node}:9100", data=_node_exposition(node, elapsed), timeout=5
            ).raise_for_status()
        requests.put(
            f"{self.url}/metrics/job/dcgm/instance/dcgm-{GPU_NODE}", data=_gpu_exposition(), timeout=5
        ).raise_for_status()
        requests.put(f"{self.url}/metrics/job/kube-state-metrics", data=_ksm_exposition(), timeout=5).raise_for_status()

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            try:
                self.push_once()
            except Exception as exc:  # surfaced by the test
                self.error = exc

    def __enter__(self):
        self.push_once()
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self.thread.join(10)


NODES = [
    make_node("node-a", node_class="cpu"),
    make_node("node-b", node_class="cpu"),
    make_node("node-c", node_class="cpu"),
    make_node(GPU_NODE, cpu="32", memory="256Gi", gpus=4, node_class="gpu-a100"),
]


async def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.2)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


async def test_ranks_nodes_from_real_prometheus_then_turns_neutral_when_it_stops(prometheus, pushgateway):
    prom_url, prom_proc = prometheus
    settings = SchedulerSettings(
        prometheus_url=prom_url, refresh_interval=0.5, stale_after=2.0, query_timeout=1.0, rate_window="5s"
    )
    with Pusher(pushgateway) as pusher:
        client = TestClient(TestServer(create_app(settings)))
        await client.start_server()
        try:
            state = client.app[STATE_KEY]

            def measured():
                # rate() divides by the whole window, so wait until a full window of samples exists
                snap = state.source.snapshot.nodes
                return (
                    all(n in snap and abs(snap[n].cpu_util - NODE_SERIES[n][0]) < 0.05 for n in NODE_SERIES)
                    and GPU_NODE in snap
                    and snap[GPU_NODE].gpus_requested == snap[GPU_NODE].gpus_requested
                )

            await _wait_for(measured, 40, "Prometheus to return rates for every node")
            assert pusher.error is None
            snap = state.source.snapshot.nodes
            for node, (util, iowait, avail) in NODE_SERIES.items():
                assert snap[node].cpu_util == pytest.approx(util, abs=0.05), node
                assert snap[node].iowait == pytest.approx(iowait, abs=0.03), node
                assert snap[node].mem_available == pytest.approx(avail * GIB)
                assert snap[node].fs_free == pytest.approx(0.5)
                assert snap[node].net_bytes == pytest.approx(2e6, rel=0.2), node  # loopback excluded
            gpu = snap[GPU_NODE]
            assert (gpu.gpus_seen, gpu.gpus_idle, gpu.gpus_requested) == (4, 1, 3)
            assert gpu.gpu_util == pytest.approx((95 + 90 + 80) / 400)

            reply = await client.post("/prioritize", data=json.dumps(full_args(make_pod(cpu="1"), NODES)))
            assert reply.status == 200
            scores = {h["host"]: h["score"] for h in await reply.json()}
            assert scores["node-a"] > scores["node-c"] > scores["node-b"], scores
            assert scores["node-a"] > scores[GPU_NODE], scores

            reply = await client.post("/filter", data=json.dumps(names_args(make_pod(gpus=2), list(scores))))
            body = await reply.json()
            assert reply.status == 200 and "1 GPU(s) free" in body["failedNodes"][GPU_NODE]

            summary = await (await client.get("/summary")).json()
            gpu_class = next(c for c in summary["classes"] if c["name"] == "gpu-a100")
            assert summary["stale"] is False
            assert (gpu_class["free_gpus"], gpu_class["total_gpus"]) == (1, 4)
            assert gpu_class["free_cpu"] == pytest.approx(32 - 8)

            # Prometheus goes away mid-test: no 5xx, neutral scores, condition-only filtering.
            prom_proc.terminate()
            prom_proc.wait(10)
            await _wait_for(lambda: state.fresh_snapshot() is None, 10, "the metrics to turn stale")
            for path, args in (
                ("/prioritize", full_args(make_pod(), NODES)),
                ("/filter", full_args(make_pod(gpus=2), NODES)),
                ("/prioritize", names_args(make_pod(), list(scores))),
            ):
                reply = await client.post(path, data=json.dumps(args))
                assert reply.status == 200, await reply.text()
                body = await reply.json()
                if path == "/prioritize":
                    assert {h["score"] for h in body} == {5}
                else:
                    assert body["failedNodes"] == {} and len(body["nodes"]["items"]) == 4
            metrics = await (await client.get("/metrics")).text()
            assert "beamhub_scheduler_metrics_stale 1.0" in metrics
            failed = next(
                line for line in metrics.splitlines() if line.startswith("beamhub_scheduler_metrics_refreshes_failed ")
            )
            assert float(failed.split()[1]) >= 1
            assert (await (await client.get("/summary")).json())["stale"] is True
            assert (await client.get("/healthz")).status == 200
        finally:
            await client.close()
