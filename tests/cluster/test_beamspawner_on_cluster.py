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

import base64
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from sso_client import HubAPI, login, wait_for_lab, xsrf_of

from beamhub.hub.platform import DEMO_ACCOUNTS, Platform, PlatformConfig, free_port

SINGLEUSER = str(Path(sys.executable).with_name("jupyterhub-singleuser"))


class KubePlatform(Platform):
    """The embedded platform with BeamSpawner and the Kubernetes jobs backend instead of local processes."""

    def __init__(self, config, *, namespace: str, singleuser_port: int):
        super().__init__(config)
        self.namespace, self.singleuser_port = namespace, singleuser_port

    def _write_files(self):
        keys = super()._write_files()
        config = self.state / "jupyterhub_config.py"
        config.write_text(config.read_text() + f"""
# --- tests/cluster: BeamSpawner on the real API server (KUBECONFIG in the environment) ---
c.JupyterHub.spawner_class = "beamhub"
c.BeamSpawner.namespace = {self.namespace!r}
c.BeamSpawner.pod_connect_ip = "127.0.0.1"
c.BeamSpawner.port = {self.singleuser_port}
c.BeamSpawner.start_timeout = 120
c.BeamSpawner.http_timeout = 120
c.BeamSpawner.jobs_url = c.LocalBeamSpawner.jobs_url
for service in c.JupyterHub.services:
    if service["name"] == "beamhub-jobs":
        cmd = service["command"]
        cmd[cmd.index("--backend") + 1] = "kubernetes"
        service["command"] = cmd + ["--namespace", {self.namespace!r}]
""")
        return keys


@pytest.fixture(scope="module")
def kube_platform(cluster, tmp_path_factory):
    # not under pytest's 0700 basetemp: as root, sessions run as the users and must pass through
    state = Path(tempfile.mkdtemp(prefix="beamhub-kube-state-"))
    token = secrets.token_hex(16)
    config = PlatformConfig(state_dir=state, port=free_port(), sso_port=free_port(), proxy_api_port=free_port(),
                            hub_port=free_port(), jobs_port=free_port(),
                            accounts=[dict(a) for a in DEMO_ACCOUNTS], admin_service_token=token)
    live = KubePlatform(config, namespace=cluster.namespace, singleuser_port=free_port())
    old = os.environ.get("KUBECONFIG")
    os.environ["KUBECONFIG"] = str(cluster.plane.kubeconfig)
    try:
        live.start()
        live.api = HubAPI(config.public_url, token)
        live.url = config.public_url
        live.cluster = cluster
        yield live
        live.api.stop_all()
    finally:
        live.stop()
        shutil.rmtree(state, ignore_errors=True)
        if old is None:
            os.environ.pop("KUBECONFIG", None)
        else:
            os.environ["KUBECONFIG"] = old


def _env_of(pod: dict, plane) -> dict[str, str]:
    env = {}
    for item in pod["spec"]["containers"][0].get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
        elif "secretKeyRef" in item.get("valueFrom", {}):
            ref = item["valueFrom"]["secretKeyRef"]
            secret = plane.get("secret", ref["name"], "-n", pod["metadata"]["namespace"])
            env[item["name"]] = base64.b64decode(secret["data"][ref["key"]]).decode()
    return env


class PodContainer:
    """Plays the container of a Running KWOK pod: jupyterhub-singleuser with the pod's env, uid and gids."""

    def __init__(self, plane, namespace: str, pod_name: str, port: int, home: Path):
        self.plane, self.namespace, self.pod_name, self.port, self.home = plane, namespace, pod_name, port, home
        self.proc: subprocess.Popen | None = None
        self.pod: dict | None = None

    def wait_running(self, timeout: float = 90) -> dict:
        def running():
            out = self.plane.kubectl("get", "pod", self.pod_name, "-n", self.namespace, "-o", "json", check=False)
            if not out.startswith("{"):
                return None
            pod = json.loads(out)
            return pod if pod["status"].get("phase") == "Running" else None
        self.pod = self.plane.wait_for(running, f"pod {self.pod_name} Running", timeout=timeout)
        return self.pod

    def start(self) -> None:
        sc = self.pod["spec"]["securityContext"]
        self.home.mkdir(parents=True, exist_ok=True)
        os.chown(self.home, sc["runAsUser"], sc["runAsGroup"])
        env = {**_env_of(self.pod, self.plane), "HOME": str(self.home),
               "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "JUPYTER_RUNTIME_DIR": str(self.home / ".run")}
        identity = {}
        if os.geteuid() == 0:  # as the pod would run: its uid, gid and supplementary gids
            identity = {"user": sc["runAsUser"], "group": sc["runAsGroup"],
                        "extra_groups": sc.get("supplementalGroups", [])}
        self.proc = subprocess.Popen([SINGLEUSER, "--ip=127.0.0.1", f"--port={self.port}"], env=env,
                                     cwd=self.home, stdout=open(self.home.parent / "singleuser.log", "ab"),
                                     stderr=subprocess.STDOUT, start_new_session=True, **identity)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()


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
    container = PodContainer(plane, cluster.namespace, "jupyter-alice", kube_platform.singleuser_port,
                             pod_home)
    try:
        clicked = session.post(f"{kube_platform.url}/hub/spawn",
                               data={"_xsrf": xsrf_of(page), "environment": "tomo"}, timeout=60)
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
        env = _env_of(pod, plane)
        assert env["BEAMHUB_ENVIRONMENT"] == "tomo" and env["BEAMHUB_UID"] == "2001"
        assert pod["metadata"]["labels"]["beamhub.io/environment"] == "tomo"
        events = plane.kubectl("get", "events", "-n", cluster.namespace,
                               "--field-selector", "involvedObject.name=jupyter-alice", "-o", "json")
        assert "beamhub-scheduler" in events and "Scheduled" in events
        container.start()
        lab = wait_for_lab(session, kube_platform.url, "alice", timeout=120)
        assert "jupyter-config-data" in lab.text
        # stopping the server deletes the pod
        assert kube_platform.api.delete("/users/alice/server").status_code in (202, 204)
        plane.wait_for(lambda: "NotFound" in plane.kubectl("get", "pod", "jupyter-alice", "-n", cluster.namespace,
                                                           check=False), "alice's pod deleted", timeout=60)
    finally:
        container.stop()
        kube_platform.api.delete("/users/alice/server")


def test_bob_cannot_start_spi_emc_and_no_pod_is_made(kube_platform):
    session, page = login(kube_platform.url, "bob", "bob")
    refused = session.post(f"{kube_platform.url}/hub/spawn",
                           data={"_xsrf": xsrf_of(page), "environment": "spi-emc"}, timeout=60)
    assert refused.status_code == 403
    time.sleep(1)
    plane = kube_platform.cluster.plane
    assert "jupyter-bob" not in plane.kubectl("get", "pods", "-n", kube_platform.cluster.namespace, "-o", "name")
