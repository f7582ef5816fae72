"""JupyterHub configuration on Kubernetes (the Helm chart's hub), as importable, tested Python.

The chart's only hub.extraConfig is ``from beamhub.hub.k8sconfig import configure; configure(c)``:
no code pasted into YAML.  Site settings arrive as data — the catalog ConfigMap mounted at
``BEAMHUB_CATALOG`` and z2jh's ``hub.config`` values for BeamAuthenticator/BeamSpawner.
"""

from __future__ import annotations

import os
from typing import Any

from beamhub.hub.catalog import CatalogError, load_catalog
from beamhub.hub.hubconfig import TEMPLATES

DEFAULT_CATALOG_PATH = "/etc/beamhub/catalog.yaml"


def configure(c: Any, environ: dict[str, str] | None = None) -> None:
    """Use BeamAuthenticator, BeamSpawner, our launch page and the mounted catalog.

    Environment (set by the chart): ``BEAMHUB_CATALOG`` (catalog path),
    ``BEAMHUB_SCHEDULER_NAME`` (empty: default scheduler), ``BEAMHUB_SCHEDULER_SUMMARY_URL``.
    """
    env = os.environ if environ is None else environ
    catalog = env.get("BEAMHUB_CATALOG", DEFAULT_CATALOG_PATH)
    try:
        load_catalog(catalog)
    except CatalogError as exc:
        raise SystemExit(f"beamhub: {exc}") from None
    c.JupyterHub.authenticator_class = "beamhub"
    c.JupyterHub.spawner_class = "beamhub"
    c.JupyterHub.template_paths = [TEMPLATES]
    c.BeamSpawner.catalog_path = catalog
    scheduler = env.get("BEAMHUB_SCHEDULER_NAME")
    if scheduler is not None:
        c.BeamSpawner.use_beamhub_scheduler = bool(scheduler)
        if scheduler:
            c.BeamSpawner.beamhub_scheduler_name = scheduler
    if env.get("BEAMHUB_SCHEDULER_SUMMARY_URL"):
        c.BeamSpawner.scheduler_summary_url = env["BEAMHUB_SCHEDULER_SUMMARY_URL"]
