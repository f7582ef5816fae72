"""A scientist's first day on the real platform (issue 17): the seeded example, the home page.

alice signs in and starts a session; a tomography job on the example `beamhub up` seeded in
the raw-data folder runs as her uid; her home page names the running environment, and the
jobs table's data path — a token for the jobs service from the hub's REST API with the
page's xsrf token, then the jobs API — lists that job, as the page's script does it.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
import time

import pytest
import requests
from sso_client import login

from beamhub.hub.platform import DEMO_ACCOUNTS, DEMO_GROUP_GIDS

pytestmark = pytest.mark.integration

EXAMPLE = "data/raw/tomo/example-scan.h5"


def _account(name) -> dict:
    return next(a for a in DEMO_ACCOUNTS if a["username"] == name)


def _wait_ready(platform, name, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        server = (platform.api.user(name) or {}).get("servers", {}).get("")
        if server and server.get("ready"):
            return
        time.sleep(0.3)
    raise AssertionError(f"{name}'s session did not become ready")


@pytest.fixture(scope="module")
def alice(platform):
    """alice signed in (her browser session) with Scientific Python running, so "last used" stays the default."""
    session, _ = login(platform.url, "alice", "alice", next_path="/hub/home")
    if not (platform.api.user("alice") or {}).get("servers"):
        started = platform.api.post("/users/alice/server", json={"environment": "scipy"})
        assert started.status_code in (201, 202), started.text
    _wait_ready(platform, "alice")
    yield session
    # the other modules expect alice without a session (her launch page, not her server)
    platform.api.delete("/users/alice/server")
    deadline = time.monotonic() + 60
    while (platform.api.user("alice") or {}).get("servers") and time.monotonic() < deadline:
        time.sleep(0.3)


def test_the_seeded_example_is_readable_by_alice_uid(platform):
    example = platform.state / EXAMPLE
    assert example.is_file() and (platform.state / "data/raw/spi/example/config.ini").is_file()
    if os.geteuid() != 0:
        return  # personal mode: one user owns everything
    info, folder = example.stat(), example.parent.stat()
    assert info.st_gid == DEMO_GROUP_GIDS["tomo"] and stat.S_IMODE(info.st_mode) & 0o040
    assert stat.S_IMODE(folder.st_mode) == 0o2750
    account = _account("alice")
    read = subprocess.run(
        [sys.executable, "-c", f"print(open({str(example)!r}, 'rb').read(8))"],
        user=account["uid"],
        group=account["gid"],
        extra_groups=account["gids"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert read.returncode == 0 and "HDF" in read.stdout, read.stderr


def test_home_page_shows_the_session_and_a_job_on_the_seeded_example(platform, alice):
    home = alice.get(f"{platform.url}/hub/home", timeout=30)
    assert home.status_code == 200
    assert 'Running: <span id="beam-env-title">Scientific Python</span>' in home.text
    assert "ghcr.io/beamhub/base" in home.text and 'id="beam-stop"' in home.text
    assert re.search(r"<title>\s*BeamHub\s*</title>", home.text) and 'id="beamhub-logo"' in home.text

    # a job on the seeded example, in alice's workspace, through the jobs API with her token
    token = platform.api.post("/users/alice/tokens", json={"note": "home page test", "expires_in": 600}).json()["token"]
    jobs_url = f"{platform.url}/services/beamhub-jobs/api/jobs"
    workspace = platform.state / "users" / "alice"
    submitted = requests.post(
        jobs_url,
        headers={"Authorization": f"token {token}"},
        timeout=60,
        json={
            "kind": "tomo",
            "args": [str(platform.state / EXAMPLE), "--out", "home-page-recon.h5", "--quiet"],
            "cwd": str(workspace),
            "environment": "tomo",
        },
    )
    assert submitted.status_code == 201, submitted.text
    job_id = submitted.json()["id"]

    # what the page's script does: a token for the jobs service only, from the hub's REST API
    # with the page's xsrf token and alice's cookie, then the jobs service's list
    xsrf = re.search(r'xsrf_token: "([^"]+)"', home.text).group(1)
    tokens_url = re.search(r'data-tokens-url="([^"]+)"', home.text).group(1)
    page_jobs_url = re.search(r'data-jobs-url="([^"]+)"', home.text).group(1)
    made = alice.post(
        f"{platform.url}{tokens_url}",
        headers={"X-XSRFToken": xsrf},
        timeout=30,
        json={"note": "BeamHub home page: your batch jobs", "expires_in": 3600, "scopes": ["read:users:name!user"]},
    )
    assert made.status_code in (200, 201), made.text
    page_token = {"Authorization": f"token {made.json()['token']}"}
    deadline, job = time.monotonic() + 120, None
    while time.monotonic() < deadline:
        listed = requests.get(f"{platform.url}{page_jobs_url}", headers=page_token, timeout=30)
        assert listed.status_code == 200, listed.text
        job = next(j for j in listed.json()["jobs"] if j["id"] == job_id)
        if job["state"] in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(0.5)
    log = requests.get(f"{platform.url}{page_jobs_url}/{job_id}/logs", headers=page_token, timeout=30)
    assert job["state"] == "succeeded", log.text
    assert (workspace / "home-page-recon.h5").is_file()
    # the page's token only says who alice is: it cannot make tokens, read her servers or stop them
    more = requests.post(f"{platform.url}/hub/api/users/alice/tokens", headers=page_token, json={}, timeout=30)
    assert more.status_code == 403
    model = requests.get(f"{platform.url}/hub/api/users/alice", headers=page_token, timeout=30).json()
    assert "servers" not in model and "auth_state" not in model
