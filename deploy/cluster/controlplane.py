"""A real Kubernetes control plane on loopback: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and KWOK nodes, as local processes, for BeamHub's cluster tests and `make cluster`.

Everything is the real thing built by ``build.sh`` from the pinned Go modules; the many nodes
are KWOK's (no container runs on a KWOK node: it marks pods Running and, for pods a Job owns,
Succeeded or Failed when the annotation ``kwok.beamhub.io/exit-code`` says so).  One real node —
a kubelet with containerd and runc — can join it (:mod:`realnode`).

The API server has its own CA, serves TLS on 127.0.0.1, authorizes with Node and RBAC, signs
service-account tokens and admits pods through PodSecurity; the admin kubeconfig it writes
(``<workdir>/kubeconfig``) holds a client certificate in ``system:masters``.

    python deploy/cluster/controlplane.py --workdir state/cluster        # start, print, wait for Ctrl-C

Only the standard library is used, so the script runs before BeamHub is installed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
BUILD_SCRIPT = HERE / "build.sh"
STAGES_FILE = HERE / "kwok-stages.yaml"
SERVICE_CIDR = "10.96.0.0/16"
POD_CIDR = "10.244.0.0/16"
# labels KWOK-managed nodes carry; BeamSpawner's GPU pods select on nvidia.com/gpu.present
GPU_LABEL = "nvidia.com/gpu.present"
KWOK_ANNOTATION = "kwok.x-k8s.io/node"


class ControlPlaneError(RuntimeError):
    """A component could not be built or did not come up; the message names it and its log."""


def free_port() -> int:
    """An unused TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def binaries(build: bool = True) -> Path:
    """The folder holding the control-plane binaries, building them first when ``build`` is true."""
    args = [str(BUILD_SCRIPT)] + ([] if build else ["--print"])
    proc = subprocess.run(args, stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        what = "build failed (see the lines above)" if build else "is not built yet: run deploy/cluster/build.sh"
        raise ControlPlaneError(f"the Kubernetes control plane {what}")
    return Path(proc.stdout.strip())


def _openssl(*args: str, cwd: Path) -> None:
    proc = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ControlPlaneError(f"openssl {args[0]} failed: {proc.stderr.strip()}")


def make_pki(pki: Path) -> None:
    """A CA, the API server's serving certificate, an admin client certificate and the SA key pair."""
    pki.mkdir(parents=True, exist_ok=True)
    os.chmod(pki, 0o700)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl(
        "req",
        "-x509",
        *ec,
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "3650",
        "-subj",
        "/CN=beamhub-cluster-ca",
        cwd=pki,
    )
    (pki / "server.ext").write_text(
        "subjectAltName=DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,"
        "DNS:kubernetes.default.svc,IP:127.0.0.1,IP:10.96.0.1\n"
        "extendedKeyUsage=serverAuth\n"
    )
    (pki / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for name, subject, ext in (
        ("apiserver", "/CN=kube-apiserver", "server.ext"),
        ("admin", "/O=system:masters/CN=beamhub-admin", "client.ext"),
    ):
        _openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject, cwd=pki)
        _openssl(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            f"{name}.crt",
            "-days",
            "3650",
            "-extfile",
            ext,
            cwd=pki,
        )
    _openssl("genrsa", "-out", "sa.key", "2048", cwd=pki)
    _openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=pki)


def kubeconfig_text(server: str, pki: Path) -> str:
    """An admin kubeconfig (JSON, which is YAML) pointing at ``server`` with the admin certificate."""
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "beamhub",
            "clusters": [
                {"name": "beamhub", "cluster": {"server": server, "certificate-authority": str(pki / "ca.crt")}}
            ],
            "users": [
                {
                    "name": "admin",
                    "user": {"client-certificate": str(pki / "admin.crt"), "client-key": str(pki / "admin.key")},
                }
            ],
            "contexts": [{"name": "beamhub", "context": {"cluster": "beamhub", "user": "admin"}}],
        },
        indent=2,
    )


def node_manifest(
    name: str, *, cpu: str = "32", memory: str = "128Gi", gpus: int = 0, labels: dict | None = None
) -> dict:
    """A KWOK node with the given capacity; GPU nodes get ``nvidia.com/gpu``, the GPU label and a taint."""
    capacity = {"cpu": cpu, "memory": memory, "pods": "110"}
    node_labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "type": "kwok",
        "beamhub.io/node-kind": "gpu" if gpus else "cpu",
        **(labels or {}),
    }
    spec: dict = {}
    if gpus:
        capacity["nvidia.com/gpu"] = str(gpus)
        node_labels[GPU_LABEL] = "true"
        # as GPU node pools are usually run: CPU-only pods stay off; GPU pods carry the toleration
        spec["taints"] = [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": node_labels, "annotations": {KWOK_ANNOTATION: "fake"}},
        "spec": spec,
        "status": {"capacity": capacity, "allocatable": capacity},
    }


class ControlPlane:
    """Start, use and stop the control plane in ``workdir`` (a fresh folder each start)."""

    def __init__(self, workdir: str | Path, bin_dir: Path | None = None, *, log=None):
        self.workdir = Path(workdir).resolve()
        self.bin = bin_dir
        self.log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self.procs: dict[str, subprocess.Popen] = {}
        self.ports: dict[str, int] = {}
        self._logs: list = []

    # ---- paths ----
    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

    @property
    def pki(self) -> Path:
        return self.workdir / "pki"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.ports['apiserver']}"

    def tool(self, name: str) -> str:
        return str(self.bin / name)

    # ---- lifecycle ----
    def start(self) -> ControlPlane:
        """Bring every component up and wait until the API server is ready; stop all on failure."""
        if self.bin is None:
            self.bin = binaries(build=True)
        if self.workdir.exists():
            shutil.rmtree(self.workdir)
        (self.workdir / "logs").mkdir(parents=True)
        os.chmod(self.workdir, 0o700)
        t0 = time.monotonic()
        try:
            make_pki(self.pki)
            self.ports = {name: free_port() for name in ("etcd", "etcd-peer", "apiserver")}
            self.kubeconfig.write_text(kubeconfig_text(self.server, self.pki))
            self.kubeconfig.chmod(0o600)
            self._start_etcd()
            self._start_apiserver()
            self._start_controller_manager()
            self._start_scheduler()
            self._start_kwok()
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - t0
        return self

    def log_tail(self, name: str, lines: int = 20) -> str:
        path = self.workdir / "logs" / f"{name}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def _check_alive(self, name: str) -> None:
        proc = self.procs.get(name)
        if proc is not None and proc.poll() is not None:
            raise ControlPlaneError(
                f"{name} exited with status {proc.returncode} while starting; "
                f"{self.workdir / 'logs' / (name + '.log')}:\n{self.log_tail(name)}"
            )

    def _wait_url(self, name: str, url: str, timeout: float = 60.0, context=None) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            self._check_alive(name)
            try:
                with urllib.request.urlopen(url, timeout=2, context=context) as resp:
                    if resp.status == 200:
                        return
            except urllib.error.HTTPError as exc:
                last = f"HTTP {exc.code}"
            except OSError as exc:
                last = str(exc)
            time.sleep(0.2)
        raise ControlPlaneError(
            f"{name} did not become ready at {url} within {timeout:.0f} s ({last}); "
            f"{self.workdir / 'logs' / (name + '.log')}:\n{self.log_tail(name)}"
        )

    def ssl_context(self) -> ssl.SSLContext:
        """TLS to the API server: its CA, the admin client certificate."""
        ctx = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        ctx.load_cert_chain(str(self.pki / "admin.crt"), str(self.pki / "admin.key"))
        return ctx

    def _start_etcd(self) -> None:
        client, peer = self.ports["etcd"], self.ports["etcd-peer"]
        self.start_process(
            "etcd",
            [
                self.tool("etcd"),
                "--name=beamhub",
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{client}",
                f"--advertise-client-urls=http://127.0.0.1:{client}",
                f"--listen-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-cluster=beamhub=http://127.0.0.1:{peer}",
                # a throw-away test store: no fsync (far faster on a shared disk), compact often
                "--unsafe-no-fsync",
                "--auto-compaction-retention=1",
                "--quota-backend-bytes=2147483648",
                "--log-level=warn",
            ],
        )
        self._wait_url("etcd", f"http://127.0.0.1:{client}/health", timeout=30)

    def _start_apiserver(self) -> None:
        pki = self.pki
        self.start_process(
            "apiserver",
            [
                self.tool("kube-apiserver"),
                f"--etcd-servers=http://127.0.0.1:{self.ports['etcd']}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.ports['apiserver']}",
                # no node serves the `kubernetes` Service on loopback; leave its endpoints alone
                "--endpoint-reconciler-type=none",
                f"--tls-cert-file={pki / 'apiserver.crt'}",
                f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--client-ca-file={pki / 'ca.crt'}",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                "--api-audiences=https://kubernetes.default.svc.cluster.local",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                # Node first: a real kubelet (realnode.py) reads only its own pods' objects
                "--authorization-mode=Node,RBAC",
                # the API server's own client certificate towards kubelets (logs, exec)
                f"--kubelet-client-certificate={pki / 'admin.crt'}",
                f"--kubelet-client-key={pki / 'admin.key'}",
                "--kubelet-preferred-address-types=InternalIP,Hostname",  # no DNS knows a test node's name
                # the defaults (PodSecurity, Priority, ServiceAccount, LimitRanger, ...) and the
                # resource-quota and node-restriction plugins a production cluster has
                "--enable-admission-plugins=NodeRestriction,ResourceQuota",
                "--allow-privileged=false",
                "--profiling=false",
                "--v=1",
            ],
        )
        self._wait_url("apiserver", f"{self.server}/readyz", timeout=90, context=self.ssl_context())
        self.log(f"control plane: kube-apiserver {self.version()} ready at {self.server}")

    def _start_controller_manager(self) -> None:
        self.start_process(
            "controller-manager",
            [
                self.tool("kube-controller-manager"),
                f"--kubeconfig={self.kubeconfig}",
                f"--authentication-kubeconfig={self.kubeconfig}",
                f"--authorization-kubeconfig={self.kubeconfig}",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
                f"--service-account-private-key-file={self.pki / 'sa.key'}",
                f"--root-ca-file={self.pki / 'ca.crt'}",
                "--use-service-account-credentials=true",
                "--leader-elect=false",
                f"--cluster-cidr={POD_CIDR}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--controllers=*,-nodeipam,-cloud-node-lifecycle,-service-lb-controller,-route",
                "--kube-api-qps=500",
                "--kube-api-burst=1000",
                "--v=1",
            ],
        )

    def scheduler_args(
        self, config: Path | None = None, port: int | None = None, binary: str = "kube-scheduler"
    ) -> list[str]:
        """Arguments of a kube-scheduler talking to this API server (``config``: a KubeSchedulerConfiguration).

        ``binary``: ``kube-scheduler``, or ``beamhub-kube-scheduler`` (the same with BeamHubLoad).
        """
        args = [
            self.tool(binary),
            "--bind-address=127.0.0.1",
            f"--secure-port={port or free_port()}",
            f"--authentication-kubeconfig={self.kubeconfig}",
            f"--authorization-kubeconfig={self.kubeconfig}",
            "--authentication-skip-lookup=true",
            "--v=1",
        ]
        if config is not None:
            args.append(f"--config={config}")
        else:
            args += [
                f"--kubeconfig={self.kubeconfig}",
                "--leader-elect=false",
                "--kube-api-qps=500",
                "--kube-api-burst=1000",
            ]
        return args

    def _start_scheduler(self) -> None:
        self.start_process("scheduler", self.scheduler_args())

    def _start_kwok(self) -> None:
        self.start_process(
            "kwok",
            [
                self.tool("kwok"),
                f"--kubeconfig={self.kubeconfig}",
                f"--config={STAGES_FILE}",
                f"--manage-nodes-with-annotation-selector={KWOK_ANNOTATION}=fake",
                f"--cidr={POD_CIDR.replace('0.0/16', '0.1/16')}",
                "--node-ip=10.240.0.1",
                f"--server-address=127.0.0.1:{free_port()}",
            ],
        )

    def start_process(self, name: str, args: list[str], env: dict | None = None) -> subprocess.Popen:
        """Run another process beside the control plane (stopped with it); logs in logs/<name>.log."""
        log = open(self.workdir / "logs" / f"{name}.log", "ab")
        self._logs.append(log)
        proc = subprocess.Popen(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self.workdir,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
        self.procs[name] = proc
        return proc

    def stop_process(self, name: str, timeout: float = 10.0) -> None:
        proc = self.procs.pop(name, None)
        if proc is None:
            return
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)

    def stop(self) -> None:
        """Stop every process started here, newest first, and close their logs."""
        for name in reversed(list(self.procs)):
            self.stop_process(name)
        for log in self._logs:
            log.close()
        self._logs.clear()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ---- using it ----
    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> str:
        """Run kubectl against this API server; stdout (raises with stderr when ``check`` fails)."""
        proc = subprocess.run(
            [self.tool("kubectl"), f"--kubeconfig={self.kubeconfig}", *args],
            input=input,
            capture_output=True,
            text=True,
        )
        if check and proc.returncode != 0:
            raise ControlPlaneError(f"kubectl {' '.join(args)}: {proc.stderr.strip()}")
        return proc.stdout if proc.returncode == 0 else proc.stdout + proc.stderr

    def apply(self, objects: list[dict] | dict) -> None:
        items = objects if isinstance(objects, list) else [objects]
        self.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))

    def get(self, *args: str) -> dict:
        return json.loads(self.kubectl("get", *args, "-o", "json"))

    def version(self) -> str:
        req = urllib.request.Request(f"{self.server}/version")
        with urllib.request.urlopen(req, timeout=5, context=self.ssl_context()) as resp:
            return json.load(resp)["gitVersion"]

    def add_nodes(
        self,
        cpu_nodes: int = 3,
        gpu_nodes: int = 2,
        gpus_per_node: int = 4,
        prefix: str = "kwok",
        cpu: str = "32",
        memory: str = "128Gi",
    ) -> list[str]:
        """Create KWOK nodes and wait until every one is Ready; returns their names.

        CPU nodes have ``cpu`` cores and ``memory``; GPU nodes 32 cores, 128 GiB and ``gpus_per_node``.
        """
        nodes = [node_manifest(f"{prefix}-cpu-{i}", cpu=cpu, memory=memory) for i in range(cpu_nodes)]
        nodes += [node_manifest(f"{prefix}-gpu-{i}", gpus=gpus_per_node) for i in range(gpu_nodes)]
        self.apply(nodes)
        names = [n["metadata"]["name"] for n in nodes]
        self.wait_for(lambda: all(self._node_ready(n) for n in names), "KWOK nodes Ready", timeout=60)
        return names

    def _node_ready(self, name: str) -> bool:
        node = self.get("node", name)
        return any(c["type"] == "Ready" and c["status"] == "True" for c in node.get("status", {}).get("conditions", []))

    def wait_for(self, predicate, what: str, timeout: float = 60.0, interval: float = 0.3):
        """Poll ``predicate`` until it returns something true; its value, or ControlPlaneError naming ``what``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name in ("etcd", "apiserver"):
                self._check_alive(name)
            value = predicate()
            if value:
                return value
            time.sleep(interval)
        raise ControlPlaneError(f"timed out after {timeout:.0f} s waiting for {what}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--workdir",
        default=str(Path(tempfile.gettempdir()) / "beamhub-cluster"),
        help="folder for certificates, etcd data, logs and the kubeconfig (wiped at start)",
    )
    p.add_argument("--cpu-nodes", type=int, default=3)
    p.add_argument("--gpu-nodes", type=int, default=2)
    args = p.parse_args(argv)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})  # sigwait below takes them
    plane = ControlPlane(args.workdir)
    try:
        plane.start()
        plane.add_nodes(args.cpu_nodes, args.gpu_nodes)
        print(f"Kubernetes {plane.version()} at {plane.server}; kubeconfig: {plane.kubeconfig}", flush=True)
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    except ControlPlaneError as exc:
        print(f"control plane: {exc}", file=sys.stderr)
        return 1
    finally:
        plane.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
