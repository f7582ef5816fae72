"""Node load for the cluster tests and benchmarks: a real Prometheus scraping a real Pushgateway.

KWOK nodes have no node_exporter, so :class:`LoadPusher` pushes, per node, the series
node_exporter and dcgm-exporter would (CPU seconds that grow at the node's utilisation, memory,
network, filesystem, GPU utilisation) every quarter second, and Prometheus scrapes them; the
BeamHub extender reads them through Prometheus' query API exactly as in a cluster.

Needs Debian's ``prometheus`` and ``prometheus-pushgateway`` (the Makefile installs them).
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from controlplane import ControlPlaneError, free_port

GIB = 2**30


@dataclass
class NodeLoad:
    """What a node is doing: CPU utilisation and iowait (0-1), free memory in GiB, GPU utilisations (0-1)."""

    cpu: float = 0.05
    iowait: float = 0.0
    mem_free_gib: float = 100.0
    mem_total_gib: float = 128.0
    gpu_util: tuple[float, ...] = ()


def _exposition(load: NodeLoad, elapsed: float) -> str:
    lines = ["# TYPE node_cpu_seconds_total counter"]
    for cpu in range(2):
        lines.append(f'node_cpu_seconds_total{{cpu="{cpu}",mode="idle"}} {(1 - load.cpu) * elapsed:.6f}')
        lines.append(f'node_cpu_seconds_total{{cpu="{cpu}",mode="iowait"}} {load.iowait * elapsed:.6f}')
        lines.append(f'node_cpu_seconds_total{{cpu="{cpu}",mode="user"}} {(load.cpu - load.iowait) * elapsed:.6f}')
    lines += [
        "# TYPE node_memory_MemAvailable_bytes gauge",
        f"node_memory_MemAvailable_bytes {load.mem_free_gib * GIB:.0f}",
        "# TYPE node_memory_MemTotal_bytes gauge",
        f"node_memory_MemTotal_bytes {load.mem_total_gib * GIB:.0f}",
        "# TYPE node_network_receive_bytes_total counter",
        f'node_network_receive_bytes_total{{device="eth0"}} {1e6 * elapsed:.0f}',
        "# TYPE node_network_transmit_bytes_total counter",
        f'node_network_transmit_bytes_total{{device="eth0"}} {1e6 * elapsed:.0f}',
        "# TYPE node_filesystem_avail_bytes gauge",
        f'node_filesystem_avail_bytes{{mountpoint="/",fstype="ext4"}} {50 * GIB}',
        "# TYPE node_filesystem_size_bytes gauge",
        f'node_filesystem_size_bytes{{mountpoint="/",fstype="ext4"}} {100 * GIB}',
    ]
    return "\n".join(lines) + "\n"


def _gpu_exposition(node: str, utils: tuple[float, ...]) -> str:
    lines = ["# TYPE DCGM_FI_DEV_GPU_UTIL gauge"]
    lines += [f'DCGM_FI_DEV_GPU_UTIL{{gpu="{i}",Hostname="{node}"}} {u * 100:.0f}' for i, u in enumerate(utils)]
    lines.append("# TYPE DCGM_FI_DEV_FB_FREE gauge")
    lines += [f'DCGM_FI_DEV_FB_FREE{{gpu="{i}",Hostname="{node}"}} 40000' for i in range(len(utils))]
    return "\n".join(lines) + "\n"


def _put(url: str, body: str) -> None:
    req = urllib.request.Request(url, data=body.encode(), method="PUT")
    with urllib.request.urlopen(req, timeout=5):
        pass


class Monitoring:
    """A Pushgateway and a Prometheus scraping it every second, on free loopback ports."""

    def __init__(self, workdir: Path):
        self.workdir = Path(workdir)
        self.procs: list[subprocess.Popen] = []
        self.pushgateway_url = self.prometheus_url = ""

    def _binary(self, name: str) -> str:
        path = shutil.which(name)
        if path is None:
            raise ControlPlaneError(f"{name} is not installed: apt-get install prometheus prometheus-pushgateway")
        return path

    def _run(self, args: list[str], name: str) -> None:
        log = open(self.workdir / f"{name}.log", "ab")
        self.procs.append(subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        log.close()

    def _ready(self, url: str, what: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(url, timeout=1) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise ControlPlaneError(f"{what} did not become ready at {url}; see {self.workdir}")

    def start(self) -> Monitoring:
        self.workdir.mkdir(parents=True, exist_ok=True)
        push, prom = free_port(), free_port()
        self._run([self._binary("prometheus-pushgateway"), f"--web.listen-address=127.0.0.1:{push}"], "pushgateway")
        self.pushgateway_url = f"http://127.0.0.1:{push}"
        config = self.workdir / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            "scrape_configs:\n  - job_name: pushgateway\n    honor_labels: true\n"
            f"    static_configs:\n      - targets: ['127.0.0.1:{push}']\n"
        )
        self._run(
            [
                self._binary("prometheus"),
                f"--config.file={config}",
                f"--storage.tsdb.path={self.workdir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{prom}",
            ],
            "prometheus",
        )
        self.prometheus_url = f"http://127.0.0.1:{prom}"
        try:
            self._ready(self.pushgateway_url + "/-/ready", "pushgateway")
            self._ready(self.prometheus_url + "/-/ready", "prometheus")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
        self.procs.clear()


class LoadPusher:
    """Pushes each node's :class:`NodeLoad` to the Pushgateway every 0.25 s until stopped."""

    def __init__(self, pushgateway_url: str, loads: dict[str, NodeLoad]):
        self.url, self.loads = pushgateway_url, dict(loads)
        self.started = time.monotonic()
        self._stop = threading.Event()
        self.error: Exception | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def set(self, node: str, load: NodeLoad) -> None:
        self.loads[node] = load

    def push_once(self) -> None:
        elapsed = 1000.0 + time.monotonic() - self.started
        for node, load in list(self.loads.items()):
            _put(f"{self.url}/metrics/job/node/instance/{node}:9100", _exposition(load, elapsed))
            if load.gpu_util:
                _put(f"{self.url}/metrics/job/dcgm/instance/dcgm-{node}", _gpu_exposition(node, load.gpu_util))

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            try:
                self.push_once()
            except (OSError, urllib.error.URLError) as exc:
                self.error = exc

    def start(self) -> LoadPusher:
        self.push_once()
        self.thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(10)
