"""The real control plane of deploy/cluster, once per test session: KWOK nodes, the chart, the scheduler.

Everything asserted in tests/cluster is read back from the API server.  KWOK stands in for the
kubelet (no container runs): a test plays the container's part where one is needed (a real
jupyterhub-singleuser for a session pod; the exit-code annotation for a job's pod).
"""

from __future__ import annotations

import shutil
import socket
import sys
import tempfile
from pathlib import Path

import pytest
from sso_client import HubAPI

from beamhub.hub.platform import PlatformConfig, free_port

CLUSTER_DIR = Path(__file__).resolve().parents[2] / "deploy" / "cluster"
sys.path.insert(0, str(CLUSTER_DIR))

from beamhub_cluster import BeamHubCluster  # noqa: E402 - after deploy/cluster is put on sys.path
from controlplane import ControlPlane, binaries  # noqa: E402 - after deploy/cluster is put on sys.path
from kube_hub import KubePlatform, kubeconfig_in_env  # noqa: E402 - after deploy/cluster is put on sys.path
from nodeload import LoadPusher, Monitoring, NodeLoad  # noqa: E402 - after deploy/cluster is put on sys.path

CPU_NODES, GPU_NODES, GPUS_PER_NODE = 4, 2, 4


def pytest_collection_modifyitems(items):
    for item in items:
        if Path(str(item.fspath)).parent == Path(__file__).parent:
            item.add_marker(pytest.mark.cluster)


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory):
    plane = ControlPlane(tmp_path_factory.mktemp("cluster") / "plane", binaries(build=True), log=lambda m: None)
    plane.start()
    try:
        plane.nodes = plane.add_nodes(CPU_NODES, GPU_NODES, GPUS_PER_NODE)
        yield plane
    finally:
        started = dict(plane.procs)
        ports = dict(plane.ports)
        plane.stop()
        # the suite leaves nothing behind: every process it started has exited, no port is bound
        left = [name for name, proc in started.items() if proc.poll() is None]
        assert not left, f"control-plane processes still running after stop: {left}"
        bound = [name for name, port in ports.items() if _listening(port)]
        assert not bound, f"ports still bound after stop: {bound}"


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="session")
def monitoring(tmp_path_factory):
    mon = Monitoring(tmp_path_factory.mktemp("monitoring")).start()
    yield mon
    mon.stop()


@pytest.fixture(scope="session")
def load(monitoring, control_plane):
    """Every node quiet (5% CPU); tests raise one node's load with ``load.set`` and restore it."""
    pusher = LoadPusher(monitoring.pushgateway_url, {n: NodeLoad() for n in control_plane.nodes}).start()
    yield pusher
    pusher.stop()


@pytest.fixture(scope="session")
def cluster(control_plane, monitoring, load):
    """The chart installed with helm into the restricted namespace, and the BeamHub scheduler running."""
    bh = BeamHubCluster(control_plane)
    bh.prometheus_url = monitoring.prometheus_url
    bh.create_namespace()
    bh.install_output = bh.install_chart(
        {
            "scheduler": {
                "extender": {
                    "port": bh.extender_port,
                    "prometheusUrl": monitoring.prometheus_url,
                    "settings": {"refresh_interval": 1},
                }
            }
        }
    )
    bh.start_scheduler()
    return bh


@pytest.fixture(scope="session")
def kube_platform(cluster, tmp_path_factory):
    # not under pytest's 0700 basetemp: as root, sessions run as the users and must pass through
    state = Path(tempfile.mkdtemp(prefix="beamhub-kube-state-"))
    config = PlatformConfig.on_free_ports(state)
    live = KubePlatform(config, namespace=cluster.namespace, singleuser_port=free_port())
    with kubeconfig_in_env(cluster.plane.kubeconfig):
        try:
            live.start()
            live.api = HubAPI(config.public_url, config.admin_service_token)
            live.url = config.public_url
            live.cluster = cluster
            yield live
            live.api.stop_all()
        finally:
            live.stop()
            shutil.rmtree(state, ignore_errors=True)
