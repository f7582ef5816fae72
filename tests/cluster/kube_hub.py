"""A local JupyterHub with BeamSpawner on the test cluster, and a stand-in for a pod's container.

KWOK runs no container, so :class:`PodContainer` plays one: a real ``jupyterhub-singleuser``
started with the pod's own environment, as the pod's uid and gids, at the address the hub
connects to (KubeSpawner's ``pod_connect_ip``).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

from beamhub.hub.platform import Platform

SINGLEUSER = str(Path(sys.executable).with_name("jupyterhub-singleuser"))


@contextlib.contextmanager
def kubeconfig_in_env(path: Path):
    """``KUBECONFIG`` pointing at ``path`` inside the block (the hub's KubeSpawner reads it), as before after."""
    old = os.environ.get("KUBECONFIG")
    os.environ["KUBECONFIG"] = str(path)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("KUBECONFIG", None)
        else:
            os.environ["KUBECONFIG"] = old


class KubePlatform(Platform):
    """The embedded platform with BeamSpawner and the Kubernetes jobs backend instead of local processes."""

    def __init__(self, config, *, namespace: str, singleuser_port: int):
        super().__init__(config)
        self.namespace, self.singleuser_port = namespace, singleuser_port

    def _write_files(self):
        keys = super()._write_files()
        config = self.state / "jupyterhub_config.py"
        config.write_text(
            config.read_text()
            + f"""
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
        # the hub hands its services a clean environment: name the cluster's kubeconfig
        service["environment"] = {{"KUBECONFIG": {os.environ.get("KUBECONFIG", "")!r}}}
"""
        )
        return keys


def env_of(pod: dict, plane) -> dict[str, str]:
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
        env = {
            **env_of(self.pod, self.plane),
            "HOME": str(self.home),
            "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
            "JUPYTER_RUNTIME_DIR": str(self.home / ".run"),
        }
        identity = {}
        if os.geteuid() == 0:  # as the pod would run: its uid, gid and supplementary gids
            identity = {
                "user": sc["runAsUser"],
                "group": sc["runAsGroup"],
                "extra_groups": sc.get("supplementalGroups", []),
            }
        self.proc = subprocess.Popen(
            [SINGLEUSER, "--ip=127.0.0.1", f"--port={self.port}"],
            env=env,
            cwd=self.home,
            stdout=open(self.home.parent / "singleuser.log", "ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **identity,
        )

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
