"""Run jobs as local processes: the embedded platform's backend, so notebooks work unchanged.

A job runs as its owner exactly as their session does: as the SSO uid, gid and supplementary
gids when the service runs as root (:func:`~beamhub.hub.isolation.credentials`), with the
session's variables (:func:`~beamhub.hub.session_env.session_environment`: identity, data
mounts, threads shared among MPI ranks), HOME the owner's workspace and PATH this
installation's bin first.  It inherits nothing else from the service, whose own environment
holds a hub token with the ``admin:auth_state`` scope.

Jobs outlive the service: each runs in a process group of its own, and its record keeps the
pid and the process's start time (:mod:`beamhub.hub.procinfo`).  A restarted service adopts
every recorded job whose process is still that one (a reused pid is not), shows it running,
watches it to its end and can cancel it; a job that ended meanwhile gets the exit status its
wrapper wrote.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
import time
from pathlib import Path

from beamhub.hub.catalog import Environment, Mount
from beamhub.hub.identity import Identity
from beamhub.hub.isolation import credentials, ensure_workspace, process_environment
from beamhub.hub.jobs.model import FINISHED, Job
from beamhub.hub.jobs.paths import JobRoots
from beamhub.hub.jobs.store import JobStore
from beamhub.hub.procinfo import group_members, same_process, signal_group, start_time
from beamhub.hub.session_env import local_path, on_this_machine, session_environment

#: Variables of the service's own environment a job keeps (language and time zone, nothing else).
KEPT_VARIABLES = ("LANG", "LC_ALL", "LC_CTYPE", "TZ")

#: Every job runs under this shell line, which writes the command's exit status to its own stdin: a
#: ``<id>.status`` file the service opened for writing (the command itself reads /dev/null).  The
#: status then outlives the service: a job that ends while the service is restarting is still
#: recorded as succeeded or failed, not lost.  A shell, not a Python wrapper: one tiny process.
STATUS_WRAPPER = ["/bin/sh", "-c", '"$@" </dev/null; status=$?; echo "$status" >&0; exit "$status"', "beamhub-job"]
#: How often an adopted job (one an earlier run of the service started) is checked for its end.
ADOPTED_POLL_S = 1.0
#: How long a cancelled job has to stop after SIGTERM before its process group gets SIGKILL.
CANCEL_GRACE_S = 10.0


class LocalBackend:
    """`python -m beamhub <kind> <args>` (under `mpiexec -n N` for EMC with ranks), one process group each."""

    name = "local"

    def __init__(self, store: JobStore, workspace_root: str = "", data_root: str = ""):
        self.store = store
        self.workspace_root = workspace_root
        self.data_root = data_root or (str(Path(workspace_root).parent) if workspace_root else "")
        self.procs: dict[str, asyncio.subprocess.Process] = {}  # jobs this run started (our children)
        self.adopted: dict[str, asyncio.Task] = {}  # jobs an earlier run started that still run

    def workspace(self, owner: str) -> Path:
        return Path(self.workspace_root) / owner

    def mounts(self, identity: Identity, env: Environment) -> list[Mount]:
        """The environment's data folders on this machine that the owner's groups may read."""
        return [
            m
            for m in env.mounts
            if m.local_path and m.allowed_for(identity.groups) and (Path(self.data_root) / m.local_path).is_dir()
        ]

    def job_roots(self, owner: str, identity: Identity, env: Environment) -> JobRoots:
        """Where ``owner``'s job in ``env`` may work: their workspace and their groups' data folders."""
        folders = [(Path(self.data_root) / m.local_path, m.read_only) for m in self.mounts(identity, env)]
        return JobRoots(
            workspace=self.workspace(owner),
            read_only=tuple(p for p, ro in folders if ro),
            writable=tuple(p for p, ro in folders if not ro),
        )

    def command(self, job: Job) -> list[str]:
        cmd = [sys.executable, "-m", "beamhub", job.kind, *job.args]
        if job.ranks > 1:
            mpiexec = shutil.which("mpiexec")
            if not mpiexec:
                raise RuntimeError("mpiexec is not installed here: EMC over several ranks needs MPI")
            cmd = [mpiexec, "--oversubscribe", "-n", str(job.ranks), *cmd]
        return cmd

    def environment(self, job: Job, identity: Identity, env: Environment) -> dict[str, str]:
        """The job's whole environment: built here, not inherited from the service."""
        return {
            **{k: os.environ[k] for k in KEPT_VARIABLES if k in os.environ},
            "PATH": local_path(inherited=os.environ.get("PATH")),
            **process_environment(identity, self.workspace(job.owner), job.owner),
            **session_environment(
                env,
                identity,
                mounts=on_this_machine(self.mounts(identity, env), self.data_root),
                ranks=job.ranks,
                extra={"BEAMHUB_JOB_ID": job.id},
            ),
        }

    async def submit(self, job: Job, identity: Identity, env: Environment) -> None:
        who = credentials(identity)  # refuses to run anything as root
        ensure_workspace(self.workspace(job.owner), identity)
        cwd = job.cwd or str(self.workspace(job.owner))
        log = open(self.store.log_path(job), "ab")
        status = open(self.store.status_path(job), "wb")
        try:
            proc = await asyncio.create_subprocess_exec(
                *STATUS_WRAPPER,
                *self.command(job),
                cwd=cwd,
                env=self.environment(job, identity, env),
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                stdin=status,
                start_new_session=True,
                **who,
            )
        finally:
            log.close()
            status.close()
        job.state, job.backend, job.detail = "running", self.name, f"pid {proc.pid}"
        job.pid, job.started = proc.pid, start_time(proc.pid)
        self.procs[job.id] = proc
        self.store.save(job)
        asyncio.get_running_loop().create_task(self._watch(job, proc))

    async def _watch(self, job: Job, proc) -> None:
        code = await proc.wait()
        self._finish(job, code)
        self.procs.pop(job.id, None)

    async def recover(self) -> None:
        """At service start: adopt every recorded job whose process still runs, settle the others."""
        for job in self.store.unfinished():
            if job.backend == self.name:
                await self.refresh(job)

    async def _follow(self, job: Job) -> None:
        """Watch an adopted job (not our child: no wait() for it) until its process is gone."""
        while same_process(job.pid, job.started):
            await asyncio.sleep(ADOPTED_POLL_S)
        self._finish(job, None)
        self.adopted.pop(job.id, None)

    def _finish(self, job: Job, code: int | None) -> None:
        """Record how ``job`` ended: ``code``, or the status its wrapper wrote, unless it was cancelled."""
        current = self.store.get(job.owner, job.id) or job
        if current.state in FINISHED:
            return
        if code is None:
            code = self._written_status(current)
        if code is None:
            current.state, current.detail = "failed", "ended while the jobs service was away; exit status unknown"
        else:
            current.state, current.exit_code = ("succeeded" if code == 0 else "failed"), code
        current.finished = time.time()
        self.store.save(current)

    def _written_status(self, job: Job) -> int | None:
        try:
            return int(self.store.status_path(job).read_text().strip())
        except (OSError, ValueError):
            return None

    async def refresh(self, job: Job) -> Job:
        if job.state == "running" and job.id not in self.procs and job.id not in self.adopted:
            if same_process(job.pid, job.started):
                # started by an earlier run of the service and still running: ours to watch again
                self.adopted[job.id] = asyncio.get_running_loop().create_task(self._follow(job))
            else:
                self._finish(job, None)
                job = self.store.get(job.owner, job.id) or job
        return job

    async def logs(self, job: Job) -> str:
        path = self.store.log_path(job)
        return path.read_text(errors="replace") if path.exists() else ""

    async def cancel(self, job: Job) -> None:
        """Record the job cancelled and stop its whole process group (SIGTERM, SIGKILL after a grace)."""
        proc = self.procs.get(job.id)
        job.state, job.finished = "cancelled", time.time()
        self.store.save(job)
        if proc is not None and proc.returncode is None:
            started = job.started or start_time(proc.pid)
            sent = signal_group(proc.pid, started)
        else:
            sent = signal_group(job.pid, job.started)
        if sent:
            asyncio.get_running_loop().create_task(self._kill_after_grace(job.pid or proc.pid))

    async def _kill_after_grace(self, pgid: int) -> None:
        """SIGKILL what is left of a cancelled job's process group once the grace period is over."""
        deadline = time.monotonic() + CANCEL_GRACE_S
        while group_members(pgid) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        if group_members(pgid):
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
