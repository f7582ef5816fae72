"""JupyterHub configuration of the embedded platform, as data in and traitlets out.

``beamhub up`` writes ``settings.json`` and a two-line ``jupyterhub_config.py``
that calls :func:`configure`; nothing here starts a process, so the whole
configuration is testable without a hub.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from beamhub.hub.catalog import CatalogError, load_catalog

TEMPLATES = str(Path(__file__).with_name("templates"))


def configure(c: Any, settings: dict[str, Any] | str | Path) -> None:
    """Fill the traitlets config ``c`` for the embedded platform described by ``settings``.

    Keys of ``settings``: ``state_dir``, ``public_url`` (http://127.0.0.1:8000),
    ``hub_port``, ``proxy_api_url``, ``issuer``, ``endpoints`` (authorize, token,
    userinfo, end_session), ``client_id``, ``client_secret``, ``allowed_groups``,
    ``admin_groups``, ``catalog`` (path or ""), ``workspace_root``,
    ``notebooks_dir``, ``scheduler_summary_url``, ``jobs_port`` and ``admin_service_token`` (optional).
    """
    if not isinstance(settings, dict):
        settings = json.loads(Path(settings).read_text())
    try:  # a bad catalog stops the hub here, with the entry and field named
        load_catalog(settings.get("catalog") or None)
    except CatalogError as exc:
        raise SystemExit(f"beamhub: {exc}") from None
    state = Path(settings["state_dir"])
    public_url = settings["public_url"].rstrip("/")
    host, _, port = public_url.rpartition("://")[2].partition(":")

    c.JupyterHub.ip = host
    c.JupyterHub.port = int(port or 80)
    c.JupyterHub.hub_ip = "127.0.0.1"
    c.JupyterHub.hub_port = int(settings["hub_port"])
    c.JupyterHub.db_url = f"sqlite:///{state / 'jupyterhub.sqlite'}"
    c.JupyterHub.cookie_secret_file = str(state / "jupyterhub_cookie_secret")
    c.JupyterHub.pid_file = str(state / "jupyterhub.pid")
    # a restart of `beamhub up` keeps running sessions: the hub finds them again by pid
    c.JupyterHub.cleanup_servers = False
    c.JupyterHub.template_paths = [TEMPLATES]
    c.JupyterHub.default_url = "/hub/spawn"
    c.JupyterHub.authenticator_class = "beamhub"
    c.JupyterHub.spawner_class = "beamhub-local"
    if settings.get("sessions") == "docker":  # each session in its environment's image (hub/docker_sessions.py)
        c.JupyterHub.spawner_class = "beamhub.hub.docker_sessions.DockerBeamSpawner"

    # the proxy runs beside the hub (started by `beamhub up`), so it outlives hub restarts
    c.ConfigurableHTTPProxy.should_start = False
    c.ConfigurableHTTPProxy.api_url = settings["proxy_api_url"]

    endpoints = settings["endpoints"]
    auth = c.BeamAuthenticator
    auth.client_id = settings["client_id"]
    auth.client_secret = settings["client_secret"]
    auth.oauth_callback_url = f"{public_url}/hub/oauth_callback"
    auth.authorize_url = endpoints["authorize"]
    auth.token_url = endpoints["token"]
    auth.userdata_url = endpoints["userinfo"]
    # a sign-in while the provider is down gets a "sign-in unavailable, retry" page, not a dead link
    auth.provider_check_url = f"{settings['issuer'].rstrip('/')}/.well-known/openid-configuration"
    if endpoints.get("end_session"):  # RP-initiated logout, back to the hub's sign-in afterwards
        auth.end_session_url = endpoints["end_session"]
        auth.post_logout_redirect_url = f"{public_url}/hub/login"
    auth.allowed_groups = set(settings.get("allowed_groups", []))
    auth.admin_groups = set(settings.get("admin_groups", []))
    auth.auto_login = bool(settings.get("auto_login", True))

    spawner = c.LocalBeamSpawner
    spawner.catalog_path = settings.get("catalog", "")
    spawner.workspace_root = settings["workspace_root"]
    spawner.data_root = str(state)
    if settings.get("notebooks_dir"):
        spawner.notebooks_dir = settings["notebooks_dir"]
    if settings.get("scheduler_summary_url"):
        spawner.scheduler_summary_url = settings["scheduler_summary_url"]

    services, roles = [], []
    if settings.get("jobs_port"):
        # batch jobs as local processes, behind the hub's own token checks
        services.append(
            {
                "name": "beamhub-jobs",
                "url": f"http://127.0.0.1:{int(settings['jobs_port'])}",
                "command": [
                    sys.executable,
                    "-m",
                    "beamhub.hub.jobs.service",
                    "--backend",
                    "local",
                    "--state",
                    str(state / "jobs"),
                    "--workspace-root",
                    settings["workspace_root"],
                    "--data-root",
                    settings.get("data_root") or str(state),
                    "--catalog",
                    settings.get("catalog", ""),
                    # `beamhub up` stops it by this record if the hub dies without stopping it
                    "--pid-file",
                    str(state / "run" / "jobs.pid"),
                    # one line per request there; job events and errors in the hub's log
                    "--access-log",
                    str(state / "logs" / "jobs-access.log"),
                ],
            }
        )
        roles.append(
            {"name": "beamhub-jobs", "scopes": ["read:users", "admin:auth_state"], "services": ["beamhub-jobs"]}
        )
        spawner.jobs_url = f"{public_url}/services/beamhub-jobs/"
    if settings.get("admin_service_token"):
        # an API token for operators' scripts and the test suite, with admin scopes only
        services.append({"name": "beamhub-admin", "api_token": settings["admin_service_token"]})
        roles.append(
            {
                "name": "beamhub-admin",
                "scopes": [
                    "admin:users",
                    "admin:servers",
                    "admin:auth_state",
                    "access:servers",
                    "list:users",
                    "tokens",
                ],
                "services": ["beamhub-admin"],
            }
        )
    if services:
        c.JupyterHub.services = services
        c.JupyterHub.load_roles = roles
