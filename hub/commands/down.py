"""`beamhub down`: stop the platform `beamhub up` runs in a state folder, and everything it started.

`beamhub up` (Ctrl-C) stops the provider, the proxy and the hub but leaves users' sessions and
batch jobs running, so that the next `beamhub up` adopts them.  `beamhub down` is the full stop,
in this order, each found from what the platform itself recorded and checked to be still the
same process (pid and start time, :mod:`beamhub.hub.procinfo`) before it is signalled:

1. `beamhub up` itself (``run/up.pid``): SIGTERM, so it stops its services in order;
2. services a crashed run left (``run/<service>.pid``: hub, jobs service, proxy, provider);
3. batch jobs still running (the job records in ``jobs/``, kept with pid and start time), each
   recorded as cancelled "by beamhub down";
4. sessions (their pid in the hub database, ``jupyterhub.sqlite``; one counts only while its
   working directory or HOME is still in ``users/``, so a reused pid is never taken for it);
5. whatever else still runs with its working directory or HOME in ``users/``: kernels,
   terminals and a job's own children that left their process group.

Process groups get SIGTERM, then SIGKILL after a grace period.  Each stop is one line; when
nothing ran, one line says so and the exit status is 0 as well.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from beamhub.errors import UsageError
from beamhub.hub.jobs.model import FINISHED
from beamhub.hub.jobs.store import JobStore
from beamhub.hub.pidfiles import read_pid_file, remove_pid_file
from beamhub.hub.platform import RUN_DIR, UP_NAME, stop_services
from beamhub.hub.procinfo import (
    ancestors,
    processes_under,
    same_process,
    start_time,
    terminate,
)

#: How long `beamhub up` gets to stop its services in order (each has 15 s) before SIGKILL.
UP_GRACE_S = 60.0
#: How long sessions and jobs get after SIGTERM (kernels shut down, files closed) before SIGKILL.
USER_GRACE_S = 10.0

EPILOG = """\
examples:
  beamhub down                        # the platform of ./state (what 'make up' starts)
  beamhub down --state-dir /srv/beamhub

Stops 'beamhub up' (the SSO provider, the proxy, the hub and the jobs service),
what a crashed run left, every user's session and every running batch job (recorded
as cancelled).  Workspaces, the hub database and job records are kept: the next
'beamhub up' starts with the same users and shows the jobs' history.
"""


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Stop the BeamHub platform started by 'beamhub up' "
        "in a state folder, with every session and batch job it started.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--state-dir", default="state", help="the folder given to 'beamhub up' (default: ./state)")
    return p


def stop_up(state: Path, grace: float = UP_GRACE_S) -> int | None:
    """SIGTERM the `beamhub up` recorded in ``state/run/up.pid`` and wait for it; returns its pid, or None.

    Only that process is signalled, not its process group: under `make up` the group is make's.
    It stops its hub, proxy and provider itself; one that does not end within ``grace`` seconds
    is killed, and step 2 (:func:`stop_services`) then stops what it left.
    """
    path = state / RUN_DIR / f"{UP_NAME}.pid"
    record = read_pid_file(path)
    if record is None or not same_process(*record):
        remove_pid_file(path)
        return None
    stopped, refused = terminate([record], grace=grace, groups=False)
    if refused:
        raise UsageError(f"may not stop 'beamhub up' (pid {record[0]}): run 'beamhub down' as the user who started it")
    remove_pid_file(path, record[0])
    return stopped[0] if stopped else None


def running_jobs(state: Path) -> list:
    """Job records of ``state/jobs`` that are not finished and whose process is still the recorded one."""
    root = state / "jobs"
    if not root.is_dir():
        return []
    return [job for job in JobStore(root).unfinished() if job.pid and same_process(job.pid, job.started)]


def _spawner_states(state: Path) -> list[tuple[str, str, dict]]:
    """``(user, server name, spawner state)`` of every server the hub database records."""
    db = state / "jupyterhub.sqlite"
    if not db.is_file():
        return []
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as con:
            rows = con.execute(
                "SELECT users.name, spawners.name, spawners.state FROM spawners "
                "JOIN users ON spawners.user_id = users.id"
            ).fetchall()
    except sqlite3.Error as exc:
        print(
            f"beamhub down: cannot read the sessions from {db} ({exc}); stopping what runs in "
            f"{state / 'users'} instead",
            file=sys.stderr,
        )
        return []
    found = []
    for user, server, text in rows:
        try:
            record = json.loads(text or "{}")
        except ValueError:
            continue
        if isinstance(record, dict):
            found.append((user, server or "", record))
    return found


def recorded_sessions(state: Path) -> list[tuple[str, int]]:
    """``(user, pid)`` of every session the hub database records as started (it may have ended since)."""
    sessions = []
    for user, server, record in _spawner_states(state):
        try:
            pid = int(record.get("pid") or 0)
        except (ValueError, TypeError):
            continue
        if pid:
            sessions.append((f"{user}/{server}" if server else user, pid))
    return sessions


def recorded_containers(state: Path) -> list[tuple[str, str]]:
    """``(user, container)`` of every session `--sessions docker` started, as the hub database records them."""
    return [
        (user, record["container"])
        for user, _, record in _spawner_states(state)
        if isinstance(record.get("container"), str) and record["container"]
    ]


def stop_containers(state: Path) -> list[tuple[str, str]]:
    """Remove the session containers of ``state`` that still exist; ``(user, container)`` of each removed."""
    docker = shutil.which("docker")
    removed = []
    for user, container in recorded_containers(state) if docker else []:
        done = subprocess.run([docker, "rm", "--force", container], capture_output=True, text=True, timeout=60)
        if done.returncode == 0 and container in done.stdout:
            removed.append((user, container))
    return removed


def shut_down(state: Path, say=print) -> int:
    """Stop everything the platform in ``state`` runs (see the module docstring); returns how many stops."""
    count = 0
    pid = stop_up(state)
    if pid is not None:
        say(f"stopped beamhub up (pid {pid}) and with it the hub, the proxy and the SSO provider")
        count += 1
    for name, pid in stop_services(state):
        say(f"stopped the {name} (pid {pid}) left running by an earlier beamhub up")
        count += 1

    users = state / "users"
    jobs = running_jobs(state)
    live = set(processes_under(users)) if users.is_dir() else set()
    sessions = [(user, pid) for user, pid in recorded_sessions(state) if pid in live]
    targets = [(job.pid, job.started) for job in jobs] + [(pid, start_time(pid)) for _, pid in sessions]
    stopped, refused = terminate(targets, grace=USER_GRACE_S)
    for job in jobs:
        if job.pid in stopped:
            _record_cancelled(state, job)
            say(f"stopped {job.owner}'s batch job {job.id} (beamhub {job.kind}, pid {job.pid}); recorded as cancelled")
            count += 1
    for user, pid in sessions:
        if pid in stopped:
            say(f"stopped {user}'s session (pid {pid})")
            count += 1

    for user, container in stop_containers(state):
        say(f"stopped {user}'s session container {container}")
        count += 1

    # kernels, terminals, a job's children that made groups of their own: anything still in users/
    mine = ancestors()
    rest = [pid for pid in (processes_under(users) if users.is_dir() else []) if pid not in mine]
    swept, refused_rest = terminate([(pid, start_time(pid)) for pid in rest], grace=USER_GRACE_S)
    if swept:
        say(
            f"stopped {len(swept)} more process(es) running in users' workspaces (kernels, terminals, "
            f"jobs' children): pid {', '.join(map(str, sorted(swept)))}"
        )
        count += 1
    if refused or refused_rest:
        raise UsageError(
            f"may not stop pid {', '.join(map(str, sorted(refused + refused_rest)))}: run "
            "'beamhub down' as the user who started 'beamhub up' (root for an isolated platform)"
        )
    return count


def _record_cancelled(state: Path, job) -> None:
    """Mark ``job`` cancelled in its record, unless it finished on its own meanwhile."""
    store = JobStore(state / "jobs")
    current = store.get(job.owner, job.id) or job
    if current.state in FINISHED:
        return
    current.state, current.finished = "cancelled", time.time()
    current.detail = "stopped by 'beamhub down'"
    store.save(current)


def main(argv: list[str], prog: str) -> int:
    args = build_parser(prog).parse_args(argv)
    state = Path(args.state_dir).resolve()
    if not state.is_dir():
        print(f"{prog}: nothing was running: there is no state folder {state}")
        return 0
    run = state / RUN_DIR
    if run.is_dir() and not os.access(run, os.R_OK | os.X_OK):
        raise UsageError(
            f"cannot read {run}: run 'beamhub down' as the user who started 'beamhub up' "
            "(root for an isolated platform)"
        )
    if shut_down(state, say=lambda line: print(f"{prog}: {line}", flush=True)) == 0:
        print(f"{prog}: nothing was running in {state}")
    return 0
