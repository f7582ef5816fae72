"""`beamhub up` as a person runs it: prints the URL and logins, Ctrl-C stops all of it."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from beamhub.hub.platform import free_port

pytestmark = pytest.mark.integration


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def tmp_path():
    """A folder every user can pass through: as root, `beamhub up` refuses a state folder its users'
    sessions could not reach (pytest's own tmp_path is under a 0700 folder)."""
    folder = Path(tempfile.mkdtemp(prefix="beamhub-up-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_up_prints_url_and_logins_and_ctrl_c_stops_everything(tmp_path):
    ports = {name: free_port() for name in ("port", "sso-port", "proxy-api-port", "hub-port", "jobs-port")}
    args = [f"--{name}={port}" for name, port in ports.items()]
    proc = subprocess.Popen(
        [sys.executable, "-m", "beamhub", "up", "--state-dir", str(tmp_path / "state"), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    seen, deadline = [], time.monotonic() + 120
    try:
        for line in proc.stdout:
            seen.append(line)
            if "Press Ctrl-C" in line or time.monotonic() > deadline:
                break
        banner = "".join(seen)
        assert f"BeamHub is running at http://127.0.0.1:{ports['port']}" in banner, banner[-3000:]
        assert "alice/alice, bob/bob, admin/admin" in banner
        mode = "isolated mode" if os.geteuid() == 0 else "personal mode, not isolated"
        assert len([line for line in seen if "mode" in line]) == 1 and mode in banner, banner
        assert all(_listening(port) for port in ports.values())
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:  # leave nothing running when Ctrl-C failed: kill, then beamhub down
            proc.kill()
            proc.wait(timeout=30)
            subprocess.run(
                [sys.executable, "-m", "beamhub", "down", "--state-dir", str(tmp_path / "state")], timeout=180
            )
            raise
    assert code == 0
    time.sleep(1)
    assert not [name for name, port in ports.items() if _listening(port)]


def test_up_refuses_a_busy_port_with_one_line(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = subprocess.run(
            [sys.executable, "-m", "beamhub", "up", "--state-dir", str(tmp_path / "s"), f"--port={port}"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert out.returncode == 2
    assert f"port {port} (hub) is already in use" in out.stderr and "Traceback" not in out.stderr
    assert f"held by pid {os.getpid()}" in out.stderr  # the message names who holds the port


def test_up_refuses_a_bad_catalog_naming_entry_and_field(tmp_path):
    bad = tmp_path / "menu.yaml"
    bad.write_text(
        "environments:\n  - {slug: x, title: X, image: i, kind: cpu, qos: gold, groups: ['*'],"
        " resources: {cpu: {limit: 1}, memory: {limit: 1Gi}}}\n"
    )
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "beamhub",
            "up",
            "--state-dir",
            str(tmp_path / "s"),
            "--catalog",
            str(bad),
            f"--port={free_port()}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "environment 'x' (entry 1): field 'qos'" in out.stderr and "Traceback" not in out.stderr
