"""JupyterHub configuration on Kubernetes (the Helm chart's hub), as importable, tested Python.

The chart's only hub.extraConfig is ``from beamhub.hub.k8sconfig import configure; configure(c)``:
no code pasted into YAML.  Site settings arrive as data: the catalog ConfigMap at
``BEAMHUB_CATALOG`` and the chart's ``settings.json`` at ``BEAMHUB_HUB_SETTINGS`` (both under
/etc/beamhub by default), whose ``"BeamSpawner"`` keys are BeamSpawner traits and whose
``"jobs"`` section turns on the batch-jobs service.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from beamhub.hub.catalog import CatalogError, load_catalog
from beamhub.hub.hubconfig import TEMPLATES

DEFAULT_CATALOG_PATH = "/etc/beamhub/catalog.yaml"
DEFAULT_SETTINGS_PATH = "/etc/beamhub/settings.json"
JOBS_PORT = 8003


def _settings(path: str) -> dict[str, Any]:
    if not Path(path).is_file():
        return {}
    try:
        data = json.loads(Path(path).read_text())
    except ValueError as exc:
        raise SystemExit(f"beamhub: hub settings {path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise SystemExit(f"beamhub: hub settings {path}: must be a JSON object")
    return data


def configure(c: Any, environ: dict[str, str] | None = None) -> None:
    """Use BeamAuthenticator, BeamSpawner, our launch page, the mounted catalog and settings.

    Environment (set by the chart): ``BEAMHUB_CATALOG``, ``BEAMHUB_HUB_SETTINGS``, and as overrides
    ``BEAMHUB_SCHEDULER_NAME`` (empty: default scheduler) and ``BEAMHUB_SCHEDULER_SUMMARY_URL``.
    """
    env = os.environ if environ is None else environ
    catalog = env.get("BEAMHUB_CATALOG", DEFAULT_CATALOG_PATH)
    try:
        load_catalog(catalog)
    except CatalogError as exc:
        raise SystemExit(f"beamhub: {exc}") from None
    settings = _settings(env.get("BEAMHUB_HUB_SETTINGS", DEFAULT_SETTINGS_PATH))

    c.JupyterHub.authenticator_class = "beamhub"
    c.JupyterHub.spawner_class = "beamhub"
    c.JupyterHub.template_paths = [TEMPLATES]
    for key, value in (settings.get("BeamSpawner") or {}).items():
        setattr(c.BeamSpawner, key, value)
    c.BeamSpawner.catalog_path = catalog

    scheduler = env.get("BEAMHUB_SCHEDULER_NAME")
    if scheduler is not None:
        c.BeamSpawner.use_beamhub_scheduler = bool(scheduler)
        if scheduler:
            c.BeamSpawner.beamhub_scheduler_name = scheduler
    if env.get("BEAMHUB_SCHEDULER_SUMMARY_URL"):
        c.BeamSpawner.scheduler_summary_url = env["BEAMHUB_SCHEDULER_SUMMARY_URL"]

    jobs = settings.get("jobs") or {}
    if jobs.get("enabled"):
        # runs in the hub pod; the proxy reaches it through the hub Service's jobs port
        hub_host = env.get("HUB_SERVICE_HOST", "hub")
        services = list(c.JupyterHub.services) if "services" in c.JupyterHub else []
        services.append(
            {
                "name": "beamhub-jobs",
                "url": f"http://{hub_host}:{JOBS_PORT}",
                "command": [
                    sys.executable,
                    "-m",
                    "beamhub.hub.jobs.service",
                    "--backend",
                    "kubernetes",
                    "--state",
                    jobs.get("state_dir", "/srv/jupyterhub/beamhub-jobs"),
                    "--namespace",
                    jobs.get("namespace", "default"),
                    "--catalog",
                    catalog,
                    "--listen",
                    f"0.0.0.0:{JOBS_PORT}",
                ],
            }
        )
        c.JupyterHub.services = services
        roles = list(c.JupyterHub.load_roles) if "load_roles" in c.JupyterHub else []
        roles.append(
            {"name": "beamhub-jobs", "scopes": ["read:users", "admin:auth_state"], "services": ["beamhub-jobs"]}
        )
        c.JupyterHub.load_roles = roles
        c.BeamSpawner.jobs_url = jobs.get("url", "http://proxy-public/services/beamhub-jobs/")
