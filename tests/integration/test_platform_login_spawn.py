"""The platform for real: OIDC provider + configurable-http-proxy + JupyterHub + local sessions.

Every request goes over HTTP through the proxy, as a browser's would.
"""

from __future__ import annotations

import time

import pytest
import requests
from sso_client import cards, dump_logs, login, wait_for_lab, xsrf_of

pytestmark = pytest.mark.integration


def test_discovery_is_served_by_the_provider(platform):
    issuer = platform.config.issuer
    doc = requests.get(f"{issuer}/.well-known/openid-configuration", timeout=10).json()
    assert doc["issuer"] == issuer
    assert doc["authorization_endpoint"] == f"{issuer}/auth"
    assert {"uid", "gid", "gids", "groups"} <= set(doc["claims_supported"])
    assert "refresh_token" in doc["grant_types_supported"]


def test_wrong_password_is_refused_on_the_provider_page(platform):
    session, response = login(platform.url, "alice", "not-alice")
    assert response.status_code == 401
    assert "Wrong user name or password" in response.text
    # no hub session came out of it
    home = session.get(f"{platform.url}/hub/home", allow_redirects=False, timeout=10)
    assert home.status_code == 302


def test_launch_page_shows_the_cards_the_groups_allow(platform):
    _, alice = login(platform.url, "alice", "alice")
    assert alice.status_code == 200, dump_logs(platform)
    assert cards(alice) == ["scipy", "tomo", "spi-emc", "phasing-gpu", "dl-gpu"]
    assert "uid 2001" in alice.text
    _, bob = login(platform.url, "bob", "bob")
    assert cards(bob) == ["scipy", "tomo", "dl-gpu"]
    assert "Start" not in [b.strip() for b in bob.text.split(">")]  # no second "Start" button


@pytest.mark.parametrize(
    "user, words",
    [
        ("mallory", "uid 0"),
        ("nouid", "no user id"),
    ],
)
def test_unsafe_identity_gets_a_readable_refusal(platform, user, words):
    session, response = login(platform.url, user, user)
    assert response.status_code == 403
    assert words in response.text
    assert "Traceback" not in response.text
    assert platform.api.user(user) is None


def test_groups_outside_allowed_groups_are_refused(platform):
    _, response = login(platform.url, "visitor", "visitor")
    assert response.status_code == 403
    assert platform.api.user("visitor") is None


def test_admin_group_makes_hub_admins_who_see_every_environment(platform):
    _, page = login(platform.url, "admin", "admin")
    assert platform.api.user("admin")["admin"] is True
    assert len(cards(page)) == 5
    assert platform.api.user("alice") is None or platform.api.user("alice")["admin"] is False


def test_forged_form_for_a_forbidden_environment_is_403(platform):
    session, page = login(platform.url, "bob", "bob")
    forged = session.post(
        f"{platform.url}/hub/spawn", data={"_xsrf": xsrf_of(page), "environment": "phasing-gpu"}, timeout=30
    )
    assert forged.status_code == 403
    assert "You may not start" in forged.text and "spi" in forged.text
    unknown = session.post(
        f"{platform.url}/hub/spawn", data={"_xsrf": xsrf_of(page), "environment": "no-such-env"}, timeout=30
    )
    assert unknown.status_code == 400
    assert not platform.api.user("bob")["servers"]


def test_forged_api_spawn_is_403_too(platform):
    login(platform.url, "bob", "bob")
    response = platform.api.post("/users/bob/server", json={"environment": "spi-emc"})
    assert response.status_code == 403, response.text
    assert "You may not start" in response.json()["message"]


def test_login_spawn_identity_and_isolation(platform):
    session, page = login(platform.url, "alice", "alice")
    before = platform.api.get("/users/alice", params={"include_stopped_servers": "1"}).json()
    token_before = before["auth_state"]["access_token"]
    time.sleep(5)  # past the provider's 4 s access-token lifetime: the spawn must refresh it
    started = session.post(
        f"{platform.url}/hub/spawn", data={"_xsrf": xsrf_of(page), "environment": "tomo"}, timeout=60
    )
    assert started.status_code == 200 and "spawn-pending" in started.url, started.text[-2000:]
    messages = _progress_messages(platform, "alice")
    assert any("Preparing the workspace" in m for m in messages), messages
    assert any("Starting Tomography (4 CPU · 16 GiB)" in m for m in messages), messages
    lab = wait_for_lab(session, platform.url, "alice")
    assert '"hubUser": "alice"' in lab.text

    # the session carries the identity from the provider and the environment's settings
    env = _session_env(platform, "alice")
    assert env["BEAMHUB_USER"] == "alice" and env["BEAMHUB_UID"] == "2001"
    assert env["BEAMHUB_GROUPS"] == "spi,tomo" and env["BEAMHUB_ENVIRONMENT"] == "tomo"
    assert env["BEAMHUB_BACKEND"] == "numpy" and env["OMP_NUM_THREADS"] == "4"
    # the data variable names the folder that holds the data here, with the example `beamhub up` seeded
    assert env["BEAMHUB_DATA_RAW_TOMO"] == str((platform.state / "data" / "raw" / "tomo").resolve())
    assert (platform.state / "data" / "raw" / "tomo" / "example-scan.h5").is_file()
    assert env["BEAMHUB_JOBS_URL"] == f"{platform.url}/services/beamhub-jobs/"
    # the environment's 16 GiB memory limit is the session's data-segment limit
    limits = open(f"/proc/{_pid(platform, 'alice')}/limits").read()
    data_line = next(line for line in limits.splitlines() if line.startswith("Max data size"))
    assert str(16 * 2**30) in data_line, data_line
    assert (platform.state / "users" / "alice" / "data" / "raw-tomo").is_symlink()

    # the example notebooks were copied into the workspace
    workspace = platform.state / "users" / "alice"
    assert (workspace / "00-welcome.ipynb").is_file()

    # tokens were refreshed before the spawn
    after = platform.api.get("/users/alice").json()
    assert after["auth_state"]["access_token"] != token_before
    assert after["auth_state"]["beamhub"]["uid"] == 2001

    # bob cannot reach alice's server
    bob, _ = login(platform.url, "bob", "bob")
    other = bob.get(f"{platform.url}/user/alice/lab", timeout=30)
    assert other.status_code == 403 or "/user/alice/" not in other.url
    assert "jupyter-config-data" not in other.text

    # the next launch page lists the last used environment first
    platform.api.delete("/users/alice/server")
    _wait_stopped(platform, "alice")
    again = session.get(f"{platform.url}/hub/spawn", timeout=30)
    assert cards(again)[0] == "tomo"
    assert "last used" in again.text


def test_restart_keeps_users_and_running_sessions(platform):
    session, page = login(platform.url, "bob", "bob")
    session.post(f"{platform.url}/hub/spawn", data={"_xsrf": xsrf_of(page), "environment": "scipy"}, timeout=60)
    wait_for_lab(session, platform.url, "bob")
    pid = _pid(platform, "bob")

    platform.stop()
    platform.start()

    user = platform.api.user("bob")
    assert user is not None and user["servers"][""]["ready"], dump_logs(platform)
    assert _pid(platform, "bob") == pid
    wait_for_lab(session, platform.url, "bob", timeout=60)  # same browser session, no new login
    platform.api.delete("/users/bob/server")
    _wait_stopped(platform, "bob")


def _progress_messages(platform, name) -> list[str]:
    """The spawn's progress events, read from the hub's event stream like the pending page does."""
    import json

    messages = []
    with requests.get(
        f"{platform.api.base}/users/{name}/server/progress", headers=platform.api.headers, stream=True, timeout=120
    ) as stream:
        for line in stream.iter_lines(decode_unicode=True):
            if line and line.startswith("data:"):
                event = json.loads(line[5:])
                messages.append(event.get("message", ""))
                if event.get("ready") or event.get("failed"):
                    break
    return messages


def _session_env(platform, name) -> dict:
    pid = _pid(platform, name)
    raw = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def _pid(platform, name) -> int:
    import json
    import sqlite3

    db = sqlite3.connect(platform.state / "jupyterhub.sqlite")
    rows = db.execute(
        "select spawners.state from spawners join users on users.id = spawners.user_id where users.name = ?", (name,)
    ).fetchall()
    db.close()
    for (state,) in rows:
        if state and json.loads(state).get("pid"):
            return json.loads(state)["pid"]
    raise AssertionError(f"no running session pid for {name}")


def _wait_stopped(platform, name, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        user = platform.api.user(name)
        if not user["servers"]:
            return
        time.sleep(0.3)
    raise AssertionError(f"{name}'s server did not stop")
