"""The chart's home-init step, on the real API server: PodSecurity ``restricted`` admits it.

tests/deploy/test_home_init.py renders the step and runs its script as other uids; here the session
pod BeamSpawner builds with it (the chart's settings rendered by Helm's engine, KubeSpawner's own
pod builder) goes to the control plane's API server as a server-side dry run in the users'
namespace, which enforces ``restricted``: admitted.  The same pod with its init container made
root is refused, so the check is the API server's, not a formality; and the API server's QoS
class of the pod, which counts init containers, is still the catalog entry's.  (KWOK runs no container:
what the script does is the deploy test's part.)
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from beamhub.hub.identity import Identity

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "deploy"))
from deploy_render import one, render_objects  # noqa: E402 - after tests/deploy is put on sys.path

ALICE = Identity("alice", 2001, 2001, (3001, 3002), ("spi", "tomo"))
VALUES = {
    "sessions": {
        "storage": {
            "home": {"volume": {"persistentVolumeClaim": {"claimName": "nfs-users"}}, "init": {"enabled": True}}
        }
    }
}


async def _session_pod(kubeconfig: str, monkeypatch, slug: str) -> dict:
    from kubernetes_asyncio.client import ApiClient
    from kubernetes_asyncio.config import kube_config

    from beamhub.hub.spawner import BeamSpawner

    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", kubeconfig)
    settings = json.loads(one(render_objects(VALUES), "ConfigMap", "beamhub-hub-settings")["data"]["settings.json"])
    traits = {k: v for k, v in settings["BeamSpawner"].items() if k not in ("catalog_path", "scheduler_summary_url")}
    spawner = BeamSpawner(_mock=True, **traits)
    spawner.user.name, spawner.user.admin, spawner.user.groups = ALICE.username, False, []
    spawner.orm_spawner = SimpleNamespace(user_options={}, server=None, name="")
    spawner.identity = ALICE
    await spawner._apply_chosen_environment({"environment": slug})
    pod = ApiClient().sanitize_for_serialization(await spawner.get_pod_manifest())
    pod["metadata"]["namespace"] = "beamhub"
    return pod


def _dry_run(cluster, pod: dict, output: str = "name") -> str:
    return cluster.plane.kubectl(
        "create", "--dry-run=server", "-f", "-", "-o", output, input=json.dumps(pod), check=False
    ).strip()


@pytest.mark.parametrize("slug", ["tomo", "spi-emc"])
async def test_session_pod_with_home_init_is_admitted_under_restricted(cluster, monkeypatch, slug):
    ns = cluster.plane.get("namespace", "beamhub")
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    pod = await _session_pod(str(cluster.plane.kubeconfig), monkeypatch, slug)
    assert [c["name"] for c in pod["spec"]["initContainers"]] == ["home-init"]
    assert _dry_run(cluster, pod) == f"pod/{pod['metadata']['name']}"
    # the API server's QoS class counts the init container: still the catalog's class
    qos = _dry_run(cluster, pod, "jsonpath={.status.qosClass}")
    assert qos == {"tomo": "Burstable", "spi-emc": "Guaranteed"}[slug]
    # the control: the same init container as root is refused by the same admission
    root = copy.deepcopy(pod)
    root["spec"]["initContainers"][0]["securityContext"]["runAsUser"] = 0
    refused = _dry_run(cluster, root)
    assert 'violates PodSecurity "restricted:latest"' in refused and "runAsUser=0" in refused
