"""`beamhub up --sessions docker`: alice's session runs in her environment's image on this machine's
real Docker engine, as her SSO uid/gid, with only her workspace and the data her groups allow.

The same image and identity as her pod on Kubernetes (tests/images/test_real_node.py); the hub,
the proxy and the SSO provider are the embedded platform's.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from sso_client import HubAPI, login, wait_for_lab, xsrf_of

from beamhub.hub.commands.down import recorded_containers
from beamhub.hub.isolation import isolated
from beamhub.hub.platform import Platform, PlatformConfig

CONTAINER = "beamhub-session-alice"


@pytest.fixture
def docker_platform(engine):
    top = Path(tempfile.mkdtemp(prefix="beamhub-docker-sessions-"))
    top.chmod(0o755)  # as root, the users' containers reach their workspaces below it
    config = PlatformConfig.on_free_ports(top / "state", sessions="docker")
    token = config.admin_service_token
    live = Platform(config)
    live.start()
    live.api = HubAPI(config.public_url, token)
    live.url = config.public_url
    live.docker = engine.docker
    try:
        yield live
    finally:
        try:
            live.api.stop_all()
        finally:
            live.stop()
            subprocess.run([engine.docker, "rm", "--force", CONTAINER], capture_output=True)
            shutil.rmtree(top, ignore_errors=True)


def _docker(live, *args: str) -> str:
    done = subprocess.run([live.docker, *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"docker {' '.join(args[:3])}: {done.stderr[-1500:]}"
    return done.stdout


def test_alices_docker_session_runs_her_image_as_her_uid_with_only_her_data(docker_platform):
    live = docker_platform
    session, page = login(live.url, "alice", "alice")
    clicked = session.post(f"{live.url}/hub/spawn", data={"_xsrf": xsrf_of(page), "environment": "scipy"}, timeout=60)
    assert clicked.status_code == 200, clicked.text[-1000:]
    lab = wait_for_lab(session, live.url, "alice", timeout=180)
    assert '"hubUser": "alice"' in lab.text

    info = json.loads(_docker(live, "inspect", CONTAINER))[0]
    assert info["Config"]["Image"] == "ghcr.io/beamhub/base:0.1.0" and info["State"]["Running"]
    host = info["HostConfig"]
    assert host["ReadonlyRootfs"] is True and host["CapDrop"] == ["ALL"]
    assert "no-new-privileges" in host["SecurityOpt"]
    mounts = {m["Destination"]: m for m in info["Mounts"]}
    workspace = live.state / "users" / "alice"
    assert mounts["/home/jovyan"]["Source"] == str(workspace) and mounts["/home/jovyan"]["RW"] is True
    assert mounts["/data/public"]["RW"] is False
    assert set(mounts) == {"/home/jovyan", "/data/public"}  # nothing of the hub's state, no one else's space

    inside = _docker(
        live,
        "exec",
        CONTAINER,
        "sh",
        "-c",
        "id -u; id -G; echo $BEAMHUB_DATA_PUBLIC; echo $HOME; ls /home/jovyan; "
        "touch /data/public/x 2>/dev/null && echo writable || echo read-only",
    ).split("\n")
    if isolated():  # as root the container runs as alice's SSO identity; else as the invoking user
        assert inside[0] == "2001" and "3001" in inside[1].split()
        assert workspace.stat().st_uid == 2001
    assert inside[2] == "/data/public" and inside[3] == "/home/jovyan"
    assert "00-welcome.ipynb" in inside[4:-2] or any("ipynb" in line for line in inside[4:-2])
    assert "read-only" in inside
    # a notebook written in the container lands in her workspace on this machine
    _docker(live, "exec", CONTAINER, "sh", "-c", "echo 42 > /home/jovyan/from-container.txt")
    assert (workspace / "from-container.txt").read_text() == "42\n"

    # `beamhub down` finds the container through the hub's database
    assert recorded_containers(live.state) == [("alice", CONTAINER)]

    assert live.api.delete("/users/alice/server").status_code in (202, 204)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if subprocess.run([live.docker, "inspect", CONTAINER], capture_output=True).returncode != 0:
            break
        time.sleep(0.5)
    else:
        raise AssertionError("the container outlived the stopped server")
