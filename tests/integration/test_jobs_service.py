"""Batch jobs through the real jobs service: the user's own hub token, own jobs only, `beamhub submit`."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import h5py
import pytest
import requests
from sso_client import login

from beamhub.hub.platform import DEMO_ACCOUNTS
from beamhub.kernels import sim
from beamhub.kernels.io.dxchange import write_dx

pytestmark = pytest.mark.integration


def _token(platform, name) -> str:
    login(platform.url, name, name)  # the user exists only after signing in once
    r = platform.api.post(f"/users/{name}/tokens", json={"note": "test session", "expires_in": 3600})
    assert r.status_code in (200, 201), r.text
    return r.json()["token"]


def _account(name) -> dict:
    return next(a for a in DEMO_ACCOUNTS if a["username"] == name)


def _workdir(platform, name, sub) -> Path:
    """A folder in ``name``'s workspace that is theirs, as one made in their session is (jobs work only there)."""
    account = _account(name)
    workspace = platform.state / "users" / name
    folder = workspace / sub
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        for path in (workspace, folder):
            os.chown(path, account["uid"], account["gid"])
        workspace.chmod(0o700)
    return folder


def _jobs_url(platform) -> str:
    return f"{platform.url}/services/beamhub-jobs/api/jobs"


def _wait(platform, token, job_id, timeout=120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = requests.get(
            f"{_jobs_url(platform)}/{job_id}", headers={"Authorization": f"token {token}"}, timeout=30
        ).json()
        if job["state"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} still {job['state']} after {timeout} s")


def test_submit_with_the_cli_and_see_only_your_own_jobs(platform):
    alice, bob = _token(platform, "alice"), _token(platform, "bob")
    workdir = _workdir(platform, "alice", "alice-run")
    scan = sim.simulate_scan(n=32, rows=2, n_angles=45, seed=3)
    write_dx(workdir / "scan.h5", scan.tomo, scan.flat, scan.dark, scan.theta)

    session_env = {
        **os.environ,
        "JUPYTERHUB_API_TOKEN": alice,
        "BEAMHUB_JOBS_URL": f"{platform.url}/services/beamhub-jobs/",
        "BEAMHUB_ENVIRONMENT": "tomo",
    }
    out = subprocess.run(
        [sys.executable, "-m", "beamhub", "submit", "tomo", "scan.h5", "--out", "recon.h5", "--quiet"],
        cwd=workdir,
        env=session_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    job_id = out.stdout.split()[1]
    job = _wait(platform, alice, job_id)
    assert job["state"] == "succeeded", requests.get(
        f"{_jobs_url(platform)}/{job_id}/logs", headers={"Authorization": f"token {alice}"}
    ).text
    with h5py.File(workdir / "recon.h5") as f:
        assert f["/exchange/data"].shape == (2, 32, 32)
    if os.geteuid() == 0:  # isolated: the job ran as alice, so what it wrote is hers
        assert (workdir / "recon.h5").stat().st_uid == _account("alice")["uid"]

    listing = subprocess.run(
        [sys.executable, "-m", "beamhub", "jobs"], env=session_env, capture_output=True, text=True, timeout=60
    )
    assert job_id in listing.stdout and "succeeded" in listing.stdout

    # bob sees none of it, and cannot read or cancel it
    as_bob = {"Authorization": f"token {bob}"}
    assert requests.get(_jobs_url(platform), headers=as_bob, timeout=30).json()["jobs"] == []
    assert requests.get(f"{_jobs_url(platform)}/{job_id}", headers=as_bob, timeout=30).status_code == 404
    assert requests.get(f"{_jobs_url(platform)}/{job_id}/logs", headers=as_bob, timeout=30).status_code == 404
    assert requests.delete(f"{_jobs_url(platform)}/{job_id}", headers=as_bob, timeout=30).status_code == 404


def test_forbidden_environment_bad_request_and_no_token(platform):
    bob = _token(platform, "bob")
    as_bob = {"Authorization": f"token {bob}"}
    forbidden = requests.post(
        _jobs_url(platform),
        headers=as_bob,
        timeout=30,
        json={"kind": "emc", "args": ["config.ini"], "environment": "spi-emc"},
    )
    assert forbidden.status_code == 403 and "spi" in forbidden.json()["message"]
    bad = requests.post(_jobs_url(platform), headers=as_bob, timeout=30, json={"kind": "rm", "args": ["-rf"]})
    assert bad.status_code == 400 and "'kind'" in bad.json()["message"]
    garbage = requests.post(_jobs_url(platform), headers=as_bob, timeout=30, data=b"{not json")
    assert garbage.status_code == 400
    anonymous = requests.get(_jobs_url(platform), timeout=30)
    assert anonymous.status_code == 401


def test_cancel_a_running_job(platform):
    alice = _token(platform, "alice")
    as_alice = {"Authorization": f"token {alice}"}
    workdir = _workdir(platform, "alice", "cancel-run")
    # SIRT with many iterations on a larger scan runs for a while: cancel it while it runs
    scan = sim.simulate_scan(n=96, rows=8, n_angles=120, seed=5)
    write_dx(workdir / "scan.h5", scan.tomo, scan.flat, scan.dark, scan.theta)
    r = requests.post(
        _jobs_url(platform),
        headers=as_alice,
        timeout=30,
        json={
            "kind": "tomo",
            "args": ["scan.h5", "--out", "recon.h5", "--algorithm", "sirt", "--num-iter", "5000", "--center", "47.5"],
            "cwd": str(workdir),
            "environment": "tomo",
        },
    )
    assert r.status_code == 201, r.text
    job_id = r.json()["id"]
    assert r.json()["state"] == "running"
    _check_job_process(int(r.json()["detail"].split()[1]), job_id, platform)
    cancelled = requests.delete(f"{_jobs_url(platform)}/{job_id}", headers=as_alice, timeout=30).json()
    assert cancelled["state"] == "cancelled"
    time.sleep(1)
    assert _wait(platform, alice, job_id)["state"] == "cancelled"
    assert not (workdir / "recon.h5").exists()  # no half-written output


def _check_job_process(pid, job_id, platform):
    """The running job: alice's identity and the session's variables, nothing of the service's."""
    environ = dict(item.split("=", 1) for item in open(f"/proc/{pid}/environ").read().split("\0") if "=" in item)
    assert environ["BEAMHUB_JOB_ID"] == job_id and environ["BEAMHUB_USER"] == "alice"
    # a local job gets the data mounts too: the folder holding the data here, as its session does
    assert environ["BEAMHUB_DATA_RAW_TOMO"] == str((platform.state / "data" / "raw" / "tomo").resolve())
    assert environ["OMP_NUM_THREADS"] == "4" and environ["BEAMHUB_ENVIRONMENT"] == "tomo"
    assert environ["HOME"].endswith("/users/alice") and environ["PATH"].startswith(os.path.dirname(sys.executable))
    # the service's own hub token (admin:auth_state) and root-only MPI switches never reach a job
    assert not {"JUPYTERHUB_API_TOKEN", "OMPI_ALLOW_RUN_AS_ROOT"} & set(environ)
    if os.geteuid() == 0:
        status = dict(line.split(":", 1) for line in open(f"/proc/{pid}/status").read().splitlines())
        assert status["Uid"].split()[:2] == ["2001", "2001"] and status["Gid"].split()[:2] == ["2001", "2001"]
        assert sorted(status["Groups"].split()) == ["3001", "3002"]


def test_cli_outside_a_session_says_what_is_missing():
    env = {k: v for k, v in os.environ.items() if k not in ("JUPYTERHUB_API_TOKEN", "BEAMHUB_JOBS_URL")}
    out = subprocess.run([sys.executable, "-m", "beamhub", "jobs"], env=env, capture_output=True, text=True)
    assert out.returncode == 2
    assert "inside a BeamHub session" in out.stderr and "Traceback" not in out.stderr
