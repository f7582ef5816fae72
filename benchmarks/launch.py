"""Click-to-JupyterLab time: BeamHub's one-click launch beside plain JupyterHub, in one run.

Ours: the embedded platform (OIDC provider, proxy, hub with LocalBeamSpawner),
signed in as alice, the "Scientific Python" card clicked (a POST of the launch
form). Reference: plain JupyterHub with its SimpleLocalProcessSpawner and the
DummyAuthenticator behind its own configurable-http-proxy, "Start" clicked.
Each launch is timed from the POST to the moment /user/<name>/lab serves
JupyterLab through the proxy; the server is stopped between launches.

    .venv/bin/python benchmarks/launch.py [--launches 5]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from beamhub.hub.platform import Platform, PlatformConfig, free_port, node_modules_dir


def _xsrf(text: str) -> str:
    return re.search(r'name="_xsrf" value="([^"]+)"', text).group(1)


def _wait_lab(session, base, user, timeout=120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = session.get(f"{base}/user/{user}/lab", timeout=30)
        if r.status_code == 200 and "jupyter-config-data" in r.text and f"/user/{user}/lab" in r.url:
            return
        time.sleep(0.1)
    raise RuntimeError(f"JupyterLab of {user} did not answer within {timeout} s")


def _wait_stopped(session, base, user, headers, timeout=60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = requests.get(f"{base}/hub/api/users/{user}", headers=headers, timeout=10)
        if not r.json().get("servers"):
            return
        time.sleep(0.2)
    raise RuntimeError(f"{user}'s server did not stop")


def _launches(session, base, user, headers, n, form) -> list[float]:
    """Time n launches; with ``form`` the click is the card's POST, without it plain JupyterHub's
    "Start My Server" link (GET /hub/spawn, which spawns at once when there is no options form)."""
    times = []
    for _ in range(n):
        if form is not None:
            page = session.get(f"{base}/hub/spawn", timeout=30)
            t0 = time.perf_counter()
            session.post(f"{base}/hub/spawn", data={"_xsrf": _xsrf(page.text), **form}, timeout=60)
        else:
            t0 = time.perf_counter()
            session.get(f"{base}/hub/spawn", timeout=60)
        _wait_lab(session, base, user)
        times.append(time.perf_counter() - t0)
        requests.delete(f"{base}/hub/api/users/{user}/server", headers=headers, timeout=60)
        _wait_stopped(session, base, user, headers)
    return times


def beamhub_times(n: int, workdir: Path) -> list[float]:
    token = os.urandom(16).hex()
    config = PlatformConfig(state_dir=workdir / "beamhub", port=free_port(), sso_port=free_port(), jobs_port=free_port(),
                            proxy_api_port=free_port(), hub_port=free_port(), admin_service_token=token)
    config.state_dir.mkdir()
    platform = Platform(config)
    platform.start()
    try:
        s = requests.Session()
        page = s.get(f"{config.public_url}/hub/login?next=/hub/spawn", timeout=30)
        action = re.search(r'action="(/interaction/[^"]+/login)"', page.text).group(1)
        s.post(config.issuer + action, data={"username": "alice", "password": "alice"}, timeout=60)
        return _launches(s, config.public_url, "alice", {"Authorization": f"token {token}"}, n,
                         {"environment": "scipy"})
    finally:
        platform.stop()


PLAIN_CONFIG = """
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {port}
c.JupyterHub.hub_port = {hub_port}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{api_port}"
c.ConfigurableHTTPProxy.command = [{chp!r}]
c.JupyterHub.db_url = "sqlite:///{state}/hub.sqlite"
c.JupyterHub.cookie_secret_file = "{state}/cookie_secret"
c.JupyterHub.authenticator_class = "dummy"
c.JupyterHub.spawner_class = "simple"
c.Spawner.default_url = "/lab"
c.Spawner.cmd = [{singleuser!r}]
c.Spawner.args = {args!r}
c.SimpleLocalProcessSpawner.home_dir_template = "{state}/users/{{username}}"
c.JupyterHub.services = [{{"name": "bench", "api_token": "{token}"}}]
c.JupyterHub.load_roles = [{{"name": "bench", "scopes": ["admin:servers", "admin:users"], "services": ["bench"]}}]
"""


def plain_times(n: int, workdir: Path) -> list[float]:
    state = workdir / "plain"
    (state / "users").mkdir(parents=True)
    port, token = free_port(), os.urandom(16).hex()
    (state / "jupyterhub_config.py").write_text(PLAIN_CONFIG.format(
        port=port, hub_port=free_port(), api_port=free_port(),
        chp=str(node_modules_dir() / ".bin" / "configurable-http-proxy"), state=state,
        singleuser=str(Path(sys.executable).with_name("jupyterhub-singleuser")),
        args=["--allow-root"] if os.geteuid() == 0 else [], token=token))
    log = open(state / "hub.log", "wb")
    hub = subprocess.Popen([sys.executable, "-m", "jupyterhub", "-f", str(state / "jupyterhub_config.py")],
                           cwd=state, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                           env={**os.environ, "CONFIGPROXY_AUTH_TOKEN": os.urandom(16).hex()})
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{base}/hub/api/", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"plain JupyterHub did not start; see {state / 'hub.log'}")
            time.sleep(0.2)
        s = requests.Session()
        page = s.get(f"{base}/hub/login", timeout=30)
        s.post(f"{base}/hub/login", data={"_xsrf": _xsrf(page.text), "username": "carol", "password": "x"},
               timeout=30)
        return _launches(s, base, "carol", {"Authorization": f"token {token}"}, n, None)
    finally:
        hub.terminate()
        hub.wait(30)
        log.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--launches", type=int, default=5, help="launches per platform (default: 5)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="beamhub-launch-", ignore_cleanup_errors=True) as tmp:
        ours = beamhub_times(args.launches, Path(tmp))
        plain = plain_times(args.launches, Path(tmp))
    m_ours, m_plain = statistics.median(ours), statistics.median(plain)
    print(f"launches: {args.launches} each; time from click (POST /hub/spawn) to JupyterLab served")
    print(f"{'':38s}{'median s':>10s}{'min s':>8s}{'max s':>8s}")
    print(f"{'BeamHub (LocalBeamSpawner, SSO)':38s}{m_ours:10.2f}{min(ours):8.2f}{max(ours):8.2f}")
    print(f"{'plain JupyterHub (SimpleLocalProcess)':38s}{m_plain:10.2f}{min(plain):8.2f}{max(plain):8.2f}")
    print(f"ratio BeamHub / plain JupyterHub: {m_ours / m_plain:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
