"""Objects shaped exactly like what kube-scheduler sends (Go-marshalled v1.Pod / v1.Node)."""

from __future__ import annotations

import copy

from beamhub.scheduler.load import NodeLoad

GIB = 2**30


def make_pod(name="jupyter-alice", *, cpu="2", memory="4Gi", gpus=0, limits=True, qos_in_status=True, init_cpu=None):
    """A v1.Pod as kube-scheduler serialises it into ExtenderArgs.pod."""
    requests = {"cpu": cpu, "memory": memory}
    lim = dict(requests) if limits else {}
    if gpus:
        requests["nvidia.com/gpu"] = str(gpus)
        lim["nvidia.com/gpu"] = str(gpus)
    resources = {"requests": requests}
    if lim:
        resources["limits"] = lim
    if cpu is None:
        resources = {}
    pod = {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {
            "name": name,
            "namespace": "beamhub",
            "uid": "0f5b7c4e-6d1e-4f7d-9d6a-3f0b2a1c9e11",
            "resourceVersion": "123456",
            "creationTimestamp": "2026-11-23T17:00:00Z",
            "labels": {"app": "jupyterhub", "component": "singleuser-server", "hub.jupyter.org/username": "alice"},
            "annotations": {"hub.jupyter.org/username": "alice"},
        },
        "spec": {
            "volumes": [{"name": "home", "persistentVolumeClaim": {"claimName": "claim-alice"}}],
            "containers": [
                {
                    "name": "notebook",
                    "image": "ghcr.io/beamhub/base:latest",
                    "ports": [{"name": "notebook-port", "containerPort": 8888, "protocol": "TCP"}],
                    "resources": resources,
                    "volumeMounts": [{"name": "home", "mountPath": "/home/jovyan"}],
                    "terminationMessagePath": "/dev/termination-log",
                    "imagePullPolicy": "IfNotPresent",
                    "securityContext": {"runAsUser": 1000, "runAsNonRoot": True, "allowPrivilegeEscalation": False},
                }
            ],
            "restartPolicy": "OnFailure",
            "terminationGracePeriodSeconds": 1,
            "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "default",
            "securityContext": {"runAsUser": 1000, "runAsGroup": 100, "fsGroup": 100},
            "schedulerName": "beamhub-scheduler",
            "tolerations": [
                {
                    "key": "node.kubernetes.io/not-ready",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 300,
                }
            ],
            "priorityClassName": "beamhub-interactive",
            "priority": 1000,
            "enableServiceLinks": True,
            "preemptionPolicy": "PreemptLowerPriority",
        },
        "status": {"phase": "Pending"},
    }
    if init_cpu is not None:
        pod["spec"]["initContainers"] = [
            {"name": "block-cloud-metadata", "image": "busybox", "resources": {"requests": {"cpu": init_cpu}}}
        ]
    if qos_in_status:
        if cpu is None:
            pod["status"]["qosClass"] = "BestEffort"
        else:
            pod["status"]["qosClass"] = "Guaranteed" if limits else "Burstable"
    return pod


def make_node(
    name,
    *,
    cpu="16",
    memory="64Gi",
    gpus=0,
    node_class=None,
    conditions=None,
    unschedulable=None,
    instance_type="m5.4xlarge",
):
    """A v1.Node as kube-scheduler serialises it into ExtenderArgs.nodes.items."""
    allocatable = {
        "cpu": cpu,
        "memory": memory,
        "pods": "110",
        "ephemeral-storage": "95551679124",
        "hugepages-1Gi": "0",
        "hugepages-2Mi": "0",
    }
    if gpus:
        allocatable["nvidia.com/gpu"] = str(gpus)
    state = {"Ready": "True", "MemoryPressure": "False", "DiskPressure": "False", "PIDPressure": "False"}
    state.update(conditions or {})
    labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "node.kubernetes.io/instance-type": instance_type,
    }
    if node_class:
        labels["beamhub.io/node-class"] = node_class
    node = {
        "metadata": {
            "name": name,
            "uid": f"uid-{name}",
            "resourceVersion": "98765",
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "labels": labels,
            "annotations": {"node.alpha.kubernetes.io/ttl": "0"},
        },
        "spec": {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24"]},
        "status": {
            "capacity": dict(allocatable),
            "allocatable": allocatable,
            "conditions": [
                {
                    "type": k,
                    "status": v,
                    "lastHeartbeatTime": "2026-11-23T17:00:00Z",
                    "lastTransitionTime": "2026-11-01T00:00:00Z",
                    "reason": "KubeletReady",
                    "message": "kubelet is posting ready status",
                }
                for k, v in state.items()
            ],
            "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}, {"type": "Hostname", "address": name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "kubeletVersion": "v1.30.2",
                "containerRuntimeVersion": "containerd://1.7.13",
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        },
    }
    if unschedulable is not None:
        node["spec"]["unschedulable"] = unschedulable
    return node


def full_args(pod, nodes):
    """ExtenderArgs for nodeCacheCapable: false (Go omits the nil nodenames pointer)."""
    return {"pod": pod, "nodes": {"metadata": {"resourceVersion": "1"}, "items": copy.deepcopy(nodes)}}


def names_args(pod, names):
    """ExtenderArgs for nodeCacheCapable: true (Go omits the nil nodes pointer)."""
    return {"pod": pod, "nodenames": list(names)}


def load(cpu=0.1, mem_avail_gib=50.0, mem_total_gib=64.0, iowait=0.0, net=0.0, fs_free=0.5, **extra):
    return NodeLoad(
        cpu_util=cpu,
        iowait=iowait,
        mem_available=mem_avail_gib * GIB,
        mem_total=mem_total_gib * GIB,
        net_bytes=net,
        fs_free=fs_free,
        **extra,
    )
