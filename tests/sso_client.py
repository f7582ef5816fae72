"""Drive the real OAuth/OIDC login over HTTP, as a browser would, with requests."""

from __future__ import annotations

import re
import time
from pathlib import Path

import requests


class LoginFailed(AssertionError):
    pass


def login(base_url: str, username: str, password: str, next_path: str = "/hub/spawn"):
    """Log in through the hub's auto-login -> provider login page -> callback; return (session, response)."""
    session = requests.Session()
    page = session.get(f"{base_url}/hub/login?next={next_path}", timeout=30)
    match = re.search(r'action="(/interaction/[^"]+/login)"', page.text)
    if not match:
        raise LoginFailed(f"no provider login form at {page.url} ({page.status_code})")
    issuer = page.url.split("/interaction/")[0]
    response = session.post(issuer + match.group(1), data={"username": username, "password": password}, timeout=60)
    return session, response


def xsrf_of(response) -> str:
    match = re.search(r'name="_xsrf" value="([^"]+)"', response.text)
    if not match:
        raise AssertionError(f"no _xsrf field in {response.url}")
    return match.group(1)


def cards(response) -> list[str]:
    return re.findall(r'data-environment="([^"]+)"', response.text)


def wait_for_lab(session, base_url: str, username: str, timeout: float = 120) -> requests.Response:
    """Poll /user/<name>/lab until JupyterLab itself answers (after the spawn and the server's OAuth)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = session.get(f"{base_url}/user/{username}/lab", timeout=30)
        if last.status_code == 200 and f"/user/{username}/lab" in last.url and "jupyter-config-data" in last.text:
            return last
        time.sleep(0.3)
    raise AssertionError(f"JupyterLab of {username} not ready after {timeout} s: {last.status_code} {last.url}")


class HubAPI:
    """The hub's REST API with the admin service token."""

    def __init__(self, base_url: str, token: str):
        self.base = f"{base_url}/hub/api"
        self.headers = {"Authorization": f"token {token}"}

    def get(self, path, **kw):
        return requests.get(self.base + path, headers=self.headers, timeout=30, **kw)

    def post(self, path, **kw):
        return requests.post(self.base + path, headers=self.headers, timeout=60, **kw)

    def delete(self, path, **kw):
        return requests.delete(self.base + path, headers=self.headers, timeout=60, **kw)

    def user(self, name):
        r = self.get(f"/users/{name}")
        return r.json() if r.status_code == 200 else None

    def stop_all(self, timeout: float = 60):
        users = self.get("/users").json()
        for user in users:
            if user.get("server") or user.get("pending"):
                self.delete(f"/users/{user['name']}/server")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not any(u.get("server") or u.get("pending") for u in self.get("/users").json()):
                return
            time.sleep(0.5)


def dump_logs(platform) -> str:
    """The tail of each service log, for assertion messages."""
    out = []
    for log in sorted(Path(platform.logs).glob("*.log")):
        out.append(f"--- {log.name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-40:]))
    return "\n".join(out)
