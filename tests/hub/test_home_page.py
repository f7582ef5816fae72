"""The hub's own pages speak BeamHub: home page, header, QoS in plain words (issue 17, item 1).

The templates are rendered as JupyterHub renders them — its own templates reachable as
``templates/...`` beneath ours, async Jinja — with a spawner standing in for the user's.
"""

from __future__ import annotations

import asyncio
import re
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import jinja2
import jupyterhub
import pytest

from beamhub.hub.catalog import load_catalog
from beamhub.hub.identity import Identity
from beamhub.hub.local import LocalBeamSpawner
from beamhub.hub.menu import environment_facts

OURS = Path(__file__).resolve().parents[2] / "hub" / "templates"
THEIRS = Path(jupyterhub.__file__).resolve().parents[4] / "share" / "jupyterhub" / "templates"
CATALOG = load_catalog()
ALICE = Identity("alice", 2001, 2001, (3001, 3002), ("spi", "tomo"))
STARTED = datetime(2026, 11, 30, 9, 15, 0)  # naive UTC, as JupyterHub keeps orm_spawner.started


def _jinja() -> jinja2.Environment:
    """JupyterHub's loader: its templates under the prefix 'templates/', then template_paths."""
    if not (THEIRS / "page.html").is_file():
        pytest.skip(f"JupyterHub's templates are not at {THEIRS}")
    loader = jinja2.ChoiceLoader(
        [
            jinja2.PrefixLoader({"templates": jinja2.FileSystemLoader([str(THEIRS)])}, "/"),
            jinja2.FileSystemLoader([str(OURS), str(THEIRS)]),
        ]
    )
    return jinja2.Environment(loader=loader, autoescape=True, enable_async=True)


class RunningSpawnerStandIn(LocalBeamSpawner):
    """A LocalBeamSpawner whose session JupyterHub reports as running (no process behind it)."""

    active = True
    ready = True


def _spawner(running: bool, environment: str | None = "tomo", **config) -> LocalBeamSpawner:
    cls = RunningSpawnerStandIn if running else LocalBeamSpawner
    spawner = cls(**config)
    spawner.user = SimpleNamespace(name="alice", admin=False, groups=[])
    spawner.orm_spawner = SimpleNamespace(
        user_options={"environment": environment} if environment else {},
        server=None,
        name="",
        started=STARTED if running else None,
    )
    spawner.identity = ALICE
    return spawner


def _render(name: str, spawner=None, services=(), **extra) -> str:
    user = SimpleNamespace(
        name="alice", escaped_name="alice", json_escaped_name="alice", spawner=spawner, all_spawners=lambda **kw: []
    )
    ns = dict(
        base_url="/hub/",
        prefix="/",
        user=user,
        login_url="/hub/login",
        logout_url="/hub/logout",
        static_url=lambda path, **kw: f"/hub/static/{path}",
        version_hash="",
        services=list(services),
        parsed_scopes={},
        expanded_scopes=set(),
        xsrf="x",
        xsrf_token="x",
        url="/user/alice/",
        default_server=spawner,
        allow_named_servers=False,
        spawners=[],
        auth_state=None,
        invalid_server_names=[],
        named_server_limit_per_user=0,
        logo_url="",
        **extra,
    )
    return asyncio.run(_jinja().get_template(name).render_async(**ns))


def test_home_shows_the_running_environment_and_a_stop_that_warns():
    html = _render("home.html", _spawner(running=True, jobs_url="http://127.0.0.1:8000/services/beamhub-jobs/"))
    assert 'Running: <span id="beam-env-title">Tomography</span>' in html
    assert "ghcr.io/beamhub/tomo:0.1.0" in html and "4 CPU · 16 GiB" in html
    # plain words for the QoS class, the technical name on hover
    assert re.search(
        r'title="QoS class burstable: guaranteed 2 CPU · 4 GiB, up to 4 CPU · 16 GiB[^"]*">may burst<', html
    ), html
    assert 'datetime="2026-11-30T09:15:00Z"' in html
    assert 'id="beam-stop"' in html and "unsaved changes" in html
    assert 'id="beam-open"' in html and 'href="/user/alice/"' in html
    # the jobs table calls the jobs service `beamhub jobs` calls, with a token for that service only
    assert 'data-jobs-url="/services/beamhub-jobs/api/jobs"' in html
    assert 'data-tokens-url="/hub/api/users/alice/tokens"' in html
    assert '"read:users:name!user"' in html and "X-XSRFToken" in html
    assert "Cancel" in html and "/logs" in html


def test_home_without_a_session_offers_the_launch_page_and_no_jobs_without_the_service():
    html = _render("home.html", _spawner(running=False))
    assert "No environment is running" in html and 'id="beam-stop"' not in html
    assert 'id="beam-jobs"' not in html  # no jobs service configured: no table that cannot load


def test_every_hub_page_carries_beamhubs_name_and_logo():
    for name in ("home.html", "spawn.html"):
        html = _render(name, _spawner(running=False), spawner_options_form="", for_user=None)
        assert re.search(r"<title>\s*BeamHub\s*</title>", html), name
        assert 'id="beamhub-logo"' in html and 'aria-label="BeamHub logo"' in html
        assert "JupyterHub logo" not in html and 'id="jupyterhub-logo"' not in html


def test_environment_facts_after_a_hub_restart_and_for_a_removed_entry():
    facts = environment_facts(CATALOG.get("spi-emc"), STARTED)
    assert facts["title"] == "SPI / EMC" and facts["qos_words"] == "guaranteed resources"
    assert facts["since"] == "2026-11-30T09:15:00Z"
    assert environment_facts(None, None)["title"] == "an environment no longer in the catalog"
    # a new spawner object (the hub restarted) finds the environment in the options JupyterHub kept
    spawner = _spawner(running=True, environment="spi-emc")
    assert spawner.chosen_environment is None and spawner.home_context()["title"] == "SPI / EMC"
    assert _spawner(running=False).home_context() is None


async def test_launch_cards_say_qos_in_plain_words_with_the_class_on_hover():
    html = await _spawner(running=False)._render_launch_cards()
    assert 'title="QoS class guaranteed: 4 CPU · 8 GiB reserved for you">guaranteed resources<' in html
    assert html.count(">may burst<") == 3  # scipy, tomo, dl-gpu
    assert "QoS: " not in html
