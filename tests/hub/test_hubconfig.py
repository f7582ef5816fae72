"""The embedded platform's JupyterHub configuration, built without starting anything."""

import pytest
from traitlets.config import Config

from beamhub.hub.hubconfig import configure

SETTINGS = {
    "state_dir": "/srv/state",
    "public_url": "http://127.0.0.1:8000",
    "hub_port": 8081,
    "proxy_api_url": "http://127.0.0.1:8002",
    "issuer": "http://127.0.0.1:8001",
    "endpoints": {"authorize": "http://sso/auth", "token": "http://sso/token", "userinfo": "http://sso/me"},
    "client_id": "beamhub",
    "client_secret": "s",
    "allowed_groups": ["spi", "tomo"],
    "admin_groups": ["admins"],
    "catalog": "",
    "workspace_root": "/srv/state/users",
}


def test_configure_wires_sso_spawner_and_external_proxy():
    c = Config()
    configure(c, dict(SETTINGS))
    assert c.JupyterHub.port == 8000 and c.JupyterHub.ip == "127.0.0.1"
    assert c.JupyterHub.authenticator_class == "beamhub"
    assert c.JupyterHub.spawner_class == "beamhub-local"
    assert c.JupyterHub.cleanup_servers is False
    assert c.ConfigurableHTTPProxy.should_start is False
    assert c.BeamAuthenticator.oauth_callback_url == "http://127.0.0.1:8000/hub/oauth_callback"
    assert c.BeamAuthenticator.allowed_groups == {"spi", "tomo"}
    assert c.BeamAuthenticator.admin_groups == {"admins"}
    assert c.LocalBeamSpawner.workspace_root == "/srv/state/users"
    assert c.JupyterHub.db_url == "sqlite:////srv/state/jupyterhub.sqlite"
    assert "services" not in c.JupyterHub


def test_bad_catalog_stops_the_hub_with_the_field_named(tmp_path):
    bad = tmp_path / "menu.yaml"
    bad.write_text(
        "environments:\n  - {slug: x, title: X, image: i, kind: cpu, qos: fast, groups: ['*'],"
        " resources: {cpu: {limit: 1}, memory: {limit: 1Gi}}}\n"
    )
    with pytest.raises(SystemExit) as err:
        configure(Config(), {**SETTINGS, "catalog": str(bad)})
    assert "environment 'x'" in str(err.value) and "'qos'" in str(err.value)


def test_admin_service_token_gets_admin_scopes_only_when_asked():
    c = Config()
    configure(c, {**SETTINGS, "admin_service_token": "tok"})
    assert c.JupyterHub.services[0]["api_token"] == "tok"
    assert "admin:servers" in c.JupyterHub.load_roles[0]["scopes"]


def test_kubernetes_hub_configuration_from_environment():
    from beamhub.hub.catalog import DEFAULT_CATALOG
    from beamhub.hub.k8sconfig import configure as configure_k8s

    c = Config()
    configure_k8s(
        c,
        {
            "BEAMHUB_CATALOG": str(DEFAULT_CATALOG),
            "BEAMHUB_SCHEDULER_NAME": "",
            "BEAMHUB_SCHEDULER_SUMMARY_URL": "http://sched:8080/summary",
        },
    )
    assert c.JupyterHub.spawner_class == "beamhub" and c.JupyterHub.authenticator_class == "beamhub"
    assert c.BeamSpawner.catalog_path == str(DEFAULT_CATALOG)
    assert c.BeamSpawner.use_beamhub_scheduler is False
    assert c.BeamSpawner.scheduler_summary_url == "http://sched:8080/summary"
    with pytest.raises(SystemExit, match="cannot read"):
        configure_k8s(Config(), {"BEAMHUB_CATALOG": "/nonexistent/catalog.yaml"})


def test_kubernetes_jobs_service_from_settings(tmp_path):
    import json

    from beamhub.hub.catalog import DEFAULT_CATALOG
    from beamhub.hub.k8sconfig import configure as configure_k8s

    settings = tmp_path / "settings.json"
    settings.write_text(
        json.dumps(
            {
                "BeamSpawner": {
                    "data_volumes": {"raw-spi": {"nfs": {"server": "n", "path": "/"}}},
                    "home_volume": None,
                },
                "jobs": {"enabled": True, "namespace": "beam"},
            }
        )
    )
    c = Config()
    configure_k8s(c, {"BEAMHUB_CATALOG": str(DEFAULT_CATALOG), "BEAMHUB_HUB_SETTINGS": str(settings)})
    assert c.BeamSpawner.data_volumes["raw-spi"]["nfs"]["server"] == "n"
    service = c.JupyterHub.services[0]
    assert service["name"] == "beamhub-jobs" and "kubernetes" in service["command"]
    assert service["command"][service["command"].index("--namespace") + 1] == "beam"
    assert c.BeamSpawner.jobs_url.endswith("/services/beamhub-jobs/")
    assert "admin:auth_state" in c.JupyterHub.load_roles[0]["scopes"]
    settings.write_text("{broken")
    with pytest.raises(SystemExit, match="not valid JSON"):
        configure_k8s(Config(), {"BEAMHUB_CATALOG": str(DEFAULT_CATALOG), "BEAMHUB_HUB_SETTINGS": str(settings)})
