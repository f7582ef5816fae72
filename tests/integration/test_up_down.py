"""`beamhub up`'s terminal and logs, `make down` / `beamhub down`, and Ctrl-C under an ignored SIGINT.

Each test runs the real `beamhub up` in a state folder of its own on free ports
(:class:`up_process.UpProcess`) and leaves nothing running, pass or fail (``clean_up``).
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import requests
from sso_client import login, wait_for_lab, xsrf_of
from up_process import UpProcess

from beamhub.hub.jobs.store import JobStore
from beamhub.hub.pidfiles import read_pid_file
from beamhub.hub.procinfo import processes_under, same_process, start_time

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def _folder() -> Path:
    path = Path(tempfile.mkdtemp(prefix="beamhub-down-"))
    path.chmod(0o755)  # as root, users' sessions pass through it to their workspaces
    return path


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _recorded(state: Path) -> set[tuple[int, int | None]]:
    """(pid, start time) of `beamhub up` and of every service it recorded in run/."""
    records = (read_pid_file(path) for path in (state / "run").glob("*.pid"))
    return {record for record in records if record is not None}


def _alive(identities) -> set:
    return {(pid, started) for pid, started in identities if same_process(pid, started)}


@pytest.fixture(scope="module")
def busy():
    """A platform with alice signed in, her session running and one long batch job of hers."""
    folder = _folder()
    run = UpProcess(folder / "state")
    try:
        run.start()
        session, page = login(run.url, "alice", "alice")
        xsrf = xsrf_of(page)
        spawned = session.post(f"{run.url}/hub/spawn", data={"_xsrf": xsrf, "environment": "scipy"}, timeout=60)
        assert spawned.status_code == 200, spawned.text[-2000:]
        wait_for_lab(session, run.url, "alice", timeout=180)
        # a token of alice's own, as her session has, to submit a job that runs until stopped
        token = session.post(
            f"{run.url}/hub/api/users/alice/tokens",
            json={"note": "test", "expires_in": 600},
            headers={"X-XSRFToken": xsrf},
            timeout=30,
        ).json()["token"]
        scan = run.state / "data" / "raw" / "tomo" / "example-scan.h5"  # seeded by beamhub up
        submitted = requests.post(
            f"{run.url}/services/beamhub-jobs/api/jobs",
            timeout=30,
            headers={"Authorization": f"token {token}"},
            json={
                "kind": "tomo",
                "environment": "tomo",
                "args": [str(scan), "--out", "recon.h5", "--algorithm", "sirt", "--num-iter", "1000000"],
            },
        )
        assert submitted.status_code == 201, submitted.text
        run.job = submitted.json()
        yield run
    finally:
        run.clean_up()
        shutil.rmtree(folder, ignore_errors=True)


def test_terminal_shows_sign_ins_spawns_and_jobs_while_requests_go_to_state_logs(busy):
    said = busy.wait_for_output(f"alice submitted job {busy.job['id']}")
    assert "User logged in: alice" in said and "User alice took" in said  # a sign-in and a spawn
    assert "full log, every request too: " + str(busy.state / "logs" / "hub.log") in said
    # no access lines on the terminal: not the hub's, not the session's, not the jobs service's
    requests_shown = [line for line in said.splitlines() if " GET /" in line or " POST /" in line]
    assert not requests_shown, requests_shown[:5]
    # they are in the log folder the banner names
    hub_log = (busy.state / "logs" / "hub.log").read_text(errors="replace")
    assert "200 GET /hub/api" in hub_log and "POST /hub/spawn" in hub_log and "User logged in: alice" in hub_log
    assert "GET /user/alice/" in hub_log  # the session's own access lines
    jobs_log = (busy.state / "logs" / "jobs-access.log").read_text(errors="replace")
    assert "201 POST /services/beamhub-jobs/api/jobs" in jobs_log


def test_make_down_stops_the_platform_sessions_and_jobs_and_says_what(busy):
    users = busy.state / "users"
    services = _alive(_recorded(busy.state))
    assert len(services) == 5, services  # beamhub up, the hub, the jobs service, the proxy, the provider
    in_workspaces = {(pid, start_time(pid)) for pid in processes_under(users)}
    job_pid = busy.job["pid"]
    assert job_pid in {pid for pid, _ in in_workspaces}  # the session and the job run in users/

    out = subprocess.run(
        ["make", "-s", "--no-print-directory", "-C", str(REPO), "down", f"STATE_DIR={busy.state}"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"stopped beamhub up (pid {busy.proc.pid})" in out.stdout, out.stdout
    assert f"stopped alice's batch job {busy.job['id']} (beamhub tomo, pid {job_pid})" in out.stdout
    assert "stopped alice's session (pid " in out.stdout
    assert busy.proc.wait(timeout=30) == 0  # beamhub up stopped in order, not killed

    assert not _alive(services) and not _alive(in_workspaces)
    assert not processes_under(users)
    assert not [port for port in busy.ports.values() if _listening(port)]
    job = JobStore(busy.state / "jobs").get("alice", busy.job["id"])
    assert job.state == "cancelled" and "beamhub down" in job.detail

    again = subprocess.run(
        [sys.executable, "-m", "beamhub", "down", "--state-dir", str(busy.state)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 0 and again.stdout == f"beamhub down: nothing was running in {busy.state}\n"


def test_up_under_an_ignored_sigint_stops_on_ctrl_c_and_refuses_a_second_up():
    folder = _folder()
    run = UpProcess(folder / "state")
    try:
        run.start(ignore_sigint=True)
        services = _alive(_recorded(run.state))
        assert len(services) == 5, services
        # a second `beamhub up` on the same folder would stop this one's services: it is refused
        second = subprocess.run(
            [sys.executable, "-m", "beamhub", "up", "--state-dir", str(run.state)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 2
        assert f"another 'beamhub up' (pid {run.proc.pid}) is running" in second.stderr
        assert _alive(services) == services

        run.proc.send_signal(signal.SIGINT)
        assert run.proc.wait(timeout=90) == 0
        assert "stopping the hub, the proxy and the provider" in run.output()
        deadline = time.monotonic() + 10
        while _alive(services) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _alive(services)
        assert not [port for port in run.ports.values() if _listening(port)]
        assert not list((run.state / "run").glob("*.pid"))
    finally:
        run.clean_up()
        shutil.rmtree(folder, ignore_errors=True)
