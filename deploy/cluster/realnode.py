"""One real node for the test control plane: a kubelet (built with the control plane) on Debian's
containerd and runc, so a session pod runs its image for real instead of being marked Running by KWOK.

What it sets up, all under ``<control plane workdir>/realnode`` and torn down by :meth:`RealNode.stop`:

- a node identity: a client certificate ``system:node:<name>`` in ``system:nodes`` signed by the
  cluster's CA (the API server authorizes it with the Node authorizer and NodeRestriction), and
  the right to ask the API server who a caller is (``system:auth-delegator``), which the kubelet
  needs to check the API server's own requests for logs;
- a private containerd (its own socket, root and state; CRI on, cgroupfs, overlayfs) — separate
  from any containerd a Docker engine runs; oom_score_adj kept at or above containerd's own, since
  root here lacks CAP_SYS_RESOURCE;
- pod networking from Debian's CNI plugins: a bridge ``bh-cni0`` holding the gateway address
  (the node's IP) and host-local addresses for pods, reachable from the machine;
- a pause image compiled from ``pause.c`` (registry.k8s.io cannot be reached here), written as
  an OCI archive and imported; images made by Docker are imported with :meth:`import_image`;
- the kubelet: cgroup v1 allowed (``failCgroupV1: false``, the machines here have no v2),
  cgroupfs driver, its API on the node IP with client-certificate authentication only,
  eviction thresholds low enough for a shared disk.

Needs root, containerd, runc and the CNI plugins (``apt-get install containerd runc
containernetworking-plugins``) and a C compiler with a static libc; :func:`preflight` says in one
line what is missing.  Only the standard library is used.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import time
from pathlib import Path

from controlplane import ControlPlane, ControlPlaneError, _openssl, free_port

HERE = Path(__file__).resolve().parent
PAUSE_SOURCE = HERE / "pause.c"
PAUSE_IMAGE = "beamhub.local/pause:1"
CNI_BIN = Path("/usr/lib/cni")
BRIDGE = "bh-cni0"
NAMESPACE = "k8s.io"  # containerd's namespace for what the CRI plugin runs


def preflight() -> str | None:
    """Why a real node cannot start on this machine, in one line; None when it can."""
    if os.geteuid() != 0:
        return "a real node needs root (containerd, runc and the kubelet manage mounts and cgroups)"
    missing = [tool for tool in ("containerd", "ctr", "runc", "ip", "gcc") if not shutil.which(tool)]
    if not (CNI_BIN / "bridge").exists():
        missing.append(f"the CNI plugins in {CNI_BIN}")
    if missing:
        return (
            "a real node needs "
            + ", ".join(missing)
            + " (apt-get install containerd runc containernetworking-plugins iproute2 gcc libc6-dev)"
        )
    if not Path("/sys/fs/cgroup").is_dir():
        return "a real node needs cgroups mounted at /sys/fs/cgroup"
    return None


def _run(args: list[str], *, input: bytes | None = None, check: bool = True, timeout: float = 300) -> str:
    proc = subprocess.run(args, input=input, capture_output=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise ControlPlaneError(f"{' '.join(args[:3])} failed: {proc.stderr.decode(errors='replace').strip()[-800:]}")
    return proc.stdout.decode(errors="replace")


def pause_archive(binary: bytes, name: str = PAUSE_IMAGE) -> bytes:
    """An OCI image archive (uncompressed tar) of one static ``/pause`` binary, named ``name``."""
    layer_buf = io.BytesIO()
    with tarfile.open(fileobj=layer_buf, mode="w") as layer:
        info = tarfile.TarInfo("pause")
        info.size, info.mode, info.mtime = len(binary), 0o755, 0
        layer.addfile(info, io.BytesIO(binary))
    layer_tar = layer_buf.getvalue()
    layer_gz = gzip.compress(layer_tar, mtime=0)

    def blob(data: bytes) -> tuple[str, bytes]:
        return "sha256:" + hashlib.sha256(data).hexdigest(), data

    layer_digest, _ = blob(layer_gz)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Entrypoint": ["/pause"], "User": "65535:65535"},
            "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer_tar).hexdigest()]},
        }
    ).encode()
    config_digest, _ = blob(config)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": layer_digest,
                    "size": len(layer_gz),
                }
            ],
        }
    ).encode()
    manifest_digest, _ = blob(manifest)
    index = json.dumps(
        {
            "schemaVersion": 2,
            "manifests": [
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": manifest_digest,
                    "size": len(manifest),
                    "platform": {"architecture": "amd64", "os": "linux"},
                    "annotations": {
                        "io.containerd.image.name": name,
                        "org.opencontainers.image.ref.name": name.rsplit(":", 1)[1],
                    },
                }
            ],
        }
    ).encode()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as archive:

        def add(path: str, data: bytes) -> None:
            info = tarfile.TarInfo(path)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            archive.addfile(info, io.BytesIO(data))

        add("oci-layout", b'{"imageLayoutVersion": "1.0.0"}')
        add("index.json", index)
        for digest, data in ((layer_digest, layer_gz), (config_digest, config), (manifest_digest, manifest)):
            add(f"blobs/sha256/{digest.split(':')[1]}", data)
    return out.getvalue()


class RealNode:
    """A kubelet + containerd node named ``name`` joined to ``plane``; pods get addresses in ``subnet``."""

    def __init__(self, plane: ControlPlane, name: str = "node-real", subnet: str = "10.89.0.0/24"):
        self.plane, self.name = plane, name
        prefix = subnet.rsplit(".", 1)[0]
        self.gateway, self.subnet, self.mask = f"{prefix}.1", subnet, subnet.rsplit("/", 1)[1]
        self.workdir = plane.workdir / "realnode"
        self.socket = self.workdir / "containerd" / "containerd.sock"
        self.kubelet_port = 0

    # ---- lifecycle ----
    def start(self, timeout: float = 120) -> RealNode:
        """Start containerd and the kubelet; wait until the node is Ready.  Stops what started on failure."""
        problem = preflight()
        if problem:
            raise ControlPlaneError(problem)
        for sub in ("containerd", "kubelet", "cni/net.d", "cni/ipam", "pki"):
            (self.workdir / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(self.workdir, 0o711)  # the kubelet's pod folders below are reached by pods' uids
        try:
            self._node_identity()
            self._bridge()
            self._start_containerd()
            self._import_pause()
            self._start_kubelet()
            self.plane.wait_for(
                lambda: self.plane._node_ready(self.name) if self._registered() else False,
                f"the real node {self.name} Ready (see {self.workdir / 'kubelet.log'})",
                timeout=timeout,
            )
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the kubelet, kill every container containerd still runs, stop it, unmount and remove the bridge."""
        self.plane.stop_process("kubelet")
        if self.socket.exists():
            for task in self._ctr("tasks", "ls", "-q", check=False).split():
                self._ctr("tasks", "kill", "-s", "SIGKILL", task, check=False)
            deadline = time.monotonic() + 10
            while self._ctr("tasks", "ls", "-q", check=False).split() and time.monotonic() < deadline:
                time.sleep(0.2)
            for task in self._ctr("tasks", "ls", "-q", check=False).split():
                self._ctr("tasks", "delete", "-f", task, check=False)
        self.plane.stop_process("containerd")
        self._kill_shims()
        self._unmount_below(self.workdir)
        subprocess.run(["ip", "link", "del", BRIDGE], stderr=subprocess.DEVNULL, check=False)
        self.plane.kubectl("delete", "node", self.name, "--ignore-not-found", check=False)

    # ---- pieces ----
    def _node_identity(self) -> None:
        pki, ca = self.workdir / "pki", self.plane.pki
        (pki / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        _openssl(
            "req",
            *ec,
            "-keyout",
            "node.key",
            "-out",
            "node.csr",
            "-subj",
            f"/O=system:nodes/CN=system:node:{self.name}",
            cwd=pki,
        )
        _openssl(
            "x509",
            "-req",
            "-in",
            "node.csr",
            "-CA",
            str(ca / "ca.crt"),
            "-CAkey",
            str(ca / "ca.key"),
            "-CAcreateserial",
            "-out",
            "node.crt",
            "-days",
            "30",
            "-extfile",
            "client.ext",
            cwd=pki,
        )
        kubeconfig = json.loads(self.plane.kubeconfig.read_text())
        kubeconfig["users"] = [
            {
                "name": "admin",
                "user": {"client-certificate": str(pki / "node.crt"), "client-key": str(pki / "node.key")},
            }
        ]
        (self.workdir / "kubelet" / "kubeconfig").write_text(json.dumps(kubeconfig, indent=2))
        self.plane.apply(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": f"beamhub-node-auth-delegator-{self.name}"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "system:auth-delegator",
                },
                "subjects": [
                    {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": f"system:node:{self.name}"}
                ],
            }
        )

    def _bridge(self) -> None:
        """The pods' bridge, made before the kubelet so the node IP exists when it starts."""
        subprocess.run(["ip", "link", "del", BRIDGE], stderr=subprocess.DEVNULL, check=False)
        _run(["ip", "link", "add", BRIDGE, "type", "bridge"])
        _run(["ip", "addr", "add", f"{self.gateway}/{self.mask}", "dev", BRIDGE])
        _run(["ip", "link", "set", BRIDGE, "up"])
        (self.workdir / "cni" / "net.d" / "10-beamhub.conflist").write_text(
            json.dumps(
                {
                    "cniVersion": "0.4.0",
                    "name": "beamhub-pods",
                    "plugins": [
                        {
                            "type": "bridge",
                            "bridge": BRIDGE,
                            "isGateway": True,
                            "ipMasq": False,
                            "hairpinMode": True,
                            "ipam": {
                                "type": "host-local",
                                "dataDir": str(self.workdir / "cni" / "ipam"),
                                "ranges": [[{"subnet": self.subnet, "gateway": self.gateway}]],
                                "routes": [{"dst": "0.0.0.0/0"}],
                            },
                        },
                        {"type": "portmap", "capabilities": {"portMappings": True}},
                    ],
                },
                indent=2,
            )
        )

    def _start_containerd(self) -> None:
        w = self.workdir / "containerd"
        config = w / "config.toml"
        config.write_text(f"""version = 2
root = "{w / "root"}"
state = "{w / "state"}"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
                    "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "{self.socket}"
[ttrpc]
  address = "{self.socket}.ttrpc"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  # the kubelet asks for -998 for sandboxes; lowering a score needs CAP_SYS_RESOURCE, which root
  # lacks on these VMs (runc then fails with "can't get final child's PID from pipe")
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN}"
    conf_dir = "{self.workdir / "cni" / "net.d"}"
""")
        self.plane.start_process("containerd", ["containerd", f"--config={config}", "--log-level=warn"])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.plane.procs["containerd"].poll() is not None:
                raise ControlPlaneError(
                    f"containerd exited while starting; {self.plane.workdir}/logs/containerd.log:\n"
                    f"{self.plane.log_tail('containerd')}"
                )
            if self.socket.exists() and self._ctr("version", check=False).count("Version") >= 2:
                return
            time.sleep(0.2)
        raise ControlPlaneError(f"containerd did not answer on {self.socket} within 30 s")

    def _ctr(self, *args: str, input: bytes | None = None, check: bool = True, timeout: float = 300) -> str:
        return _run(
            ["ctr", f"--address={self.socket}", f"--namespace={NAMESPACE}", *args],
            input=input,
            check=check,
            timeout=timeout,
        )

    def _import_pause(self) -> None:
        binary = self.workdir / "pause"
        _run(["gcc", "-Os", "-static", "-o", str(binary), str(PAUSE_SOURCE)])
        self._ctr("images", "import", "-", input=pause_archive(binary.read_bytes()))

    def import_image(self, docker: str, ref: str) -> float:
        """Copy image ``ref`` from the Docker engine (CLI ``docker``) into this node's containerd; seconds taken."""
        t0 = time.monotonic()
        saved = subprocess.Popen([docker, "save", ref], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        imported = subprocess.run(
            ["ctr", f"--address={self.socket}", f"--namespace={NAMESPACE}", "images", "import", "-"],
            stdin=saved.stdout,
            capture_output=True,
            timeout=900,
        )
        saved.stdout.close()
        saved.wait(60)
        if saved.returncode != 0 or imported.returncode != 0:
            raise ControlPlaneError(
                f"importing {ref} into the real node failed: "
                f"{(saved.stderr.read() + imported.stderr).decode(errors='replace')[-800:]}"
            )
        return time.monotonic() - t0

    def images(self) -> list[str]:
        """The image references this node's containerd holds."""
        return self._ctr("images", "ls", "-q").split()

    def running_tasks(self) -> list[str]:
        """The ids of the containers (pod sandboxes included) running on this node now."""
        return self._ctr("tasks", "ls", "-q", check=False).split()

    def _start_kubelet(self) -> None:
        k = self.workdir / "kubelet"
        self.kubelet_port = free_port()
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "address": self.gateway,
            "port": self.kubelet_port,
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": free_port(),
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": False},
                "x509": {"clientCAFile": str(self.plane.pki / "ca.crt")},
            },
            "authorization": {"mode": "Webhook"},
            "cgroupDriver": "cgroupfs",
            "failCgroupV1": False,
            "failSwapOn": False,
            "containerRuntimeEndpoint": f"unix://{self.socket}",
            "imageServiceEndpoint": f"unix://{self.socket}",
            "registerNode": True,
            "resolvConf": "/etc/resolv.conf",
            # a shared test machine: evict only when truly out of room, never collect our images
            "evictionHard": {
                "memory.available": "100Mi",
                "nodefs.available": "1%",
                "imagefs.available": "1%",
                "nodefs.inodesFree": "1%",
            },
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "serializeImagePulls": False,
            "syncFrequency": "5s",
            "nodeStatusUpdateFrequency": "5s",
            "fileCheckFrequency": "5s",
            "volumeStatsAggPeriod": "0s",
            "protectKernelDefaults": False,
            "maxPods": 20,
        }
        (k / "config.json").write_text(json.dumps(config, indent=2))
        self.plane.start_process(
            "kubelet",
            [
                self.plane.tool("kubelet"),
                f"--config={k / 'config.json'}",
                f"--kubeconfig={k / 'kubeconfig'}",
                f"--root-dir={k / 'root'}",
                f"--cert-dir={k / 'pki'}",
                f"--hostname-override={self.name}",
                f"--node-ip={self.gateway}",
                "--node-labels=beamhub.io/node-kind=real",
                "--v=1",
            ],
        )

    def _registered(self) -> bool:
        if self.plane.procs.get("kubelet") and self.plane.procs["kubelet"].poll() is not None:
            raise ControlPlaneError(
                f"the kubelet exited while starting; {self.plane.workdir}/logs/kubelet.log:\n"
                f"{self.plane.log_tail('kubelet', 30)}"
            )
        return "NotFound" not in self.plane.kubectl("get", "node", self.name, check=False)

    def _kill_shims(self) -> None:
        """containerd's runc shims outlive it by design; ours (named by our socket) go with the node."""
        mine = str(self.socket)
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if "containerd-shim" in cmdline and mine in cmdline:
                try:
                    os.kill(int(entry), 9)
                except ProcessLookupError:
                    pass

    @staticmethod
    def _unmount_below(top: Path) -> None:
        """Lazily unmount everything mounted under ``top`` (rootfs overlays, shm, pod volumes), deepest first."""
        with open("/proc/self/mounts") as f:
            points = [line.split()[1].replace("\\040", " ") for line in f]
        for point in sorted((p for p in points if p.startswith(str(top) + "/")), key=len, reverse=True):
            subprocess.run(["umount", "-l", point], stderr=subprocess.DEVNULL, check=False)
