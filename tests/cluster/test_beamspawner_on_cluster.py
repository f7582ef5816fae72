"""BeamSpawner end to end on the real control plane, as KubeSpawner's own tests run: the hub is a
local process (with the dev SSO provider and configurable-http-proxy) holding the kubeconfig.

alice signs in and clicks a card; BeamSpawner creates her pod through the API; PodSecurity
``restricted`` admits it; the real kube-scheduler binds it through the ``beamhub-scheduler``
profile and our extender; KWOK marks it Running.  KWOK runs no container, so the test plays the
container: it starts a real ``jupyterhub-singleuser`` with the pod's own environment, as the
pod's uid/gids, at the address the hub connects to (KubeSpawner's ``pod_connect_ip``), and
JupyterLab is then served through the proxy.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import pytest
from kube_hub import PodContainer, env_of
from sso_client import login, wait_for_lab, xsrf_of


@pytest.fixture
def pod_home():
    """A home for the played container that alice's uid can reach (pytest's tmp_path is 0700 above)."""
    top = Path(tempfile.mkdtemp(prefix="beamhub-pod-"))
    top.chmod(0o755)
    yield top / "home"
    shutil.rmtree(top, ignore_errors=True)


def test_alice_clicks_a_card_and_gets_jupyterlab_from_a_scheduled_pod(kube_platform, pod_home):
    cluster, plane = kube_platform.cluster, kube_platform.cluster.plane
    session, page = login(kube_platform.url, "alice", "alice")
    assert page.status_code == 200 and 'data-environment="tomo"' in page.text
    container = PodContainer(plane, cluster.namespace, "jupyter-alice", kube_platform.singleuser_port, pod_home)
    try:
        clicked = session.post(
            f"{kube_platform.url}/hub/spawn", data={"_xsrf": xsrf_of(page), "environment": "tomo"}, timeout=60
        )
        assert clicked.status_code == 200, clicked.text[-1000:]
        pod = container.wait_running()
        spec = pod["spec"]
        # what the API server holds: admitted under restricted, as alice, through our scheduler
        assert spec["securityContext"]["runAsUser"] == 2001 and spec["securityContext"]["runAsGroup"] == 2001
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["supplementalGroups"] == [3001, 3002]
        assert spec["containers"][0]["securityContext"]["allowPrivilegeEscalation"] is False
        assert spec["schedulerName"] == "beamhub-scheduler" and spec["nodeName"].startswith("kwok-cpu-")
        assert spec["priorityClassName"] == "beamhub-burstable" and pod["status"]["qosClass"] == "Burstable"
        assert spec["automountServiceAccountToken"] is False
        assert not any(v["name"].startswith("kube-api-access") for v in spec.get("volumes", []))
        env = env_of(pod, plane)
        assert env["BEAMHUB_ENVIRONMENT"] == "tomo" and env["BEAMHUB_UID"] == "2001"
        assert pod["metadata"]["labels"]["beamhub.io/environment"] == "tomo"
        events = plane.kubectl(
            "get",
            "events",
            "-n",
            cluster.namespace,
            "--field-selector",
            "involvedObject.name=jupyter-alice",
            "-o",
            "json",
        )
        assert "beamhub-scheduler" in events and "Scheduled" in events
        container.start()
        lab = wait_for_lab(session, kube_platform.url, "alice", timeout=120)
        assert "jupyter-config-data" in lab.text
        # stopping the server deletes the pod
        assert kube_platform.api.delete("/users/alice/server").status_code in (202, 204)
        plane.wait_for(
            lambda: "NotFound" in plane.kubectl("get", "pod", "jupyter-alice", "-n", cluster.namespace, check=False),
            "alice's pod deleted",
            timeout=60,
        )
    finally:
        container.stop()
        kube_platform.api.delete("/users/alice/server")


def test_alices_gpu_card_goes_through_the_extender_to_a_gpu_node(kube_platform):
    cluster, plane = kube_platform.cluster, kube_platform.cluster.plane
    before = {verb: cluster.extender_calls(verb) for verb in ("/filter", "/prioritize")}
    session, page = login(kube_platform.url, "alice", "alice")
    try:
        clicked = session.post(
            f"{kube_platform.url}/hub/spawn", data={"_xsrf": xsrf_of(page), "environment": "phasing-gpu"}, timeout=60
        )
        assert clicked.status_code == 200, clicked.text[-1000:]
        pod = PodContainer(plane, cluster.namespace, "jupyter-alice", 0, Path("/nonexistent")).wait_running()
        assert pod["spec"]["nodeName"].startswith("kwok-gpu-"), pod["spec"]["nodeName"]
        assert pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
        assert pod["status"]["qosClass"] == "Guaranteed"
        for verb, count in before.items():  # the real kube-scheduler asked our extender about this pod
            assert cluster.extender_calls(verb) > count, verb
    finally:
        kube_platform.api.delete("/users/alice/server")
        plane.wait_for(
            lambda: "NotFound" in plane.kubectl("get", "pod", "jupyter-alice", "-n", cluster.namespace, check=False),
            "alice's pod deleted",
            timeout=90,
        )


def test_bob_cannot_start_spi_emc_and_no_pod_is_made(kube_platform):
    session, page = login(kube_platform.url, "bob", "bob")
    refused = session.post(
        f"{kube_platform.url}/hub/spawn", data={"_xsrf": xsrf_of(page), "environment": "spi-emc"}, timeout=60
    )
    assert refused.status_code == 403
    time.sleep(1)
    plane = kube_platform.cluster.plane
    assert "jupyter-bob" not in plane.kubectl("get", "pods", "-n", kube_platform.cluster.namespace, "-o", "name")
