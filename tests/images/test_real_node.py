"""alice's session pod on a real node: the kubelet built with the control plane, Debian's containerd
and runc, the ``base`` image made by `make images` — no KWOK, no played container.

alice signs in to a local hub running BeamSpawner against the control plane and clicks the
``scipy`` card; the pod passes PodSecurity ``restricted``, the ``beamhub-scheduler`` profile binds
it through our extender to the real node, containerd starts the image as uid 2001, the session's
``jupyterhub-singleuser`` checks in with the hub over the pod network, and JupyterLab is served
through the proxy.  Stopping the server deletes the pod and its container.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import pytest
from sso_client import HubAPI, login, wait_for_lab, xsrf_of

from beamhub.hub.platform import PlatformConfig

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "deploy" / "cluster"))
sys.path.insert(0, str(REPO / "tests" / "cluster"))

from beamhub_cluster import BeamHubCluster  # noqa: E402  (deploy/cluster is not a package)
from controlplane import ControlPlane, binaries  # noqa: E402 - after deploy/cluster is put on sys.path
from kube_hub import KubePlatform, kubeconfig_in_env  # noqa: E402 - after deploy/cluster is put on sys.path
from realnode import RealNode, preflight  # noqa: E402 - after deploy/cluster is put on sys.path

BASE_IMAGE = "ghcr.io/beamhub/base:0.1.0"


class RealNodePlatform(KubePlatform):
    """BeamSpawner as on a real cluster: the hub connects to the pod's own IP, pods reach the hub's API."""

    def __init__(self, config, *, namespace: str, node_ip: str):
        super().__init__(config, namespace=namespace, singleuser_port=8888)
        self.node_ip = node_ip

    def _write_files(self):
        keys = super()._write_files()
        config = self.state / "jupyterhub_config.py"
        config.write_text(
            config.read_text()
            + f"""
# --- tests/images/test_real_node.py: a real pod on the bridge network ---
c.BeamSpawner.pod_connect_ip = ""
c.JupyterHub.hub_bind_url = "http://0.0.0.0:{self.config.hub_port}"
c.JupyterHub.hub_connect_url = "http://{self.node_ip}:{self.config.hub_port}"
"""
        )
        return keys


@pytest.fixture(scope="module")
def real_node(engine):
    problem = preflight()
    if problem:
        pytest.fail(f"no real node on this machine: {problem}")
    top = Path(tempfile.mkdtemp(prefix="beamhub-realnode-"))
    plane = ControlPlane(top / "plane", binaries(build=True), log=lambda m: None)
    plane.start()
    node = None
    try:
        node = RealNode(plane).start()
        node.import_seconds = node.import_image(engine.docker, BASE_IMAGE)
        cluster = BeamHubCluster(plane)
        cluster.create_namespace()
        # the scheduler runs beside the control plane as local processes configured from the chart's
        # ConfigMap (as in tests/cluster); its in-cluster Deployment (whose images are not on this
        # node) waits for a system node pool this cluster does not have
        cluster.install_chart(
            {
                "scheduler": {
                    "nodeSelector": {"beamhub.io/node-pool": "system"},
                    "extender": {"port": cluster.extender_port},
                }
            }
        )
        cluster.start_scheduler()
        yield cluster, node
    finally:
        if node is not None:
            node.stop()
        plane.stop()
        shutil.rmtree(top, ignore_errors=True)


@pytest.fixture
def hub_on_real_node(real_node):
    cluster, node = real_node
    state = Path(tempfile.mkdtemp(prefix="beamhub-realnode-state-"))
    state.chmod(0o755)
    config = PlatformConfig.on_free_ports(state / "state")
    live = RealNodePlatform(config, namespace=cluster.namespace, node_ip=node.gateway)
    with kubeconfig_in_env(cluster.plane.kubeconfig):
        try:
            live.start()
            live.api = HubAPI(config.public_url, config.admin_service_token)
            live.url = config.public_url
            yield live
            live.api.stop_all()
        finally:
            live.stop()
            shutil.rmtree(state, ignore_errors=True)


def test_alices_session_pod_runs_the_base_image_on_a_real_kubelet(real_node, hub_on_real_node):
    cluster, node = real_node
    plane, hub = cluster.plane, hub_on_real_node
    assert plane.get("node", node.name)["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://")
    session, page = login(hub.url, "alice", "alice")
    try:
        clicked = session.post(
            f"{hub.url}/hub/spawn", data={"_xsrf": xsrf_of(page), "environment": "scipy"}, timeout=60
        )
        assert clicked.status_code == 200, clicked.text[-1000:]
        lab = wait_for_lab(session, hub.url, "alice", timeout=240)
        assert '"hubUser": "alice"' in lab.text

        pod = plane.get("pod", "jupyter-alice", "-n", cluster.namespace)
        assert pod["spec"]["nodeName"] == node.name and pod["spec"]["schedulerName"] == "beamhub-scheduler"
        status = pod["status"]["containerStatuses"][0]
        assert status["ready"] is True and status["image"].endswith(BASE_IMAGE.split("/", 1)[1])
        assert status["containerID"].startswith("containerd://")
        assert pod["status"]["podIP"].startswith(node.gateway.rsplit(".", 1)[0] + ".")
        # the container's processes really run as alice's SSO identity, not as the image's user
        ids = plane.kubectl("exec", "-n", cluster.namespace, "jupyter-alice", "--", "id")
        assert "uid=2001" in ids and "gid=2001" in ids and "3001" in ids, ids
        # the pod's postStart hook gave her the example notebooks and the docs they link to
        home = plane.kubectl(
            "exec", "-n", cluster.namespace, "jupyter-alice", "--", "ls", "/home/jovyan", "/home/jovyan/docs"
        )
        assert "tomography.ipynb" in home and "tomo.md" in home, home
        logs = plane.kubectl("logs", "-n", cluster.namespace, "jupyter-alice")
        assert "jupyterhub-singleuser" in logs.lower() or "Jupyter Server" in logs, logs[-2000:]

        assert hub.api.delete("/users/alice/server").status_code in (202, 204)
        plane.wait_for(
            lambda: "NotFound" in plane.kubectl("get", "pod", "jupyter-alice", "-n", cluster.namespace, check=False),
            "alice's pod deleted",
            timeout=90,
        )
        plane.wait_for(lambda: not node.running_tasks(), "alice's containers gone from containerd", timeout=60)
    finally:
        hub.api.delete("/users/alice/server")
