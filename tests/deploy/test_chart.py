"""The Helm chart deploy/helm/beamhub, rendered by Helm's engine without a cluster.

No API server is involved at all (Helm's offline render: `lookup` answers nothing), and the
jupyterhub dependency is not fetched: these tests cover our own templates and the values we
hand to it. Every rendered object is checked against the Kubernetes API schema of the oldest
supported and the newest known Kubernetes version.
"""

from __future__ import annotations

import copy
import json
import re

import helm_python as helm
import pytest
import yaml
from deploy_render import (
    CHART,
    EXAMPLES,
    KUBE_VERSIONS,
    NAMESPACE,
    RELEASE,
    REPO,
    find,
    load_values,
    merge_values,
    object_errors,
    one,
    render,
    render_objects,
    validate_schema,
)

from beamhub.hub.catalog import QOS_CLASSES, parse_catalog
from beamhub.scheduler.settings import SchedulerSettings

VALUE_SETS = [pytest.param(None, id="defaults")] + [pytest.param(path, id=path.stem) for path in EXAMPLES]
NAMESPACED = {"ConfigMap", "Deployment", "Service", "ServiceAccount", "Role", "RoleBinding", "NetworkPolicy"}
CLUSTER_WIDE = {"ClusterRole", "ClusterRoleBinding", "PriorityClass"}


def values_of(path) -> dict | None:
    return None if path is None else load_values(path)


def merged_values(path) -> dict:
    return merge_values(values_of(path))


def data(objects, name: str, key: str) -> str:
    return one(objects, "ConfigMap", name)["data"][key]


# ---- the chart as a package -------------------------------------------------------------


def test_chart_depends_on_a_pinned_zero_to_jupyterhub_4():
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    (dep,) = chart["dependencies"]
    assert dep["name"] == "jupyterhub"
    assert dep["repository"] == "https://hub.jupyter.org/helm-chart/"
    assert re.fullmatch(r"4\.\d+\.\d+", dep["version"]), "pin one exact 4.x release"
    assert chart["kubeVersion"].startswith(">=1.28")


def test_every_values_key_is_commented():
    """Like z2jh's values.yaml: each key has a comment right above it."""
    lines = (CHART / "values.yaml").read_text().splitlines()
    key = re.compile(r"^\s*[A-Za-z_][\w.\-/]*:(\s|$)")
    uncommented = []
    previous = ""
    for number, line in enumerate(lines, 1):
        if key.match(line) and not previous.lstrip().startswith("#"):
            uncommented.append(f"line {number}: {line.strip()}")
        if line.strip():
            previous = line
    assert not uncommented, "keys without a comment above them:\n" + "\n".join(uncommented)


def test_helm_lint_finds_nothing_but_the_unfetched_dependency():
    for values_file in [None, *EXAMPLES]:
        report = helm.lint(str(CHART), values_of(values_file), kube_version="v1.28.0")
        assert not report["errors"]
        serious = [m["error"] for m in report["messages"] if m["severity"] >= 2]
        assert serious == ["chart directory is missing these dependencies: jupyterhub"], serious


def test_catalog_file_is_the_shipped_catalog():
    """files/catalog.yaml is a link to hub/catalog.yaml, so the chart never drifts from it."""
    link = CHART / "files" / "catalog.yaml"
    assert link.is_symlink()
    assert link.resolve() == (REPO / "hub" / "catalog.yaml").resolve()


# ---- rendering and the Kubernetes schema ------------------------------------------------


@pytest.mark.parametrize("values_file", VALUE_SETS)
def test_renders_without_a_cluster_and_every_object_validates_against_the_kubernetes_schema(values_file):
    objects = render_objects(values_of(values_file))
    assert len(objects) >= 10
    problems = []
    for obj in objects:
        for version in KUBE_VERSIONS:
            problems += [
                f"{obj['kind']}/{obj['metadata']['name']} (Kubernetes {version}): {e}"
                for e in object_errors(obj, version)
            ]
    assert not problems, "\n".join(problems)
    names = [(o["kind"], o["metadata"]["name"]) for o in objects]
    assert len(names) == len(set(names)), "two objects share a kind and name"
    for obj in objects:
        meta = obj["metadata"]
        assert obj["kind"] in NAMESPACED | CLUSTER_WIDE, obj["kind"]
        assert (meta.get("namespace") == NAMESPACE) == (obj["kind"] in NAMESPACED), meta["name"]
        assert meta["labels"]["app.kubernetes.io/instance"] == RELEASE
        assert meta["labels"]["app.kubernetes.io/part-of"] == "beamhub"


def test_default_objects():
    kinds = sorted((o["kind"], o["metadata"]["name"]) for o in render_objects())
    assert kinds == sorted(
        [
            ("ConfigMap", "beamhub-catalog"),
            ("ConfigMap", "beamhub-hub-settings"),
            ("ConfigMap", "beamhub-scheduler-config"),
            ("Deployment", "beamhub-scheduler"),
            ("Service", "beamhub-scheduler"),
            ("ServiceAccount", "beamhub-scheduler"),
            ("ClusterRole", f"beamhub-scheduler-{NAMESPACE}"),
            ("ClusterRoleBinding", f"beamhub-scheduler-{NAMESPACE}"),
            ("Role", "beamhub-scheduler"),
            ("RoleBinding", "beamhub-scheduler"),
            ("Role", "beamhub-jobs"),
            ("RoleBinding", "beamhub-jobs"),
            ("PriorityClass", "beamhub-guaranteed"),
            ("PriorityClass", "beamhub-burstable"),
            ("PriorityClass", "beamhub-besteffort"),
            ("NetworkPolicy", "beamhub-scheduler"),
        ]
    )


# ---- values.schema.json -----------------------------------------------------------------

TYPOS = [
    pytest.param({"schedular": {"enabled": True}}, "schedular", id="top-level"),
    pytest.param({"scheduler": {"extender": {"wieght": 5}}}, "wieght", id="extender-key"),
    pytest.param(
        {"scheduler": {"extender": {"settings": {"stratgy": "load-aware"}}}}, "stratgy", id="extender-setting"
    ),
    pytest.param({"scheduler": {"extender": {"settings": {"strategy": "fastest"}}}}, "strategy", id="unknown-strategy"),
    pytest.param(
        {"sessions": {"storage": {"dataVolumes": {"raw": {"nsf": {"server": "a", "path": "/x"}}}}}},
        "nsf",
        id="volume-source",
    ),
    pytest.param({"priorityClasses": {"values": {"gold": 5}}}, "gold", id="qos-class"),
    pytest.param(
        {
            "catalog": {
                "environments": [
                    {
                        "slug": "x",
                        "title": "X",
                        "image": "i:1",
                        "kind": "cpu",
                        "qos_class": "burstable",
                        "resources": {"cpu": {"limit": 1}, "memory": {"limit": "1Gi"}},
                        "qos": "burstable",
                        "groups": ["*"],
                    }
                ]
            }
        },
        "qos_class",
        id="catalog-entry",
    ),
    pytest.param({"networkPolicy": {"enabeld": False}}, "enabeld", id="network-policy"),
    pytest.param({"scheduler": {"replicas": "two"}}, "replicas", id="wrong-type"),
]


@pytest.mark.parametrize("values, key", TYPOS)
def test_schema_rejects_a_typo_naming_the_key(values, key):
    with pytest.raises(helm.HelmValuesError, match=key):
        validate_schema(values)
    with pytest.raises(helm.HelmValuesError, match=key):  # and so does an install (render)
        render(values)


@pytest.mark.parametrize("values_file", VALUE_SETS)
def test_schema_accepts_defaults_and_examples(values_file):
    validate_schema(values_of(values_file) or {})


def test_schema_lists_only_real_scheduler_settings():
    """Every extender setting the schema admits is a field of the extender's own settings."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    admitted = set(schema["properties"]["scheduler"]["properties"]["extender"]["properties"]["settings"]["properties"])
    fields = {name for name, _, _ in SchedulerSettings.describe()}
    assert admitted <= fields, admitted - fields
    # the chart sets these itself
    assert fields - admitted == {"host", "port", "prometheus_url", "kube_api"}


# ---- the scheduler ----------------------------------------------------------------------

EXTENDER_FIELDS = {
    "urlPrefix",
    "filterVerb",
    "preemptVerb",
    "prioritizeVerb",
    "weight",
    "bindVerb",
    "enableHTTPS",
    "tlsConfig",
    "httpTimeout",
    "nodeCacheCapable",
    "managedResources",
    "ignorable",
}


def scheduler_config(objects) -> dict:
    return yaml.safe_load(data(objects, "beamhub-scheduler-config", "config.yaml"))


def test_kube_scheduler_configuration_defines_our_profile_and_extender():
    objects = render_objects()
    config = scheduler_config(objects)
    assert config["apiVersion"] == "kubescheduler.config.k8s.io/v1"
    assert config["kind"] == "KubeSchedulerConfiguration"
    assert [p["schedulerName"] for p in config["profiles"]] == ["beamhub-scheduler"]
    assert config["leaderElection"]["resourceNamespace"] == NAMESPACE
    (extender,) = config["extenders"]
    assert set(extender) <= EXTENDER_FIELDS
    assert extender == {
        "urlPrefix": "http://127.0.0.1:8890",
        "filterVerb": "filter",
        "prioritizeVerb": "prioritize",
        "weight": 5,
        "nodeCacheCapable": True,
        "enableHTTPS": False,
        "httpTimeout": "5s",
        "ignorable": True,
        "managedResources": [],
    }
    # the extender container listens where kube-scheduler calls it, in the same pod
    pod = one(objects, "Deployment", "beamhub-scheduler")["spec"]["template"]["spec"]
    containers = {c["name"]: c for c in pod["containers"]}
    assert containers["kube-scheduler"]["image"].startswith("registry.k8s.io/kube-scheduler:v1.")
    assert "--config=/etc/beamhub/scheduler/config.yaml" in containers["kube-scheduler"]["command"]
    assert containers["extender"]["command"][:2] == ["beamhub", "scheduler"]
    assert containers["extender"]["ports"][0]["containerPort"] == 8890


def test_via_plugin_configures_beamhubload_with_the_extenders_settings_and_runs_its_kube_scheduler():
    """scheduler.extender.via: plugin -- the same questions in-process (deploy/cluster/loadaware)."""
    values = {
        "scheduler": {
            "extender": {"via": "plugin", "pluginCacheSeconds": 0.5, "managedResources": [{"name": "nvidia.com/gpu"}]}
        }
    }
    objects = render_objects(values)
    config = scheduler_config(objects)
    assert "extenders" not in config
    (profile,) = config["profiles"]
    assert profile["plugins"]["multiPoint"]["enabled"] == [{"name": "BeamHubLoad", "weight": 5}]
    (plugin,) = profile["pluginConfig"]
    assert plugin == {
        "name": "BeamHubLoad",
        "args": {
            "extenderURL": "http://127.0.0.1:8890",
            "cacheSeconds": 0.5,
            "timeout": "5s",
            "ignorable": True,
            "managedResources": ["nvidia.com/gpu"],
        },
    }
    pod = one(objects, "Deployment", "beamhub-scheduler")["spec"]["template"]["spec"]
    containers = {c["name"]: c for c in pod["containers"]}
    assert containers["kube-scheduler"]["command"][0] == "beamhub-kube-scheduler"
    # the plugin reads exactly these arguments (its Args struct's json names)
    source = (REPO / "deploy/cluster/loadaware/loadaware.go").read_text()
    for key in plugin["args"]:
        assert f'`json:"{key}"`' in source, key


@pytest.mark.parametrize("values_file", VALUE_SETS)
def test_extender_settings_file_is_accepted_by_beamhub_scheduler(values_file, tmp_path):
    """extender.yaml goes through the extender's own settings validation unchanged."""
    values = merged_values(values_file)
    objects = render_objects(values_of(values_file))
    settings = SchedulerSettings.from_mapping(
        yaml.safe_load(data(objects, "beamhub-scheduler-config", "extender.yaml"))
    )
    extender = values["scheduler"]["extender"]
    assert (settings.host, settings.port) == ("0.0.0.0", extender["port"])
    assert settings.prometheus_url == (extender["prometheusUrl"] or None)
    # node names only from kube-scheduler -> the extender must watch Nodes itself
    assert settings.kube_api == ("in-cluster" if extender["nodeCacheCapable"] else None)
    assert scheduler_config(objects)["extenders"][0]["nodeCacheCapable"] is extender["nodeCacheCapable"]


def test_gpu_example_limits_the_extender_to_gpu_pods():
    objects = render_objects(load_values(REPO / "deploy/examples/values-gpu-extender.yaml"))
    (extender,) = scheduler_config(objects)["extenders"]
    assert extender["managedResources"] == [{"name": "nvidia.com/gpu", "ignoredByScheduler": False}]
    assert extender["weight"] == 10 and extender["ignorable"] is True
    deployment = one(objects, "Deployment", "beamhub-scheduler")
    assert deployment["spec"]["replicas"] == 2
    settings = yaml.safe_load(data(objects, "beamhub-scheduler-config", "extender.yaml"))
    assert settings["strategy"] == "target-load-packing"


def test_scheduler_pod_runs_unprivileged():
    pod = one(render_objects(), "Deployment", "beamhub-scheduler")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    for container in pod["containers"]:
        sc = container["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"]
        assert sc["runAsUser"] != 0 and sc["readOnlyRootFilesystem"] is True


def test_scheduler_rbac_binds_its_service_account():
    objects = render_objects()
    binding = one(objects, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == one(objects, "ClusterRole")["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "beamhub-scheduler", "namespace": NAMESPACE}]
    rules = one(objects, "ClusterRole")["rules"]
    granted = {
        (group, res, verb) for r in rules for group in r["apiGroups"] for res in r["resources"] for verb in r["verbs"]
    }
    for need in [
        ("", "pods/binding", "create"),
        ("", "nodes", "watch"),
        ("", "pods", "list"),
        ("", "events", "create"),
        ("storage.k8s.io", "csinodes", "list"),
    ]:
        assert need in granted, need
    lease_rules = one(objects, "Role", "beamhub-scheduler")["rules"]
    assert {
        "resourceNames": ["beamhub-scheduler"],
        "apiGroups": ["coordination.k8s.io"],
        "resources": ["leases"],
        "verbs": ["get", "update"],
    } in lease_rules


def test_scheduler_disabled_renders_no_scheduler_and_tells_the_hub():
    objects = render_objects({"scheduler": {"enabled": False}})
    assert not find(objects, "Deployment") and not find(objects, "NetworkPolicy")
    spawner = json.loads(data(objects, "beamhub-hub-settings", "settings.json"))["BeamSpawner"]
    assert spawner["use_beamhub_scheduler"] is False and spawner["scheduler_summary_url"] == ""


def test_network_policy_admits_the_hub_and_extra_sources_on_the_extender_port_only():
    objects = render_objects(load_values(REPO / "deploy/examples/values-keycloak-cephfs.yaml"))
    policy = one(objects, "NetworkPolicy")["spec"]
    assert policy["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "scheduler"
    assert policy["policyTypes"] == ["Ingress"]
    hub, prometheus = policy["ingress"]
    assert hub["from"] == [
        {"podSelector": {"matchLabels": {"app": "jupyterhub", "component": "hub", "release": RELEASE}}}
    ]
    assert prometheus["from"][0]["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "monitoring"}
    for rule in policy["ingress"]:
        assert rule["ports"] == [{"port": "extender", "protocol": "TCP"}]


# ---- priority classes -------------------------------------------------------------------


def test_one_priority_class_per_qos_class_named_as_the_spawner_expects():
    objects = render_objects()
    spawner = json.loads(data(objects, "beamhub-hub-settings", "settings.json"))["BeamSpawner"]
    classes = {o["metadata"]["name"]: o for o in find(objects, "PriorityClass")}
    assert set(classes) == {f"{spawner['priority_class_prefix']}-{qos}" for qos in QOS_CLASSES}
    values = {qos: classes[f"beamhub-{qos}"]["value"] for qos in QOS_CLASSES}
    assert values["guaranteed"] > values["burstable"] > values["besteffort"]
    assert classes["beamhub-guaranteed"]["preemptionPolicy"] == "PreemptLowerPriority"
    assert classes["beamhub-besteffort"]["preemptionPolicy"] == "Never"
    assert not any(c["globalDefault"] for c in classes.values())


def test_priority_classes_can_be_left_to_the_operator():
    assert not find(render_objects({"priorityClasses": {"create": False}}), "PriorityClass")


# ---- the hub: catalog, settings, z2jh values --------------------------------------------


def test_default_catalog_configmap_is_the_shipped_catalog_and_valid():
    text = data(render_objects(), "beamhub-catalog", "catalog.yaml")
    assert text == (REPO / "hub" / "catalog.yaml").read_text()
    assert len(parse_catalog(yaml.safe_load(text))) >= 5


def test_catalog_from_values_replaces_the_shipped_one_and_is_valid():
    objects = render_objects(load_values(REPO / "deploy/examples/values-nfs-small.yaml"))
    catalog = parse_catalog(yaml.safe_load(data(objects, "beamhub-catalog", "catalog.yaml")))
    assert [e.slug for e in catalog] == ["scipy", "tomo"]
    assert catalog.get("tomo").mounts[0].name == "raw-tomo"


@pytest.mark.parametrize("values_file", VALUE_SETS)
def test_hub_settings_name_real_beamspawner_traits_and_real_objects(values_file):
    from beamhub.hub.spawner import BeamSpawner

    values = merged_values(values_file)
    objects = render_objects(values_of(values_file))
    settings = json.loads(data(objects, "beamhub-hub-settings", "settings.json"))
    spawner = settings["BeamSpawner"]
    assert set(spawner) <= set(BeamSpawner.class_trait_names(config=True)), set(spawner) - set(
        BeamSpawner.class_trait_names(config=True)
    )
    assert settings["namespace"] == NAMESPACE
    # the hub mounts both ConfigMaps in one folder, where the paths in settings.json point
    hub = values["jupyterhub"]["hub"]
    (volume,) = [v for v in hub["extraVolumes"] if v["name"] == "beamhub"]
    assert [src["configMap"]["name"] for src in volume["projected"]["sources"]] == [
        "beamhub-catalog",
        "beamhub-hub-settings",
    ]
    (mount,) = [m for m in hub["extraVolumeMounts"] if m["name"] == "beamhub"]
    assert mount["readOnly"] is True
    assert spawner["catalog_path"] == settings["catalog_path"] == f"{mount['mountPath']}/catalog.yaml"
    assert "settings.json" in one(objects, "ConfigMap", "beamhub-hub-settings")["data"]
    assert "catalog.yaml" in one(objects, "ConfigMap", "beamhub-catalog")["data"]
    # the scheduler profile and Service it names are the ones rendered
    if values["scheduler"]["enabled"]:
        assert spawner["beamhub_scheduler_name"] == scheduler_config(objects)["profiles"][0]["schedulerName"]
        service = one(objects, "Service", "beamhub-scheduler")
        port = service["spec"]["ports"][0]["port"]
        assert spawner["scheduler_summary_url"] == f"http://beamhub-scheduler.{NAMESPACE}.svc:{port}/summary"
    # storage and GPU placement are handed over as given
    storage = values["sessions"]["storage"]
    assert spawner["data_volumes"] == storage["dataVolumes"]
    assert spawner["home_volume"] == storage["home"].get("volume")
    assert spawner["gpu_node_selector"] == values["sessions"]["gpu"]["nodeSelector"]


def test_storage_examples_cover_every_catalog_mount():
    """A site example names a volume for every data mount of the catalog it serves."""
    shipped = parse_catalog(yaml.safe_load((REPO / "hub" / "catalog.yaml").read_text()))
    for path in EXAMPLES:
        values = load_values(path)
        volumes = values.get("sessions", {}).get("storage", {}).get("dataVolumes")
        if volumes is None:
            continue
        catalog = (
            parse_catalog({"environments": values["catalog"]["environments"]})
            if values.get("catalog", {}).get("environments")
            else shipped
        )
        wanted = {m.name for env in catalog for m in env.mounts}
        assert wanted <= set(volumes), f"{path.name}: no volume for {wanted - set(volumes)}"


@pytest.mark.parametrize("values_file", VALUE_SETS)
def test_hub_uses_beam_authenticator_and_spawner_with_config_as_data(values_file):
    from importlib.metadata import entry_points

    hub = merged_values(values_file)["jupyterhub"]["hub"]
    jupyterhub = hub["config"]["JupyterHub"]
    authenticators = {e.name: e.value for e in entry_points(group="jupyterhub.authenticators")}
    spawners = {e.name: e.value for e in entry_points(group="jupyterhub.spawners")}
    assert authenticators[jupyterhub["authenticator_class"]] == "beamhub.hub.auth:BeamAuthenticator"
    assert spawners[jupyterhub["spawner_class"]] == "beamhub.hub.spawner:BeamSpawner"
    assert hub["image"]["name"] == "ghcr.io/beamhub/hub"
    # no code pasted into YAML beyond importing and calling our tested module
    code = "\n".join(hub["extraConfig"].values()).split("\n")
    assert [line for line in code if line.strip()] == ["from beamhub.hub.k8sconfig import configure", "configure(c)"]


def test_hub_finds_the_catalog_where_k8sconfig_looks_by_default():
    from beamhub.hub import k8sconfig

    settings = json.loads(data(render_objects(), "beamhub-hub-settings", "settings.json"))
    assert settings["catalog_path"] == k8sconfig.DEFAULT_CATALOG_PATH


def test_k8sconfig_configures_beamspawner_from_the_rendered_settings(tmp_path):
    """The chart's files, as the hub pod sees them, through the hub's own configure()."""
    from traitlets.config import Config

    from beamhub.hub.k8sconfig import configure

    values = load_values(REPO / "deploy/examples/values-keycloak-cephfs.yaml")
    objects = render_objects(values)
    (tmp_path / "catalog.yaml").write_text(data(objects, "beamhub-catalog", "catalog.yaml"))
    (tmp_path / "settings.json").write_text(data(objects, "beamhub-hub-settings", "settings.json"))
    c = Config()
    configure(
        c, {"BEAMHUB_CATALOG": str(tmp_path / "catalog.yaml"), "BEAMHUB_HUB_SETTINGS": str(tmp_path / "settings.json")}
    )
    expected = json.loads((tmp_path / "settings.json").read_text())["BeamSpawner"]
    expected["catalog_path"] = str(tmp_path / "catalog.yaml")
    assert {key: c.BeamSpawner[key] for key in expected} == expected
    assert c.BeamSpawner.data_volumes["raw-tomo"] == {
        "persistentVolumeClaim": {"claimName": "cephfs-raw-tomo", "readOnly": True}
    }


def test_z2jh_helpers_that_would_fight_ours_are_off():
    z2jh = merged_values(None)["jupyterhub"]
    assert z2jh["scheduling"]["userScheduler"]["enabled"] is False
    assert z2jh["scheduling"]["podPriority"]["enabled"] is False
    # privileged iptables init container: sessions never run privileged
    assert z2jh["singleuser"]["cloudMetadata"]["blockWithIptables"] is False


def test_mismatched_hub_mounts_are_refused_with_a_clear_message():
    with pytest.raises(helm.HelmRenderError, match=r"jupyterhub\.hub\.extraVolumes must include .*site-catalog"):
        render({"fullnameOverride": "site"})
    hub = copy.deepcopy(merged_values(None)["jupyterhub"]["hub"])
    for source in hub["extraVolumes"][0]["projected"]["sources"]:
        source["configMap"]["name"] = source["configMap"]["name"].replace("beamhub-", "site-")
    objects = render_objects({"fullnameOverride": "site", "jupyterhub": {"hub": hub}})
    assert one(objects, "ConfigMap", "site-catalog") and one(objects, "PriorityClass", "site-guaranteed")
    # separate configMap volumes work too, as long as both land in /etc/beamhub
    separate = {
        "extraVolumes": [
            {"name": "a", "configMap": {"name": "beamhub-catalog"}},
            {"name": "b", "configMap": {"name": "beamhub-hub-settings"}},
        ],
        "extraVolumeMounts": [{"name": "a", "mountPath": "/etc/beamhub"}, {"name": "b", "mountPath": "/etc/beamhub/"}],
    }
    assert render_objects({"jupyterhub": {"hub": separate}})
    separate["extraVolumeMounts"][1]["mountPath"] = "/srv/settings"
    with pytest.raises(helm.HelmRenderError, match='extraVolumeMounts must mount the volume "b" at /etc/beamhub'):
        render({"jupyterhub": {"hub": separate}})


def test_two_schedulers_for_session_pods_are_refused():
    with pytest.raises(helm.HelmRenderError, match="userScheduler"):
        render({"jupyterhub": {"scheduling": {"userScheduler": {"enabled": True}}}})


# ---- batch jobs -------------------------------------------------------------------------


def test_jobs_rbac_lets_only_the_hub_manage_jobs_in_its_namespace():
    objects = render_objects()
    binding = one(objects, "RoleBinding", "beamhub-jobs")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "hub", "namespace": NAMESPACE}]
    rules = one(objects, "Role", "beamhub-jobs")["rules"]
    granted = {(g, r, v) for rule in rules for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}
    for need in [
        ("batch", "jobs", "create"),
        ("batch", "jobs", "delete"),
        ("", "pods/log", "get"),
        ("", "services", "create"),
    ]:
        assert need in granted
    assert not any(g == "kubeflow.org" for g, _, _ in granted)
    mpi = one(render_objects({"jobs": {"mpiOperator": True}}), "Role", "beamhub-jobs")["rules"]
    assert any("kubeflow.org" in r["apiGroups"] and "mpijobs" in r["resources"] for r in mpi)
    assert not find(render_objects({"jobs": {"enabled": False}}), "Role", "beamhub-jobs")


def test_kube_scheduler_image_follows_the_cluster_unless_set():
    """Empty tag: the API server's own version (helm's Capabilities), which the skew policy allows."""

    def scheduler_image(values):
        text = render(values)["beamhub/templates/scheduler/deployment.yaml"]
        return re.search(r"image: (\S*kube-scheduler\S*)", text).group(1)

    default = scheduler_image({})
    assert re.fullmatch(r"registry\.k8s\.io/kube-scheduler:v1\.\d+\.\d+", default), default
    pinned = {"scheduler": {"kubeScheduler": {"image": {"tag": "v1.33.2"}}}}
    assert scheduler_image(pinned) == "registry.k8s.io/kube-scheduler:v1.33.2"
