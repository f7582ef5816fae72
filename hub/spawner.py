"""BeamSpawner: the environment catalog on Kubernetes, through KubeSpawner.

The same menu and launch page as the local spawner (``EnvironmentMenuMixin``);
the chosen environment and the SSO identity decide the pod:

* identity -> security context: runAsUser/runAsGroup/fsGroup/supplementalGroups
  from the claims, runAsNonRoot, no privilege escalation, every capability
  dropped, seccomp RuntimeDefault;
* resources -> requests/limits that give the catalog's QoS class
  (guaranteed: requests == limits; burstable: requests < limits;
  besteffort: neither), a PriorityClass per QoS class;
* GPUs -> ``nvidia.com/gpu`` limits, a GPU node selector and toleration;
* ``schedulerName`` of the BeamHub scheduler when it is enabled;
* data volumes by group (raw data read-only, user space read-write) from
  ``data_volumes`` (CephFS, NFS or PVC sources, configured per site);
* BEAMHUB_* environment.

:func:`environment_overrides` is a pure function of (environment, identity,
settings) to KubeSpawner trait values, tested without an API server.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from kubespawner import KubeSpawner
from traitlets import Bool, Dict, List, Unicode, default

from beamhub.hub.catalog import Environment
from beamhub.hub.identity import Identity
from beamhub.hub.menu import EnvironmentMenuMixin

GPU_RESOURCE = "nvidia.com/gpu"


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


def environment_overrides(env: Environment, identity: Identity, settings: ClusterSettings) -> dict[str, Any]:
    """KubeSpawner trait values for starting ``env`` as ``identity`` (a pure function)."""
    groups = set(identity.groups)
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
        "environment": {
            **env.local_env,
            **identity.environment(),
            "BEAMHUB_ENVIRONMENT": env.slug,
            "BEAMHUB_ENVIRONMENT_TITLE": env.title,
            "BEAMHUB_IMAGE": env.image,
            "BEAMHUB_QOS": env.qos,
        },
        "node_selector": dict(env.node_selector),
        "tolerations": [],
        "extra_resource_guarantees": {},
        "extra_resource_limits": {},
    }
    if settings.scheduler_name:
        overrides["scheduler_name"] = settings.scheduler_name

    if env.qos == "besteffort":
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
    for mount in env.mounts:
        source = settings.data_volumes.get(mount.name)
        if source is None or not mount.allowed_for(groups):
            continue
        volumes.append({"name": f"data-{mount.name}", **copy.deepcopy(source)})
        mounts.append({"name": f"data-{mount.name}", "mountPath": mount.mount_path, "readOnly": mount.read_only})
        overrides["environment"][f"BEAMHUB_DATA_{mount.name.upper().replace('-', '_')}"] = mount.mount_path
    if settings.home_volume:
        volumes.append({"name": "home", **copy.deepcopy(settings.home_volume)})
        mounts.append({"name": "home", "mountPath": settings.home_mount_path, "readOnly": False,
                       "subPath": settings.home_sub_path.format(username=identity.username, uid=identity.uid)})
    overrides["volumes"] = volumes
    overrides["volume_mounts"] = mounts
    if settings.examples_dir:
        overrides["lifecycle_hooks"] = {"postStart": {"exec": {"command": [
            "/bin/sh", "-c", examples_copy_command(settings.examples_dir)]}}}
    return overrides


def examples_copy_command(examples_dir: str) -> str:
    """Shell that copies the image's example notebooks into $HOME on a user's first start only."""
    return (f'[ -e "$HOME/.beamhub-examples" ] || {{ cp -n {examples_dir}/*.ipynb "$HOME"/ 2>/dev/null; '
            f'touch "$HOME/.beamhub-examples"; }}; true')


_DEFAULTS = ClusterSettings()  # one source of the defaults below


class BeamSpawner(EnvironmentMenuMixin, KubeSpawner):
    """KubeSpawner whose pods come from the catalog and the user's SSO identity."""

    use_beamhub_scheduler = Bool(
        True, config=True, help="Set schedulerName so the BeamHub load-aware scheduler places user pods."
    )
    beamhub_scheduler_name = Unicode(
        _DEFAULTS.scheduler_name, config=True, help="Name of the BeamHub scheduler profile."
    )
    priority_class_prefix = Unicode(
        _DEFAULTS.priority_class_prefix, config=True,
        help="PriorityClass of a pod is '<prefix>-<qos>' (beamhub-guaranteed, beamhub-burstable, ...).",
    )
    gpu_node_selector = Dict(
        dict(_DEFAULTS.gpu_node_selector), config=True, help="Node labels a GPU environment's pod requires."
    )
    gpu_tolerations = List(
        [dict(t) for t in _DEFAULTS.gpu_tolerations],
        config=True, help="Tolerations a GPU environment's pod gets (for tainted GPU nodes).",
    )
    data_volumes = Dict(
        {}, config=True,
        help="Kubernetes volume source per catalog mount name, e.g. "
        "{'raw-tomo': {'cephfs': {...}}, 'public': {'nfs': {'server': ..., 'path': ...}}}. "
        "A catalog mount without an entry here is left out.",
    )
    home_volume = Dict(
        None, allow_none=True, config=True,
        help="Volume source for users' own space (read-write), mounted at home_mount_path with "
        "subPath home_sub_path; None leaves user storage to KubeSpawner's own (storage_pvc_ensure).",
    )
    home_sub_path = Unicode(_DEFAULTS.home_sub_path, config=True, help="subPath of a user's space in home_volume.")
    home_mount_path = Unicode(_DEFAULTS.home_mount_path, config=True, help="Where a user's space is mounted.")
    examples_dir = Unicode(
        _DEFAULTS.examples_dir, config=True,
        help="Folder of example notebooks in the session images, copied into a user's home on the "
        "first start (a postStart hook); empty to turn it off.",
    )

    @default("profile_list")
    def _profile_list_default(self):
        return []  # the catalog, not KubeSpawner's profiles, is the menu

    def cluster_settings(self) -> ClusterSettings:
        return ClusterSettings(
            scheduler_name=self.beamhub_scheduler_name if self.use_beamhub_scheduler else None,
            priority_class_prefix=self.priority_class_prefix,
            gpu_node_selector=dict(self.gpu_node_selector),
            gpu_tolerations=tuple(self.gpu_tolerations),
            data_volumes=dict(self.data_volumes),
            home_volume=self.home_volume,
            home_sub_path=self.home_sub_path,
            home_mount_path=self.home_mount_path,
            examples_dir=self.examples_dir,
        )

    # traits the site (e.g. Zero to JupyterHub) may already set: ours are merged into theirs
    _MERGED_DICTS = ("extra_labels", "extra_annotations", "environment", "node_selector",
                     "extra_resource_guarantees", "extra_resource_limits", "lifecycle_hooks")
    _MERGED_LISTS = ("tolerations", "volumes", "volume_mounts")

    def apply_environment(self, env: Environment) -> None:
        """Set the pod's traits for ``env``, merging with what the site configured, never replacing it.

        z2jh puts labels (hub.jupyter.org/network-access-hub, which its NetworkPolicy needs),
        tolerations, node selectors, environment and the user's PVC on KubeSpawner; dropping them
        would break spawns.  The site's values are kept from the first call, so a second start of
        the same spawner does not pile ours up twice.
        """
        if self.identity is None:
            raise RuntimeError(
                f"no SSO identity in auth_state for {self.user.name}: BeamSpawner needs BeamAuthenticator"
            )
        if not hasattr(self, "_site_traits"):
            self._site_traits = {name: copy.deepcopy(getattr(self, name))
                                 for name in self._MERGED_DICTS + self._MERGED_LISTS}
        overrides = environment_overrides(env, self.identity, self.cluster_settings())
        if self.jobs_url:
            overrides["environment"]["BEAMHUB_JOBS_URL"] = self.jobs_url
        for name, value in overrides.items():
            site = self._site_traits.get(name)
            if name in self._MERGED_DICTS and site:
                value = {**site, **value}
            elif name in self._MERGED_LISTS and site:
                ours = {item.get("name") for item in value if isinstance(item, dict)}
                kept = [item for item in site if not (isinstance(item, dict) and item.get("name") in ours
                                                      and item.get("name"))]
                value = kept + value
            setattr(self, name, value)
        self.chosen_environment = env

    async def load_user_options(self):
        """KubeSpawner's hook at start: the catalog choice (already applied by apply_user_options)."""
        if self.chosen_environment is None:
            await self._apply_chosen_environment(self.user_options or {})
