"""The control plane is the real one, and the chart installs, upgrades and uninstalls into it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from controlplane import ControlPlaneError

from beamhub.hub.catalog import load_catalog
from beamhub.hub.identity import Identity
from beamhub.hub.pods import ClusterSettings, environment_overrides

PINNED = "v1.34.4"  # deploy/cluster/build.sh K8S_VERSION
REPO = Path(__file__).resolve().parents[2]
ALICE = Identity("alice", 2001, 2001, (3001, 3002), ("spi", "tomo"))


def _restricted_pod(name: str, **spec_extra) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "beamhub"},
        "spec": {
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 2001,
                "runAsGroup": 2001,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "c",
                    "image": "beamhub/base",
                    "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                }
            ],
            **spec_extra,
        },
    }


def test_api_server_is_the_pinned_release(control_plane):
    assert control_plane.version() == PINNED
    kubectl = json.loads(control_plane.kubectl("version", "-o", "json"))
    assert kubectl["serverVersion"]["gitVersion"] == PINNED
    assert kubectl["serverVersion"]["minor"] == "34"


def test_kwok_nodes_are_ready_and_gpu_nodes_have_gpus(control_plane):
    nodes = control_plane.get("nodes")["items"]
    assert len(nodes) == 6
    for node in nodes:
        ready = {c["type"]: c["status"] for c in node["status"]["conditions"]}["Ready"]
        assert ready == "True", node["metadata"]["name"]
    gpu = [n for n in nodes if n["metadata"]["labels"].get("nvidia.com/gpu.present") == "true"]
    assert sorted(n["metadata"]["name"] for n in gpu) == ["kwok-gpu-0", "kwok-gpu-1"]
    assert all(n["status"]["allocatable"]["nvidia.com/gpu"] == "4" for n in gpu)


def test_users_namespace_enforces_restricted_and_rejects_a_root_pod(cluster):
    ns = cluster.plane.get("namespace", "beamhub")
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    root = _restricted_pod("root-pod")
    root["spec"]["securityContext"] = {"runAsUser": 0}
    root["spec"]["containers"][0]["securityContext"] = {}
    with pytest.raises(ControlPlaneError) as refused:
        cluster.plane.apply(root)
    message = str(refused.value)
    assert 'violates PodSecurity "restricted:latest"' in message
    assert "runAsUser=0" in message and "allowPrivilegeEscalation != false" in message
    assert "root-pod" not in cluster.plane.kubectl("get", "pods", "-n", "beamhub", "-o", "name")
    # the same pod as the user, within the rules, is admitted
    cluster.plane.apply(_restricted_pod("user-pod"))
    cluster.plane.kubectl("delete", "pod", "user-pod", "-n", "beamhub", "--wait=false")


def test_chart_objects_are_created_and_accepted(cluster):
    get = cluster.plane.get
    assert "STATUS: deployed" in cluster.install_output
    deployment = get("deployment", "beamhub-scheduler", "-n", "beamhub")
    containers = {c["name"]: c for c in deployment["spec"]["template"]["spec"]["containers"]}
    assert set(containers) == {"kube-scheduler", "extender"}
    # kube-scheduler's image follows the API server's version helm read (skew policy)
    assert containers["kube-scheduler"]["image"] == f"registry.k8s.io/kube-scheduler:{PINNED}"
    config, extender = cluster.scheduler_config()
    assert config["kind"] == "KubeSchedulerConfiguration"
    assert [p["schedulerName"] for p in config["profiles"]] == ["beamhub-scheduler"]
    assert config["extenders"][0]["ignorable"] is True and config["extenders"][0]["nodeCacheCapable"] is True
    assert extender["kube_api"] == "in-cluster"
    classes = {p["metadata"]["name"]: p for p in get("priorityclass")["items"]}
    assert classes["beamhub-guaranteed"]["value"] == 1000
    assert classes["beamhub-burstable"]["preemptionPolicy"] == "Never"
    assert "beamhub-besteffort" in classes
    catalog = get("configmap", "beamhub-catalog", "-n", "beamhub")["data"]
    shipped = {env.slug for env in load_catalog().environments}
    assert {e["slug"] for e in yaml.safe_load(next(iter(catalog.values())))["environments"]} == shipped
    assert get("networkpolicy", "beamhub-scheduler", "-n", "beamhub")["spec"]["policyTypes"][0] == "Ingress"
    role = get("role", "beamhub-jobs", "-n", "beamhub")
    assert any("jobs" in rule.get("resources", []) for rule in role["rules"])
    assert get("serviceaccount", "beamhub-scheduler", "-n", "beamhub")["metadata"]["name"]
    # the scheduler Deployment's own pod passes restricted admission and KWOK runs it
    pods = cluster.plane.wait_for(
        lambda: [
            p
            for p in get("pods", "-n", "beamhub", "-l", "app.kubernetes.io/component=scheduler")["items"]
            if p["status"].get("phase") == "Running"
        ],
        "the scheduler Deployment's pod Running",
    )
    assert pods[0]["spec"]["nodeName"].startswith("kwok-")


def test_helm_upgrade_then_uninstall_of_a_second_release(cluster, control_plane):
    """A second release (own prefix, own namespace): upgrade changes objects, uninstall removes them all."""
    ns, release = "beamhub-second", "second"
    control_plane.apply(
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": ns, "labels": {"pod-security.kubernetes.io/enforce": "restricted"}},
        }
    )
    values = {
        "fullnameOverride": "bh2",
        "scheduler": {"extender": {"weight": 5}},
        "jupyterhub": {
            "hub": {
                "extraVolumes": [
                    {
                        "name": "beamhub",
                        "projected": {
                            "sources": [
                                {"configMap": {"name": "bh2-catalog"}},
                                {"configMap": {"name": "bh2-hub-settings"}},
                            ]
                        },
                    }
                ]
            }
        },
    }
    chart = cluster.plane.workdir / "chart"
    path = cluster.plane.workdir / "second.json"
    path.write_text(json.dumps(values))
    cluster.helm("install", release, str(chart), f"--namespace={ns}", f"--values={path}")
    assert "weight: 5" in control_plane.get("configmap", "bh2-scheduler-config", "-n", ns)["data"]["config.yaml"]
    values["scheduler"]["extender"]["weight"] = 7
    path.write_text(json.dumps(values))
    cluster.helm("upgrade", release, str(chart), f"--namespace={ns}", f"--values={path}")
    assert "weight: 7" in control_plane.get("configmap", "bh2-scheduler-config", "-n", ns)["data"]["config.yaml"]
    assert "bh2-guaranteed" in control_plane.kubectl("get", "priorityclass", "-o", "name")
    cluster.helm("uninstall", release, f"--namespace={ns}", "--wait")
    left = control_plane.kubectl(
        "get",
        "deployment,configmap,role,networkpolicy,serviceaccount",
        "-n",
        ns,
        "-l",
        "app.kubernetes.io/instance=second",
        "-o",
        "name",
    )
    assert left.strip() == ""
    assert "bh2-guaranteed" not in control_plane.kubectl("get", "priorityclass", "-o", "name")


@pytest.mark.parametrize("example", sorted((REPO / "deploy" / "examples").glob("values-*.yaml")), ids=lambda p: p.stem)
def test_documented_storage_examples_pass_restricted(cluster, example):
    """Each example's data and home volumes, on a session pod as BeamSpawner builds it, pass
    PodSecurity restricted (the API server's own admission, as a server-side dry run)."""
    storage = (yaml.safe_load(example.read_text()).get("sessions") or {}).get("storage") or {}
    home = storage.get("home") or {}
    settings = ClusterSettings(
        data_volumes=storage.get("dataVolumes") or {}, home_volume=home.get("volume"), examples_dir=""
    )
    overrides = environment_overrides(load_catalog().get("spi-emc"), ALICE, settings)
    pod = _restricted_pod(f"storage-{example.stem}")
    pod["spec"]["securityContext"] = overrides["pod_security_context"]
    pod["spec"]["containers"][0]["securityContext"] = overrides["container_security_context"]
    pod["spec"]["volumes"] = overrides["volumes"]
    pod["spec"]["containers"][0]["volumeMounts"] = overrides["volume_mounts"]
    assert overrides["volumes"], f"{example.name} configures no volume"
    out = cluster.plane.kubectl(
        "create", "--dry-run=server", "-f", "-", "-o", "name", input=json.dumps(pod), check=False
    )
    assert out.strip() == f"pod/storage-{example.stem}", f"{example.name}: {out.strip()}"
