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

from kubespawner import KubeSpawner
from traitlets import Bool, Dict, List, Unicode, default

from beamhub.hub.catalog import Environment
from beamhub.hub.menu import EnvironmentMenuMixin
from beamhub.hub.pods import ClusterSettings, environment_overrides

__all__ = ["BeamSpawner", "ClusterSettings", "environment_overrides"]

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
        _DEFAULTS.priority_class_prefix,
        config=True,
        help="PriorityClass of a pod is '<prefix>-<qos>' (beamhub-guaranteed, beamhub-burstable, ...).",
    )
    gpu_node_selector = Dict(
        dict(_DEFAULTS.gpu_node_selector), config=True, help="Node labels a GPU environment's pod requires."
    )
    gpu_tolerations = List(
        [dict(t) for t in _DEFAULTS.gpu_tolerations],
        config=True,
        help="Tolerations a GPU environment's pod gets (for tainted GPU nodes).",
    )
    data_volumes = Dict(
        {},
        config=True,
        help="Kubernetes volume source per catalog mount name, e.g. "
        "{'raw-tomo': {'cephfs': {...}}, 'public': {'nfs': {'server': ..., 'path': ...}}}. "
        "A catalog mount without an entry here is left out.",
    )
    home_volume = Dict(
        None,
        allow_none=True,
        config=True,
        help="Volume source for users' own space (read-write), mounted at home_mount_path with "
        "subPath home_sub_path; None leaves user storage to KubeSpawner's own (storage_pvc_ensure).",
    )
    home_sub_path = Unicode(_DEFAULTS.home_sub_path, config=True, help="subPath of a user's space in home_volume.")
    home_mount_path = Unicode(_DEFAULTS.home_mount_path, config=True, help="Where a user's space is mounted.")
    examples_dir = Unicode(
        _DEFAULTS.examples_dir,
        config=True,
        help="Folder of example notebooks in the session images, copied into a user's home on the "
        "first start (a postStart hook); empty to turn it off.",
    )

    @default("automount_service_account_token")
    def _automount_default(self):
        return False  # a session never holds cluster credentials, whatever service account it has

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
    _MERGED_DICTS = (
        "extra_labels",
        "extra_annotations",
        "environment",
        "node_selector",
        "extra_resource_guarantees",
        "extra_resource_limits",
        "lifecycle_hooks",
    )
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
            self._site_traits = {
                name: copy.deepcopy(getattr(self, name)) for name in self._MERGED_DICTS + self._MERGED_LISTS
            }
        overrides = environment_overrides(env, self.identity, self.cluster_settings(), jobs_url=self.jobs_url)
        for name, value in overrides.items():
            site = self._site_traits.get(name)
            if name in self._MERGED_DICTS and site:
                value = {**site, **value}
            elif name in self._MERGED_LISTS and site:
                ours = {item.get("name") for item in value if isinstance(item, dict)}
                kept = [
                    item
                    for item in site
                    if not (isinstance(item, dict) and item.get("name") in ours and item.get("name"))
                ]
                value = kept + value
            setattr(self, name, value)
        self.chosen_environment = env

    async def load_user_options(self):
        """KubeSpawner's hook at start: the catalog choice (already applied by apply_user_options)."""
        if self.chosen_environment is None:
            await self._apply_chosen_environment(self.user_options or {})
