"""Pid files of the platform's services, so the leftovers of a crashed run can be found and stopped.

`beamhub up` starts the SSO provider, the proxy and the hub, and the hub starts the jobs service;
each is the leader of a process group of its own.  After a ``kill -9`` of `beamhub up` or of the
hub nothing stops them in order, so each writes ``<state>/run/<name>.pid`` — its pid and its
start time from ``/proc`` (:mod:`beamhub.hub.procinfo`), JSON, written by temporary name and
rename — and the next `beamhub up` stops the process groups whose leader is still the recorded
process (never one that merely reused the pid) before it starts its own.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from beamhub.atomic import write_atomic
from beamhub.hub.procinfo import group_members, same_process, signal_group, start_time


def write_pid_file(path: Path, pid: int, command: str = "") -> None:
    """Record ``pid`` (and its start time) in ``path``, readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps({"pid": pid, "started": start_time(pid), "command": command}), mode=0o600)


def read_pid_file(path: Path) -> tuple[int, int | None] | None:
    """``(pid, start time)`` from ``path``, or None when it is missing or unreadable."""
    try:
        record = json.loads(path.read_text())
        return int(record["pid"]), record.get("started")
    except (OSError, ValueError, KeyError, TypeError):
        return None


def remove_pid_file(path: Path, pid: int | None = None) -> None:
    """Remove ``path`` (only if it still names ``pid``, when given: a successor may have rewritten it)."""
    if pid is not None:
        record = read_pid_file(path)
        if record is not None and record[0] != pid:
            return
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def stop_recorded(path: Path, grace: float = 15.0) -> int | None:
    """Stop the process group recorded in ``path`` if its leader is still that process; remove the file.

    SIGTERM first (the hub then shuts down in order, keeping sessions), SIGKILL for what is left
    after ``grace`` seconds.  Returns the pid that was stopped, or None when nothing was running.
    """
    record = read_pid_file(path)
    remove_pid_file(path)
    if record is None or not same_process(*record):
        return None
    pid, started = record
    signal_group(pid, started, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while group_members(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if group_members(pid):
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 5
        while group_members(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
    return pid
