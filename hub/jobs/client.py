"""The jobs service's client: what ``beamhub submit|jobs|logs|cancel`` send and get back.

The session's own hub token (JUPYTERHUB_API_TOKEN) authenticates every call to
the jobs service at BEAMHUB_JOBS_URL; no cluster credentials are involved.  The
commands' argument parsing and printing are in :mod:`beamhub.hub.commands.jobs`.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request

from beamhub.errors import UsageError


def _endpoint() -> tuple[str, str]:
    url, token = os.environ.get("BEAMHUB_JOBS_URL"), os.environ.get("JUPYTERHUB_API_TOKEN")
    if not url or not token:
        raise UsageError(
            "batch jobs are submitted from inside a BeamHub session "
            "(BEAMHUB_JOBS_URL and JUPYTERHUB_API_TOKEN are not set here)"
        )
    return url.rstrip("/"), token


def _call(method: str, path: str, body: dict | None = None, text: bool = False):
    url, token = _endpoint()
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        f"{url}/api/jobs{path}",
        data=data,
        method=method,
        headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as resp:
            payload = resp.read().decode()
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read().decode()).get("message")
        except ValueError:
            message = exc.reason
        raise UsageError(f"the jobs service answered {exc.code}: {message}") from None
    except urllib.error.URLError as exc:
        raise UsageError(f"cannot reach the jobs service at {url}: {exc.reason}") from None
    return payload if text else json.loads(payload)


def submit(kind: str, args: list[str], cwd: str, environment: str, ranks: int) -> dict:
    """Submit ``beamhub KIND ARGS`` to run in ``cwd``; returns the new job's record."""
    return _call("POST", "", {"kind": kind, "args": args, "cwd": cwd, "environment": environment, "ranks": ranks})


def list_jobs() -> list[dict]:
    """The caller's jobs (records as the service returns them)."""
    return _call("GET", "")["jobs"]


def job_state(job_id: str) -> str:
    """The state of one of the caller's jobs (:data:`beamhub.hub.jobs.model.STATES`)."""
    return _call("GET", f"/{job_id}")["state"]


def job_logs(job_id: str) -> str:
    """The output of one of the caller's jobs so far."""
    return _call("GET", f"/{job_id}/logs", text=True)


def cancel(job_id: str) -> dict:
    """Cancel one of the caller's jobs; returns its record."""
    return _call("DELETE", f"/{job_id}")
