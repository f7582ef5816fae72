"""BeamSpawner's pods, built without a Kubernetes API server.

A stand-in kubeconfig pointing at a closed port replaces the API server: KubeSpawner
needs one to construct, and get_pod_manifest() is a pure builder that never calls it.
"""

from __future__ import annotations

import subprocess
from types import SimpleNamespace

import pytest
from kubernetes_asyncio.client import ApiClient
from tornado import web

from beamhub.hub.catalog import load_catalog
from beamhub.hub.identity import Identity
from beamhub.hub.pods import examples_copy_command
from beamhub.hub.spawner import BeamSpawner, ClusterSettings, environment_overrides

ALICE = Identity("alice", 2001, 2001, (3001, 3002), ("spi", "tomo"))
BOB = Identity("bob", 2002, 2002, (3002,), ("tomo",))
CATALOG = load_catalog()
VOLUMES = {
    "raw-tomo": {"cephfs": {"monitors": ["10.0.0.1:6789"], "path": "/raw/tomo", "user": "beamhub"}},
    "raw-spi": {"nfs": {"server": "nfs.example.org", "path": "/raw/spi"}},
    "public": {"persistentVolumeClaim": {"claimName": "public-data"}},
}

KUBECONFIG_STANDIN = """\
apiVersion: v1
kind: Config
clusters: [{name: standin, cluster: {server: "https://127.0.0.1:9"}}]
users: [{name: standin, user: {token: standin}}]
contexts: [{name: standin, context: {cluster: standin, user: standin, namespace: beamhub}}]
current-context: standin
"""


@pytest.fixture
def standin_kubeconfig(tmp_path, monkeypatch):
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG_STANDIN)
    from kubernetes_asyncio.config import kube_config

    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(path))


async def _pod(identity: Identity, slug: str, times: int = 1, **config) -> dict:
    spawner = BeamSpawner(_mock=True, **{"data_volumes": VOLUMES, **config})
    spawner.user.name = identity.username
    spawner.user.admin = False
    spawner.user.groups = []
    spawner.orm_spawner = SimpleNamespace(user_options={}, server=None, name="")
    spawner.identity = identity
    for _ in range(times):
        await spawner._apply_chosen_environment({"environment": slug})
    return ApiClient().sanitize_for_serialization(await spawner.get_pod_manifest())


@pytest.mark.parametrize("slug", [e.slug for e in CATALOG])
async def test_pod_for_every_environment_without_api_server(standin_kubeconfig, slug):
    env = CATALOG.get(slug)
    pod = await _pod(ALICE, slug)
    spec, container = pod["spec"], pod["spec"]["containers"][0]
    assert container["image"] == env.image
    assert pod["metadata"]["labels"]["beamhub.io/environment"] == slug

    # the SSO identity, and nothing more
    assert spec["securityContext"] == {
        "runAsUser": 2001,
        "runAsGroup": 2001,
        "fsGroup": 2001,
        "runAsNonRoot": True,
        "supplementalGroups": [3001, 3002],
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["runAsNonRoot"] is True and sc["seccompProfile"] == {"type": "RuntimeDefault"}

    # requests/limits that give the catalog's QoS class, and its PriorityClass
    resources = container["resources"]
    assert spec["priorityClassName"] == f"beamhub-{env.qos}"
    assert spec["schedulerName"] == "beamhub-scheduler"
    limits, requests = resources.get("limits", {}), resources.get("requests", {})
    assert float(limits["cpu"]) == env.cpu.limit and int(limits["memory"]) == env.memory.limit
    if env.qos == "guaranteed":
        assert requests["cpu"] == limits["cpu"] and requests["memory"] == limits["memory"]
    else:
        assert float(requests["cpu"]) < float(limits["cpu"])

    # GPUs: limit, selector, toleration
    if env.gpus:
        assert limits["nvidia.com/gpu"] == str(env.gpus) == requests["nvidia.com/gpu"]
        assert spec["nodeSelector"]["nvidia.com/gpu.present"] == "true"
        assert spec["tolerations"][0]["key"] == "nvidia.com/gpu"
    else:
        assert "nvidia.com/gpu" not in limits
        assert not spec.get("tolerations") and not spec.get("nodeSelector")

    # data volumes: the catalog's mounts, read-only raw data
    mounts = {m["mountPath"]: m for m in container.get("volumeMounts", [])}
    for mount in env.mounts:
        assert mounts[mount.mount_path]["readOnly"] is mount.read_only
    env_vars = {e["name"]: e.get("value") for e in container["env"]}
    assert env_vars["BEAMHUB_USER"] == "alice" and env_vars["BEAMHUB_UID"] == "2001"
    assert env_vars["BEAMHUB_ENVIRONMENT"] == slug and env_vars["BEAMHUB_QOS"] == env.qos


async def test_other_claims_give_another_pod(standin_kubeconfig):
    pod = await _pod(BOB, "tomo")
    assert pod["spec"]["securityContext"]["runAsUser"] == 2002
    assert pod["spec"]["securityContext"]["supplementalGroups"] == [3002]
    paths = [m["mountPath"] for m in pod["spec"]["containers"][0]["volumeMounts"]]
    assert "/data/raw/tomo" in paths


async def test_forged_environment_is_refused_before_any_pod(standin_kubeconfig):
    with pytest.raises(web.HTTPError) as err:
        await _pod(BOB, "phasing-gpu")
    assert err.value.status_code == 403


async def test_scheduler_can_be_turned_off(standin_kubeconfig):
    pod = await _pod(ALICE, "scipy", use_beamhub_scheduler=False)
    assert pod["spec"].get("schedulerName") in (None, "default-scheduler")


def test_data_volumes_follow_the_mount_groups():
    tomo = CATALOG.get("tomo")
    settings = ClusterSettings(data_volumes=VOLUMES, home_volume={"nfs": {"server": "h", "path": "/home"}})
    outsider = Identity("eve", 2100, 2100, (), ("visitors",))
    names = [v["name"] for v in environment_overrides(tomo, outsider, settings)["volumes"]]
    assert names == ["data-public", "home"]  # no raw tomography data outside the tomo group
    mounts = environment_overrides(tomo, BOB, settings)["volume_mounts"]
    home = next(m for m in mounts if m["name"] == "home")
    assert home["subPath"] == "bob" and home["readOnly"] is False


def test_besteffort_has_no_requests_or_limits():
    env = CATALOG.get("scipy").__class__(**{**CATALOG.get("scipy").__dict__, "qos": "besteffort"})
    overrides = environment_overrides(env, ALICE, ClusterSettings())
    assert overrides["cpu_guarantee"] is None and overrides["mem_limit"] is None


async def test_site_settings_from_z2jh_are_kept_not_replaced(standin_kubeconfig):
    """z2jh's labels (its NetworkPolicy needs them), tolerations, env and user PVC survive, once."""
    site = {
        "extra_labels": {"hub.jupyter.org/network-access-hub": "true"},
        "tolerations": [
            {"key": "hub.jupyter.org/dedicated", "operator": "Equal", "value": "user", "effect": "NoSchedule"}
        ],
        "node_selector": {"pool": "users"},
        "environment": {"SITE": "1"},
        "volumes": [{"name": "home", "persistentVolumeClaim": {"claimName": "claim-alice"}}],
        "volume_mounts": [{"name": "home", "mountPath": "/home/jovyan"}],
        "data_volumes": {"raw-spi": {"nfs": {"server": "nfs", "path": "/raw/spi"}}},
    }
    pod = await _pod(ALICE, "phasing-gpu", times=2, **site)
    spec, container = pod["spec"], pod["spec"]["containers"][0]
    assert pod["metadata"]["labels"]["hub.jupyter.org/network-access-hub"] == "true"
    assert pod["metadata"]["labels"]["beamhub.io/environment"] == "phasing-gpu"
    assert [t["key"] for t in spec["tolerations"]] == ["hub.jupyter.org/dedicated", "nvidia.com/gpu"]
    assert spec["nodeSelector"] == {"pool": "users", "nvidia.com/gpu.present": "true"}
    assert [v["name"] for v in spec["volumes"]] == ["home", "data-raw-spi"]
    assert [m["name"] for m in container["volumeMounts"]] == ["home", "data-raw-spi"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["SITE"] == "1" and env["BEAMHUB_USER"] == "alice"


async def test_example_notebooks_are_copied_on_first_start_only(standin_kubeconfig, tmp_path):
    import subprocess

    pod = await _pod(ALICE, "scipy")
    hook = pod["spec"]["containers"][0]["lifecycle"]["postStart"]["exec"]["command"]
    assert hook[:2] == ["/bin/sh", "-c"] and "/opt/beamhub-notebooks" in hook[2]
    # run the hook's shell for real against a fake image folder and home
    examples, home = tmp_path / "examples", tmp_path / "home"
    examples.mkdir()
    home.mkdir()
    (examples / "tomography.ipynb").write_text("{}")
    script = hook[2].replace("/opt/beamhub-notebooks", str(examples))
    subprocess.run(["/bin/sh", "-c", script], env={"HOME": str(home)}, check=True)
    assert (home / "tomography.ipynb").read_text() == "{}"
    (home / "tomography.ipynb").write_text("edited")
    (home / "tomography.ipynb").unlink()  # the user deleted it: it must not come back
    subprocess.run(["/bin/sh", "-c", script], env={"HOME": str(home)}, check=True)
    assert not (home / "tomography.ipynb").exists()


def test_the_examples_copy_gives_notebooks_and_docs_once_and_keeps_the_users_files(tmp_path):
    """The postStart command, run by a real shell: notebooks and docs/ on the first start only."""
    examples, home = tmp_path / "examples", tmp_path / "home"
    (examples / "docs" / "figures").mkdir(parents=True)
    (examples / "a.ipynb").write_text("{}")
    (examples / "docs" / "tomo.md").write_text("# tomo")
    (examples / "docs" / "figures" / "f.png").write_bytes(b"png")
    home.mkdir()
    (home / "a.ipynb").write_text("mine")
    command = examples_copy_command(str(examples))
    subprocess.run(["/bin/sh", "-c", command], env={"HOME": str(home), "PATH": "/usr/bin:/bin"}, check=True)
    assert (home / "a.ipynb").read_text() == "mine"  # never overwritten
    assert (home / "docs" / "tomo.md").read_text() == "# tomo" and (home / "docs" / "figures" / "f.png").exists()
    (home / "docs" / "tomo.md").unlink()  # the user deletes a page: a later start does not bring it back
    subprocess.run(["/bin/sh", "-c", command], env={"HOME": str(home), "PATH": "/usr/bin:/bin"}, check=True)
    assert not (home / "docs" / "tomo.md").exists()
