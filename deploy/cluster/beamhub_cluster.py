"""BeamHub on the real control plane: the chart installed with helm, the BeamHub scheduler running.

KWOK nodes run no containers, so the scheduler the chart deploys as a Deployment is run here as
local processes configured from the very objects helm created: the KubeSchedulerConfiguration
and the extender settings are read back from the chart's ConfigMap in the API server, the
extender (``beamhub scheduler``) listens on the port the configuration names, and a second
kube-scheduler serves the ``beamhub-scheduler`` profile with it.  The extender watches Nodes
through ``kubectl proxy`` (the chart's ``nodeCacheCapable: true`` default).

    make cluster            # python deploy/cluster/beamhub_cluster.py: start it all, wait for Ctrl-C

The Zero to JupyterHub dependency cannot be fetched without a chart repository, so the chart is
installed from a copy whose Chart.yaml leaves it out (deploy/README.md: how operators get both).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import yaml

from beamhub.hub.pods import ClusterSettings, container_resources, environment_overrides

sys.path.insert(0, str(Path(__file__).resolve().parent))
from controlplane import ControlPlane, ControlPlaneError, free_port  # noqa: E402 - after deploy/cluster is put on sys.path

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "helm" / "beamhub"
NAMESPACE = "beamhub"
RELEASE = "bh"
PSA_LABELS = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
    "pod-security.kubernetes.io/warn": "restricted",
}


def chart_without_dependencies(dest: Path) -> Path:
    """A copy of the chart whose Chart.yaml drops the jupyterhub dependency (not fetchable here)."""
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(CHART, dest, symlinks=False)
    meta = yaml.safe_load((dest / "Chart.yaml").read_text())
    meta.pop("dependencies", None)
    (dest / "Chart.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    (dest / "Chart.lock").unlink(missing_ok=True)
    return dest


class BeamHubCluster:
    """The control plane plus BeamHub's own objects and scheduler processes."""

    def __init__(
        self, plane: ControlPlane, *, namespace: str = NAMESPACE, release: str = RELEASE, python: str = sys.executable
    ):
        self.plane = plane
        self.namespace, self.release, self.python = namespace, release, python
        self.extender_port = free_port()
        self.prometheus_url = ""

    # ---- namespace and chart ----
    def create_namespace(self) -> None:
        """The users' namespace, enforcing PodSecurity ``restricted``."""
        self.plane.apply(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": self.namespace, "labels": PSA_LABELS}}
        )

    def helm(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [self.plane.tool("helm"), f"--kubeconfig={self.plane.kubeconfig}", *args],
            capture_output=True,
            text=True,
            env={
                **os.environ,
                "HELM_CACHE_HOME": str(self.plane.workdir / "helm-cache"),
                "HELM_CONFIG_HOME": str(self.plane.workdir / "helm-config"),
                "HELM_DATA_HOME": str(self.plane.workdir / "helm-data"),
            },
        )
        if check and proc.returncode != 0:
            raise ControlPlaneError(f"helm {' '.join(args[:2])}: {proc.stderr.strip()}")
        return proc

    def values(self, extra: dict | None = None) -> dict:
        """Chart values for this cluster: the extender on a free port, Prometheus when given."""
        values = {"scheduler": {"extender": {"port": self.extender_port, "prometheusUrl": self.prometheus_url}}}
        for key, value in (extra or {}).items():
            if isinstance(value, dict) and isinstance(values.get(key), dict):
                values[key] = {**values[key], **value}
            else:
                values[key] = value
        return values

    def install_chart(self, values: dict | None = None, action: str = "install") -> str:
        """``helm install`` (or ``upgrade``) the chart into the namespace; returns helm's output."""
        chart = chart_without_dependencies(self.plane.workdir / "chart")
        values_file = self.plane.workdir / "values.json"
        values_file.write_text(json.dumps(self.values(values)))
        proc = self.helm(
            action, self.release, str(chart), f"--namespace={self.namespace}", f"--values={values_file}", "--wait=false"
        )
        return proc.stdout

    # ---- the scheduler ----
    def scheduler_config(self) -> tuple[dict, dict]:
        """(KubeSchedulerConfiguration, extender settings) as the chart's ConfigMap holds them."""
        maps = self.plane.get("configmap", "-n", self.namespace, "-l", "app.kubernetes.io/component=scheduler")["items"]
        data = next(m["data"] for m in maps if "config.yaml" in m.get("data", {}))
        return yaml.safe_load(data["config.yaml"]), yaml.safe_load(data["extender.yaml"])

    def start_scheduler(self) -> None:
        """The extender and the ``beamhub-scheduler`` kube-scheduler, configured from the chart's objects."""
        config, extender = self.scheduler_config()
        proxy_port = free_port()
        self.plane.start_process(
            "kubectl-proxy",
            [
                self.plane.tool("kubectl"),
                f"--kubeconfig={self.plane.kubeconfig}",
                "proxy",
                "--address=127.0.0.1",
                f"--port={proxy_port}",
                "--accept-hosts=^127\\.0\\.0\\.1$",
            ],
        )
        # in the pod the extender listens on 0.0.0.0 and reads Nodes in-cluster; here loopback and the proxy
        extender.update(host="127.0.0.1")
        if extender.get("kube_api") == "in-cluster":
            extender["kube_api"] = f"http://127.0.0.1:{proxy_port}"
        self.extender_file = self.plane.workdir / "extender.yaml"
        self.extender_file.write_text(yaml.safe_dump(extender))
        self.extender_port = int(extender["port"])
        self.plane.wait_for(lambda: _answers(f"http://127.0.0.1:{proxy_port}/version"), "kubectl proxy", 30)
        self.start_extender()
        self.start_kube_scheduler(config)

    def start_kube_scheduler(self, config: dict | None = None) -> None:
        """(Re)start the ``beamhub-scheduler`` kube-scheduler with the chart's configuration.

        A profile that enables the BeamHubLoad plugin (``scheduler.extender.via: plugin``) runs
        ``beamhub-kube-scheduler``, kube-scheduler built with it; otherwise the upstream binary.
        """
        if config is None:
            config, _ = self.scheduler_config()
        self.plane.stop_process("beamhub-scheduler")
        config["clientConnection"] = {"kubeconfig": str(self.plane.kubeconfig), "qps": 500, "burst": 1000}
        config_file = self.plane.workdir / "beamhub-scheduler.yaml"
        config_file.write_text(yaml.safe_dump(config))
        binary = "beamhub-kube-scheduler" if uses_plugin(config) else "kube-scheduler"
        self.plane.start_process("beamhub-scheduler", self.plane.scheduler_args(config_file, binary=binary))

    def start_extender(self) -> None:
        """(Re)start ``beamhub scheduler`` with the chart's settings and wait for /healthz."""
        self.plane.stop_process("extender")
        self.plane.start_process(
            "extender", [self.python, "-m", "beamhub", "scheduler", "--config", str(self.extender_file)]
        )
        self.plane.wait_for(lambda: _answers(f"{self.extender_url}/healthz"), "the BeamHub extender", 60)

    def stop_extender(self) -> None:
        self.plane.stop_process("extender")

    def summary(self) -> dict:
        """The extender's public load summary (/summary)."""
        with urllib.request.urlopen(f"{self.extender_url}/summary", timeout=5) as resp:
            return json.load(resp)

    @property
    def extender_url(self) -> str:
        return f"http://127.0.0.1:{self.extender_port}"

    def extender_metrics(self) -> str:
        with urllib.request.urlopen(f"{self.extender_url}/metrics", timeout=5) as resp:
            return resp.read().decode()

    def extender_calls(self, endpoint: str, code: str = "200") -> float:
        """How many ``endpoint`` requests (/filter, /prioritize) the extender answered with ``code``."""
        found = re.search(
            rf'beamhub_scheduler_requests_total{{code="{code}",endpoint="{endpoint}"}} ([0-9.e+]+)',
            self.extender_metrics(),
        )
        return float(found.group(1)) if found else 0.0


def session_pod(
    name: str,
    env,
    identity,
    namespace: str = NAMESPACE,
    scheduler: str | None = "beamhub-scheduler",
    labels: dict | None = None,
) -> dict:
    """A session pod as BeamSpawner builds it (hub/pods.py), for tests and benchmarks that create pods directly."""
    o = environment_overrides(env, identity, ClusterSettings(scheduler_name=scheduler, examples_dir=""))
    spec = {
        "securityContext": o["pod_security_context"],
        "automountServiceAccountToken": False,
        "priorityClassName": o["priority_class_name"],
        "containers": [
            {
                "name": "notebook",
                "image": o["image"],
                "resources": container_resources(o),
                "securityContext": o["container_security_context"],
                "env": [{"name": k, "value": v} for k, v in sorted(o["environment"].items())],
            }
        ],
    }
    if scheduler:
        spec["schedulerName"] = scheduler
    if o["node_selector"]:
        spec["nodeSelector"] = o["node_selector"]
    if o["tolerations"]:
        spec["tolerations"] = o["tolerations"]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": {**o["extra_labels"], **(labels or {})}},
        "spec": spec,
    }


def uses_plugin(config: dict) -> bool:
    """Whether a KubeSchedulerConfiguration enables the BeamHubLoad plugin in any profile."""
    for profile in config.get("profiles") or []:
        enabled = ((profile.get("plugins") or {}).get("multiPoint") or {}).get("enabled") or []
        if any(p.get("name") == "BeamHubLoad" for p in enabled):
            return True
    return False


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--workdir",
        default=str(REPO / "state" / "cluster"),
        help="certificates, etcd data, logs and the kubeconfig (wiped at start)",
    )
    p.add_argument("--cpu-nodes", type=int, default=4)
    p.add_argument("--gpu-nodes", type=int, default=2)
    args = p.parse_args(argv)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    plane = ControlPlane(args.workdir)
    try:
        plane.start()
        nodes = plane.add_nodes(args.cpu_nodes, args.gpu_nodes)
        cluster = BeamHubCluster(plane)
        cluster.create_namespace()
        cluster.install_chart()
        cluster.start_scheduler()
        print(
            f"BeamHub cluster: Kubernetes {plane.version()} at {plane.server} "
            f"(started in {plane.start_seconds:.1f} s), {len(nodes)} KWOK nodes, chart '{cluster.release}' "
            f"in namespace '{cluster.namespace}', BeamHub scheduler extender at {cluster.extender_url}\n"
            f"kubeconfig: {plane.kubeconfig}\n"
            f"try: {plane.tool('kubectl')} --kubeconfig={plane.kubeconfig} get nodes,pods -A\n"
            "Ctrl-C stops everything.",
            flush=True,
        )
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
        print("stopping the cluster ...", flush=True)
    except ControlPlaneError as exc:
        print(f"make cluster: {exc}", file=sys.stderr)
        return 1
    finally:
        plane.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
