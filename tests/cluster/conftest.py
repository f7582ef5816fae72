"""The real control plane of deploy/cluster, once per test session: KWOK nodes, the chart, the scheduler.

Everything asserted in tests/cluster is read back from the API server.  KWOK stands in for the
kubelet (no container runs): a test plays the container's part where one is needed (a real
jupyterhub-singleuser for a session pod; the exit-code annotation for a job's pod).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

CLUSTER_DIR = Path(__file__).resolve().parents[2] / "deploy" / "cluster"
sys.path.insert(0, str(CLUSTER_DIR))

from beamhub_cluster import BeamHubCluster  # noqa: E402
from controlplane import ControlPlane, binaries  # noqa: E402
from nodeload import LoadPusher, Monitoring, NodeLoad  # noqa: E402

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
        plane.stop()


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
    bh.install_output = bh.install_chart({"scheduler": {"extender": {
        "port": bh.extender_port, "prometheusUrl": monitoring.prometheus_url,
        "settings": {"refresh_interval": 1}}}})
    bh.start_scheduler()
    return bh
