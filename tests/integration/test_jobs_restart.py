"""A batch job survives a restart of the jobs service: shown running afterwards, and cancel stops it."""

from __future__ import annotations

import os
import signal
import time

import pytest
import requests
from test_jobs_service import _jobs_url, _token, _workdir

from beamhub.hub.procinfo import group_members
from beamhub.kernels import sim
from beamhub.kernels.io.dxchange import write_dx

pytestmark = pytest.mark.integration


def _service_pids(platform) -> list[int]:
    """The jobs service processes of this platform (found by their command line)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = open(f"/proc/{entry}/cmdline", "rb").read().split(b"\0")
        except OSError:
            continue
        if b"beamhub.hub.jobs.service" in cmdline and str(platform.state / "jobs").encode() in cmdline:
            pids.append(int(entry))
    return pids


def test_a_running_job_is_adopted_after_the_service_restarts_and_cancel_stops_it(platform):
    alice = _token(platform, "alice")
    as_alice = {"Authorization": f"token {alice}"}
    workdir = _workdir(platform, "alice", "restart-run")
    scan = sim.simulate_scan(n=32, rows=1, n_angles=45, seed=7)
    write_dx(workdir / "scan.h5", scan.tomo, scan.flat, scan.dark, scan.theta)
    r = requests.post(
        _jobs_url(platform),
        headers=as_alice,
        timeout=30,
        json={
            "kind": "tomo",
            "args": [
                "scan.h5",
                "--out",
                "recon.h5",
                "--algorithm",
                "sirt",
                "--num-iter",
                "10000000",
                "--center",
                "15.5",
            ],
            "cwd": str(workdir),
            "environment": "tomo",
        },
    )
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["state"] == "running" and job["pid"] and job["started"]

    old = _service_pids(platform)
    assert len(old) == 1, old
    os.kill(old[0], signal.SIGTERM)  # the hub starts its managed service again when it sees it gone
    deadline, listing = time.monotonic() + 180, None
    while time.monotonic() < deadline:
        current = _service_pids(platform)
        if current and current != old:
            listing = requests.get(_jobs_url(platform), headers=as_alice, timeout=30)
            if listing.status_code == 200:
                break
        time.sleep(1)
    assert listing is not None and listing.status_code == 200, "the jobs service did not come back"

    shown = {j["id"]: j for j in listing.json()["jobs"]}[job["id"]]
    assert shown["state"] == "running" and shown["pid"] == job["pid"]
    assert group_members(job["pid"])  # still running, in the group the old service started

    cancelled = requests.delete(f"{_jobs_url(platform)}/{job['id']}", headers=as_alice, timeout=30).json()
    assert cancelled["state"] == "cancelled"
    deadline = time.monotonic() + 60
    while group_members(job["pid"]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert group_members(job["pid"]) == []
    again = requests.get(f"{_jobs_url(platform)}/{job['id']}", headers=as_alice, timeout=30).json()
    assert again["state"] == "cancelled"
