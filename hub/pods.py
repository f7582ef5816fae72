"""Pure pod building: (environment, identity, site settings) -> what a pod needs, no API calls.

One module serves both BeamSpawner (as KubeSpawner trait values) and the batch-job manifests
(as pod spec pieces), as KubeSpawner's ``objects.make_pod`` serves its spawner, so a session pod
and a job pod of the same environment and user get the same identity, resources, QoS class,
PriorityClass, GPU placement and data volumes.  Nothing here imports KubeSpawner or a
Kubernetes client: these are functions of data, tested without an API server.

* identity -> security context: runAsUser/runAsGroup/fsGroup/supplementalGroups from the
  claims, runAsNonRoot, no privilege escalation, every capability dropped, seccomp
  RuntimeDefault (what PodSecurity ``restricted`` demands);
* resources -> requests/limits that give the catalog's QoS class (guaranteed: requests ==
  limits; burstable: requests < limits; besteffort: neither), a PriorityClass per QoS class;
* GPUs -> ``nvidia.com/gpu`` limits, a GPU node selector and toleration;
* data volumes by group (raw data read-only, user space read-write).
"""

from __future__ import annotations

import copy
import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

from beamhub.hub.catalog import BEST_EFFORT, Environment, Mount
from beamhub.hub.identity import Identity
from beamhub.hub.session_env import session_environment

GPU_RESOURCE = "nvidia.com/gpu"

# Kubernetes label values: at most 63 characters, [A-Za-z0-9] at both ends, [-_.A-Za-z0-9] between.
LABEL_VALUE_MAX = 63
_LABEL_VALUE = re.compile(r"(?:[A-Za-z0-9](?:[-_.A-Za-z0-9]*[A-Za-z0-9])?)?")
_LABEL_BAD = re.compile(r"[^-_.A-Za-z0-9]+")


@dataclass(frozen=True)
class ClusterSettings:
    """Site settings that, with an environment and an identity, decide a pod."""

    scheduler_name: str | None = "beamhub-scheduler"
    priority_class_prefix: str = "beamhub"
    gpu_node_selector: dict = field(default_factory=lambda: {"nvidia.com/gpu.present": "true"})
    gpu_tolerations: tuple = ({"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"},)
    data_volumes: dict = field(default_factory=dict)  # mount name -> Kubernetes volume source
    home_volume: dict | None = None  # Kubernetes volume source for the user's space (read-write)
    home_sub_path: str = "{username}"
    home_mount_path: str = "/home/jovyan"
    examples_dir: str = "/opt/beamhub-notebooks"  # in the image; copied to a new user's home once


def label_value(text: str) -> str:
    """``text`` as a valid Kubernetes label value, unchanged when it already is one.

    SSO usernames such as ``a@b.org`` or ``Zoë Smith`` are not label values; the
    API server rejects the whole object.  Invalid runs become ``-``, the ends are
    trimmed to alphanumerics, and an altered (or over-long) value gets an
    8-hex-digit hash of the original so two names never share a label
    (``a@b.org`` -> ``a-b.org-1f8e2a4c``, distinct from ``a-b.org``).  The real
    name goes into an annotation beside it (:func:`owner_metadata`).
    """
    if len(text) <= LABEL_VALUE_MAX and _LABEL_VALUE.fullmatch(text):
        return text
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]
    stem = _LABEL_BAD.sub("-", text).strip("-_.")[: LABEL_VALUE_MAX - len(digest) - 1].rstrip("-_.")
    return f"{stem}-{digest}" if stem else digest


def owner_metadata(username: str) -> tuple[dict[str, str], dict[str, str]]:
    """(labels, annotations) naming a pod's owner: the label selectable, the annotation exact."""
    return {"beamhub.io/owner": label_value(username)}, {"beamhub.io/owner": username}


def security_context(identity: Identity) -> tuple[dict, dict]:
    """(pod securityContext, container securityContext) that run as the SSO identity, nothing more."""
    pod = {
        "runAsUser": identity.uid,
        "runAsGroup": identity.gid,
        "fsGroup": identity.gid,
        "runAsNonRoot": True,
        "supplementalGroups": list(identity.gids),
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    container = {
        "runAsUser": identity.uid,
        "runAsGroup": identity.gid,
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    return pod, container


def mounted(env: Environment, identity: Identity, settings: ClusterSettings) -> list[Mount]:
    """The catalog mounts a pod of ``env`` gets: those the user's groups allow and the site gives a volume."""
    groups = set(identity.groups)
    return [m for m in env.mounts if m.name in settings.data_volumes and m.allowed_for(groups)]


def environment_overrides(
    env: Environment, identity: Identity, settings: ClusterSettings, jobs_url: str = ""
) -> dict[str, Any]:
    """KubeSpawner trait values for starting ``env`` as ``identity`` (a pure function).

    ``jobs_url`` becomes the session's BEAMHUB_JOBS_URL (omitted when empty).
    """
    pod_sc, container_sc = security_context(identity)
    overrides: dict[str, Any] = {
        "image": env.image,
        "uid": identity.uid,
        "gid": identity.gid,
        "fs_gid": identity.gid,
        "supplemental_gids": list(identity.gids),
        "privileged": False,
        "allow_privilege_escalation": False,
        "pod_security_context": pod_sc,
        "container_security_context": container_sc,
        "priority_class_name": f"{settings.priority_class_prefix}-{env.qos}",
        "extra_labels": {"beamhub.io/environment": env.slug, "beamhub.io/qos": env.qos},
        "extra_annotations": {"beamhub.io/environment-title": env.title},
        "environment": {},  # filled below, once the mounts are known
        "node_selector": dict(env.node_selector),
        "tolerations": [],
        "extra_resource_guarantees": {},
        "extra_resource_limits": {},
    }
    if settings.scheduler_name:
        overrides["scheduler_name"] = settings.scheduler_name

    if env.qos == BEST_EFFORT:
        # BestEffort means no requests and no limits at all
        overrides.update(cpu_guarantee=None, cpu_limit=None, mem_guarantee=None, mem_limit=None)
    else:
        overrides.update(
            cpu_guarantee=env.cpu.guarantee or None,
            cpu_limit=env.cpu.limit,
            mem_guarantee=int(env.memory.guarantee) or None,
            mem_limit=int(env.memory.limit),
        )
    if env.gpus:
        # extended resources are never overcommitted: request == limit
        overrides["extra_resource_limits"] = {GPU_RESOURCE: str(env.gpus)}
        overrides["extra_resource_guarantees"] = {GPU_RESOURCE: str(env.gpus)}
        overrides["node_selector"] = {**settings.gpu_node_selector, **env.node_selector}
        overrides["tolerations"] = [dict(t) for t in settings.gpu_tolerations]

    volumes, mounts = [], []
    data = mounted(env, identity, settings)
    for mount in data:
        source = settings.data_volumes[mount.name]
        volumes.append({"name": f"data-{mount.name}", **copy.deepcopy(source)})
        mounts.append({"name": f"data-{mount.name}", "mountPath": mount.mount_path, "readOnly": mount.read_only})
    overrides["environment"] = session_environment(env, identity, mounts=data, jobs_url=jobs_url)
    if settings.home_volume:
        volumes.append({"name": "home", **copy.deepcopy(settings.home_volume)})
        mounts.append(
            {
                "name": "home",
                "mountPath": settings.home_mount_path,
                "readOnly": False,
                "subPath": settings.home_sub_path.format(username=identity.username, uid=identity.uid),
            }
        )
    overrides["volumes"] = volumes
    overrides["volume_mounts"] = mounts
    if settings.examples_dir:
        overrides["lifecycle_hooks"] = {
            "postStart": {"exec": {"command": ["/bin/sh", "-c", examples_copy_command(settings.examples_dir)]}}
        }
    return overrides


def examples_copy_command(examples_dir: str) -> str:
    """Shell that copies the image's example notebooks, and the kernel docs they link to (``docs/``),
    into $HOME on a user's first start only — each under its own marker, as the local spawner does."""
    return (
        f'[ -e "$HOME/.beamhub-examples" ] || {{ cp -n {examples_dir}/*.ipynb "$HOME"/ 2>/dev/null; '
        f'touch "$HOME/.beamhub-examples"; }}; '
        f'[ -e "$HOME/.beamhub-docs" ] || {{ cp -Rn {examples_dir}/docs "$HOME"/ 2>/dev/null; '
        f'touch "$HOME/.beamhub-docs"; }}; true'
    )


def quantity(value: Any) -> str:
    """A Kubernetes quantity for a number of cores or bytes: 2 -> "2", 0.5 -> "0.5"."""
    return str(int(value)) if float(value).is_integer() else f"{float(value):g}"


def container_resources(overrides: dict[str, Any], ranks: int = 1) -> dict[str, dict[str, str]]:
    """A container's ``resources`` from :func:`environment_overrides`, split over ``ranks`` pods.

    CPU in cores and memory in bytes, as Kubernetes quantities; extended resources (GPUs) are
    per pod, never split.
    """
    requests, limits = {}, {}
    if overrides["cpu_guarantee"]:
        requests["cpu"] = quantity(overrides["cpu_guarantee"] / ranks)
    if overrides["cpu_limit"]:
        limits["cpu"] = quantity(overrides["cpu_limit"] / ranks)
    if overrides["mem_guarantee"]:
        requests["memory"] = str(int(overrides["mem_guarantee"] // ranks))
    if overrides["mem_limit"]:
        limits["memory"] = str(int(overrides["mem_limit"] // ranks))
    requests.update(overrides["extra_resource_guarantees"])
    limits.update(overrides["extra_resource_limits"])
    return {k: v for k, v in (("requests", requests), ("limits", limits)) if v}
