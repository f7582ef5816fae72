"""The chart's optional home-init step: each user's folder in a shared home volume, owned by their uid.

Sessions never run as root, and kubelet makes a missing subPath as root, so on a shared NFS home
a new user's session could not write its own home.  With ``sessions.storage.home.init.enabled``
the chart hands BeamSpawner an init container that runs as the user and makes the folder.  Here:
the chart renders it (Helm's engine, no cluster), BeamSpawner builds a real session pod with it
(KubeSpawner's pure builder; no API server), and the init container's own script runs, as a
non-root uid, against a folder standing in for the volume's top.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path
from types import SimpleNamespace

import helm_python as helm
import pytest
from deploy_render import one, render, render_objects

from beamhub.hub.identity import Identity

ALICE = Identity("alice", 2001, 2001, (3001,), ("spi", "tomo"))
HOME = {"persistentVolumeClaim": {"claimName": "nfs-users"}}
KUBECONFIG_STANDIN = """\
apiVersion: v1
kind: Config
clusters: [{name: standin, cluster: {server: "https://127.0.0.1:9"}}]
users: [{name: standin, user: {token: standin}}]
contexts: [{name: standin, context: {cluster: standin, user: standin, namespace: beamhub}}]
current-context: standin
"""


def spawner_settings(values: dict | None = None) -> dict:
    objects = render_objects(values)
    return json.loads(one(objects, "ConfigMap", "beamhub-hub-settings")["data"]["settings.json"])["BeamSpawner"]


def with_init(sub_path: str = "{username}", **home) -> dict:
    return {"sessions": {"storage": {"home": {"volume": HOME, "subPath": sub_path, "init": {"enabled": True}, **home}}}}


@pytest.fixture
def standin_kubeconfig(tmp_path, monkeypatch):
    """KubeSpawner needs a kubeconfig to construct; get_pod_manifest() never calls the server."""
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG_STANDIN)
    from kubernetes_asyncio.config import kube_config

    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(path))


async def session_pod(settings: dict, slug: str, identity: Identity = ALICE) -> dict:
    """The pod BeamSpawner builds for ``identity`` with the chart's BeamSpawner settings."""
    from kubernetes_asyncio.client import ApiClient

    from beamhub.hub.spawner import BeamSpawner

    traits = {k: v for k, v in settings.items() if k not in ("catalog_path", "scheduler_summary_url")}
    spawner = BeamSpawner(_mock=True, **traits)
    spawner.user.name = identity.username
    spawner.user.admin = False
    spawner.user.groups = []
    spawner.orm_spawner = SimpleNamespace(user_options={}, server=None, name="")
    spawner.identity = identity
    await spawner._apply_chosen_environment({"environment": slug})
    return ApiClient().sanitize_for_serialization(await spawner.get_pod_manifest())


def qos_class(pod: dict) -> str:
    """Kubernetes' QoS class of a pod, counting init containers as the kubelet does."""
    containers = pod["spec"]["containers"] + pod["spec"].get("initContainers", [])
    resources = [c.get("resources") or {} for c in containers]
    if not any(r.get("requests") or r.get("limits") for r in resources):
        return "BestEffort"
    for r in resources:
        limits, requests = r.get("limits") or {}, r.get("requests") or {}
        for kind in ("cpu", "memory"):
            if kind not in limits or requests.get(kind, limits[kind]) != limits[kind]:
                return "Burstable"
    return "Guaranteed"


def test_off_by_default_and_refused_without_a_shared_home_volume():
    assert "init_containers" not in spawner_settings()
    assert "init_containers" not in spawner_settings({"sessions": {"storage": {"home": {"volume": HOME}}}})
    with pytest.raises(helm.HelmRenderError, match=r"home\.init\.enabled needs sessions\.storage\.home\.volume"):
        render({"sessions": {"storage": {"home": {"init": {"enabled": True}}}}})
    with pytest.raises(helm.HelmValuesError):
        render(with_init(init={"enabled": True, "image": {"name": "x", "tag": "1"}, "resources": {}, "typo": 1}))


def test_the_init_container_keeps_the_sites_own_init_containers_after_it():
    theirs = {"name": "site-check", "image": "site/check:1"}
    settings = spawner_settings({**with_init(), "jupyterhub": {"singleuser": {"initContainers": [theirs]}}})
    assert [c["name"] for c in settings["init_containers"]] == ["home-init", "site-check"]


@pytest.mark.parametrize("slug", ["tomo", "spi-emc"])
async def test_session_pod_runs_home_init_as_the_user_on_the_home_volume(standin_kubeconfig, slug):
    """The pod BeamSpawner builds: the init container mounts the pod's own home volume at its top,
    is told the folder the session's home subPath names, and passes PodSecurity restricted; a
    Guaranteed environment stays Guaranteed."""
    pod = await session_pod(spawner_settings(with_init()), slug)
    spec = pod["spec"]
    (init,) = spec["initContainers"]
    (session,) = spec["containers"]
    home = next(m for m in session["volumeMounts"] if m["name"] == "home")
    assert home["subPath"] == "alice" and not home.get("readOnly")
    assert any(v["name"] == "home" and v["persistentVolumeClaim"]["claimName"] == "nfs-users" for v in spec["volumes"])
    assert init["volumeMounts"] == [{"name": "home", "mountPath": "/beamhub-home-root"}]
    assert init["command"][:2] == ["/bin/sh", "-c"] and init["command"][3:] == ["home-init", "alice"]
    # who it runs as: the pod's identity (not root); what it may do: nothing more
    assert spec["securityContext"]["runAsUser"] == 2001 and "runAsUser" not in init["securityContext"]
    sc = init["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["runAsNonRoot"] is True and sc["seccompProfile"] == {"type": "RuntimeDefault"}
    from beamhub.hub.catalog import load_catalog

    expected = {"guaranteed": "Guaranteed", "burstable": "Burstable"}[load_catalog().get(slug).qos]
    assert qos_class(pod) == expected


async def test_a_uid_sub_path_becomes_the_users_uid_in_the_script(standin_kubeconfig):
    pod = await session_pod(spawner_settings(with_init("users/{uid}")), "tomo")
    home = next(m for m in pod["spec"]["containers"][0]["volumeMounts"] if m["name"] == "home")
    assert home["subPath"] == "users/2001"
    assert pod["spec"]["initContainers"][0]["command"][3:] == ["home-init", "users/@UID@"]


# ---- the script itself, as the user ------------------------------------------------------


def run_script(top, folder: str, uid: int) -> subprocess.CompletedProcess:
    """The rendered init script, with its volume's top replaced by ``top``, run as ``uid``."""
    script = spawner_settings(with_init())["init_containers"][0]["command"][2]
    assert script.count("top=/beamhub-home-root") == 1
    script = script.replace("top=/beamhub-home-root", f"top={top}")
    return subprocess.run(
        ["/bin/sh", "-c", script, "home-init", folder],
        user=uid,
        group=uid,
        extra_groups=[],
        capture_output=True,
        text=True,
        timeout=30,
    )


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="runs the script as other uids (needs root)")


@pytest.fixture
def top():
    """A folder standing in for the home volume's top, on a path other uids can traverse
    (pytest's tmp_path lies under a 0700 folder of root's)."""
    with tempfile.TemporaryDirectory(prefix="beamhub-homes-") as parent:
        os.chmod(parent, 0o755)
        folder = Path(parent) / "homes"
        folder.mkdir()
        yield folder


@needs_root
def test_script_makes_the_users_folder_theirs_and_refuses_anothers(top):
    os.chmod(top, 0o1733)  # what the operator sets: anyone may create, nobody may list
    done = run_script(top, "alice", 2001)
    assert done.returncode == 0, done.stderr
    info = (top / "alice").stat()
    assert (info.st_uid, info.st_mode & 0o777) == (2001, 0o700)
    assert "ready for uid 2001" in done.stdout
    assert run_script(top, "alice", 2001).returncode == 0  # the next start: nothing to do
    # a folder that exists but is someone else's: refused, with the fix named
    taken = run_script(top, "alice", 2002)
    assert taken.returncode == 1 and "belongs to uid 2001, not to this user (uid 2002)" in taken.stderr
    # {uid} sub-paths; names that would leave the volume
    assert run_script(top, "@UID@", 2003).returncode == 0 and (top / "2003").stat().st_uid == 2003
    for bad in ("../etc", "a/../../b", ".", ""):
        refused = run_script(top, bad, 2001)
        assert refused.returncode == 1 and "refusing the folder name" in refused.stderr, bad


@needs_root
def test_script_says_what_to_do_when_users_cannot_create_folders(top):
    os.chmod(top, 0o755)  # root's, not writable by users: the default of a fresh export
    done = run_script(top, "bob", 2002)
    assert done.returncode == 1
    assert "chmod 1733" in done.stderr and "owned by uid 2002" in done.stderr
    assert not (top / "bob").exists()
