"""Crash recovery: after `kill -9` of `beamhub up` or of the hub, the next `beamhub up` starts cleanly.

It stops the services the crashed run left (by pid file and process group), the hub adopts
the sessions that still run, and the crash message names a log that holds the cause.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest
from sso_client import login, wait_for_lab, xsrf_of
from up_process import UpProcess, pids_of

from beamhub.hub.procinfo import start_time

pytestmark = pytest.mark.integration


@pytest.fixture
def folder():
    path = Path(tempfile.mkdtemp(prefix="beamhub-crash-"))
    path.chmod(0o755)  # as root, users' sessions pass through it to their workspaces
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _services(run: UpProcess) -> dict[str, list[int]]:
    """The live service processes of one platform, found by their command lines (not by our pid files)."""
    return {
        "sso": pids_of("provider.mjs", str(run.state)),
        "proxy": pids_of("configurable-http-proxy", f"--api-port {run.ports['proxy-api-port']}"),
        "hub": pids_of("jupyterhub", str(run.state / "jupyterhub_config.py")),
        "jobs": pids_of("beamhub.hub.jobs.service", str(run.state)),
    }


def _identities(pids: dict[str, list[int]]) -> set[tuple[int, int | None]]:
    return {(pid, start_time(pid)) for group in pids.values() for pid in group}


def _still_alive(identities) -> set[tuple[int, int | None]]:
    return {(pid, started) for pid, started in identities if started is not None and start_time(pid) == started}


def test_kill_9_of_beamhub_up_then_up_again_adopts_the_session(folder):
    first = UpProcess(folder / "state")
    second = None
    try:
        first.start()
        session, page = login(first.url, "alice", "alice")
        started = session.post(
            f"{first.url}/hub/spawn", data={"_xsrf": xsrf_of(page), "environment": "scipy"}, timeout=60
        )
        assert started.status_code == 200, started.text[-2000:]
        wait_for_lab(session, first.url, "alice", timeout=180)
        old = _identities(_services(first))
        assert len(old) == 4, _services(first)

        os.kill(first.proc.pid, signal.SIGKILL)
        first.proc.wait(timeout=30)

        second = UpProcess(folder / "state", first.ports)  # the same state folder and ports
        second.start()
        assert not _still_alive(old)  # the old provider, proxy, hub and jobs service are all gone
        now = _services(second)
        assert all(len(pids) == 1 for pids in now.values()), now
        # the session outlived both runs: the new hub adopted it and routes to it again
        lab = wait_for_lab(session, second.url, "alice", timeout=120)
        assert '"hubUser": "alice"' in lab.text
    finally:
        for run in (second, first):
            if run is not None:
                run.stop()
        first.kill_sessions()


def test_kill_9_of_the_hub_names_the_log_and_the_next_up_cleans_up(folder):
    first = UpProcess(folder / "state")
    second = None
    try:
        first.start()
        login(first.url, "bob", "bob")
        services = _services(first)
        old = _identities(services)
        os.kill(services["hub"][0], signal.SIGKILL)
        assert first.proc.wait(timeout=120) == 2
        said = first.output()
        log = first.state / "logs" / "hub.log"
        assert f"the hub was killed by SIGKILL; the cause is in {log}" in said, said[-3000:]
        # the hub's own output is in that log, not only on the terminal
        assert "JupyterHub is now running" in log.read_text(errors="replace")

        second = UpProcess(folder / "state", first.ports)
        text = second.start()
        assert "Traceback" not in text
        assert not _still_alive(old)  # provider, proxy and the dead hub's jobs service are gone
        login(second.url, "bob", "bob")
    finally:
        for run in (second, first):
            if run is not None:
                run.stop()
        first.kill_sessions()


def test_a_record_of_a_reused_pid_is_not_stopped(folder):
    """A pid file left by a crash whose pid now belongs to someone else: removed, nobody signalled."""
    stranger = subprocess.Popen(["sleep", "600"], start_new_session=True)
    try:
        state = folder / "state"
        (state / "run").mkdir(parents=True)
        (state / "run" / "proxy.pid").write_text(
            f'{{"pid": {stranger.pid}, "started": {start_time(stranger.pid) - 1}, "command": "proxy"}}'
        )
        run = UpProcess(state)
        try:
            text = run.start()
        finally:
            run.stop()
        assert "stopped the proxy" not in text
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()
