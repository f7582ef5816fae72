"""Local jobs survive a restart of the jobs service: re-adopted by pid and start time, cancellable.

Each "service run" is a fresh :class:`LocalBackend` on the same job store in a fresh event loop,
which is what a restarted service is; the job's process is a real one in its own process group.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from beamhub.hub.catalog import load_catalog
from beamhub.hub.identity import Identity
from beamhub.hub.jobs.local import LocalBackend
from beamhub.hub.jobs.model import Job, new_job_id
from beamhub.hub.jobs.store import JobStore
from beamhub.hub.procinfo import group_members, same_process, start_time

ALICE = Identity(username="alice", uid=2001, gid=2001, gids=(3001, 3002), groups=("spi", "tomo"))


class ShellBackend(LocalBackend):
    """The local backend running a shell line instead of `beamhub <kind>`: a job of known length."""

    line = "sleep 600 & sleep 600; wait"  # two processes in the group: cancel must stop both

    def command(self, job):
        return ["/bin/sh", "-c", self.line]


@pytest.fixture
def root():
    """A folder users can pass through (as root the job runs as alice and must reach her workspace)."""
    folder = Path(tempfile.mkdtemp(prefix="beamhub-jobs-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _backend(root: Path, line: str | None = None) -> ShellBackend:
    backend = ShellBackend(JobStore(root / "jobs"), str(root / "users"), str(root))
    if line:
        backend.line = line
    return backend


def _submit(backend: ShellBackend) -> Job:
    """Submit a job in one event loop and leave it running, as a service that then stops would."""
    job = Job(id=new_job_id("tomo"), owner="alice", kind="tomo", args=[], cwd="", environment="tomo")
    backend.store.save(job)

    async def run():
        await backend.submit(job, ALICE, load_catalog().get("tomo"))

    asyncio.run(run())
    return backend.store.get("alice", job.id)


def _wait_for(predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_a_running_job_is_adopted_by_the_next_service_and_cancel_stops_its_group(root):
    job = _submit(_backend(root))
    try:
        assert job.state == "running" and same_process(job.pid, job.started)
        assert _wait_for(lambda: len(group_members(job.pid)) >= 3)  # the wrapper, the shell, two sleeps

        async def next_run():
            backend = _backend(root)
            await backend.recover()
            shown = await backend.refresh(backend.store.get("alice", job.id))
            assert shown.state == "running" and job.id in backend.adopted
            await backend.cancel(shown)
            for _ in range(100):
                if not group_members(job.pid):
                    break
                await asyncio.sleep(0.1)
            return backend.store.get("alice", job.id)

        after = asyncio.run(next_run())
        assert after.state == "cancelled"
        assert group_members(job.pid) == []
    finally:
        if group_members(job.pid):
            os.killpg(job.pid, signal.SIGKILL)


def test_a_job_that_ended_while_the_service_was_away_keeps_its_exit_status(root):
    job = _submit(_backend(root, line="sleep 1; exit 3"))
    assert _wait_for(lambda: not same_process(job.pid, job.started))
    assert _wait_for(lambda: (root / "jobs" / "alice" / f"{job.id}.status").exists())

    async def next_run():
        backend = _backend(root)
        await backend.recover()
        return backend.store.get("alice", job.id)

    after = asyncio.run(next_run())
    assert after.state == "failed" and after.exit_code == 3


def test_an_adopted_job_that_ends_is_recorded_as_it_ended(root):
    job = _submit(_backend(root, line="sleep 3"))

    async def next_run():
        backend = _backend(root)
        await backend.recover()
        assert job.id in backend.adopted
        await asyncio.wait_for(backend.adopted[job.id], timeout=60)
        return backend.store.get("alice", job.id)

    after = asyncio.run(next_run())
    assert after.state == "succeeded" and after.exit_code == 0


def test_a_reused_pid_is_not_mistaken_for_the_job(root):
    """A record whose pid now belongs to another process (start time differs) is not adopted or signalled."""
    stranger = subprocess.Popen(["sleep", "600"], start_new_session=True)
    try:
        backend = _backend(root)
        job = Job(
            id=new_job_id("tomo"),
            owner="alice",
            kind="tomo",
            args=[],
            cwd="",
            environment="tomo",
            state="running",
            backend="local",
            pid=stranger.pid,
            started=start_time(stranger.pid) - 1,
        )
        backend.store.save(job)

        async def next_run():
            await backend.recover()
            assert job.id not in backend.adopted
            await backend.cancel(backend.store.get("alice", job.id))

        asyncio.run(next_run())
        after = backend.store.get("alice", job.id)
        assert after.state == "cancelled"
        assert stranger.poll() is None  # the stranger was not signalled
        settled = Job(**{**after.to_json(), "id": new_job_id("tomo"), "state": "running"})
        backend.store.save(settled)
        asyncio.run(_backend(root).recover())
        lost = backend.store.get("alice", settled.id)
        assert lost.state == "failed" and "exit status unknown" in lost.detail
    finally:
        stranger.kill()
        stranger.wait()
