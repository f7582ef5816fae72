"""The SSO provider is not a single point of failure: `beamhub up` restarts it, sessions keep working."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from pathlib import Path

import pytest
import requests
from sso_client import LoginFailed, login, wait_for_lab, xsrf_of
from up_process import UpProcess, pids_of

pytestmark = pytest.mark.integration


@pytest.fixture
def up():
    folder = Path(tempfile.mkdtemp(prefix="beamhub-sso-restart-"))
    folder.chmod(0o755)  # as root, users' sessions pass through it to their workspaces
    run = UpProcess(folder / "state")
    yield run
    try:
        run.stop()
    finally:
        run.kill_sessions()
        shutil.rmtree(folder, ignore_errors=True)


class PortBlocker:
    """Hold the provider's port and close every connection at once: a restarted provider cannot bind it
    (so it stays down while the test looks) and the hub's check of the provider fails fast."""

    def __init__(self, port: int):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # the old provider's TIME_WAITs
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(16)
        threading.Thread(target=self._slam, daemon=True).start()

    def _slam(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.close()

    def close(self):
        self.sock.close()


def _kill_provider_and_keep_it_down(up: UpProcess, timeout: float = 60) -> PortBlocker:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pid in pids_of("provider.mjs", str(up.state)):
            os.kill(pid, signal.SIGKILL)
        try:
            return PortBlocker(up.ports["sso-port"])
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            time.sleep(0.1)  # the old provider still holds the port, or a restarted one was quicker
    raise AssertionError("could not keep the provider's port")


def test_a_crashed_provider_is_restarted_and_sessions_keep_working(up):
    up.start()
    hub_pids = pids_of("jupyterhub", str(up.state))
    session, page = login(up.url, "alice", "alice")
    started = session.post(f"{up.url}/hub/spawn", data={"_xsrf": xsrf_of(page), "environment": "scipy"}, timeout=60)
    assert started.status_code == 200, started.text[-2000:]
    wait_for_lab(session, up.url, "alice", timeout=180)

    blocker = _kill_provider_and_keep_it_down(up)
    try:
        up.wait_for_output("restarting it in")
        # the running session still answers, and the signed-in user still reaches the hub
        status = session.get(f"{up.url}/user/alice/api/status", timeout=30)
        assert status.status_code == 200 and "kernels" in status.json()
        assert session.get(f"{up.url}/hub/home", allow_redirects=False, timeout=30).status_code == 200
        # a new sign-in gets a readable page saying sign-in is unavailable, with a retry link
        fresh = requests.get(f"{up.url}/hub/login?next=/hub/spawn", timeout=30)
        assert fresh.status_code == 503, (fresh.status_code, fresh.url, fresh.text[-1500:])
        assert "Sign-in is unavailable" in fresh.text and 'id="retry-sign-in"' in fresh.text
        assert "Traceback" not in fresh.text and fresh.headers.get("Retry-After")
        # the hub and the proxy were not taken down with it
        assert up.proc.poll() is None and pids_of("jupyterhub", str(up.state)) == hub_pids
    finally:
        blocker.close()

    # the provider comes back by itself, and sign-in works again
    deadline, last = time.monotonic() + 180, None
    while time.monotonic() < deadline:
        try:
            _, again = login(up.url, "bob", "bob")
            if again.status_code == 200 and "/hub/spawn" in again.url:
                break
            last = f"{again.status_code} {again.url}"
        except (LoginFailed, requests.RequestException) as exc:
            last = str(exc)
        time.sleep(1)
    else:
        raise AssertionError(f"sign-in did not come back: {last}\n{up.output()[-3000:]}")
    assert "restarted the SSO provider" in up.output()
    assert up.proc.poll() is None
