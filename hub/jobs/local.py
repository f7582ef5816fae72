"""Run jobs as local processes: the embedded platform's backend, so notebooks work unchanged.

A job runs as its owner exactly as their session does: as the SSO uid, gid and supplementary
gids when the service runs as root (:func:`~beamhub.hub.isolation.credentials`), with the
session's variables (:func:`~beamhub.hub.session_env.session_environment`: identity, data
mounts, threads shared among MPI ranks), HOME the owner's workspace and PATH this
installation's bin first.  It inherits nothing else from the service, whose own environment
holds a hub token with the ``admin:auth_state`` scope.
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
from beamhub.hub.session_env import local_path, session_environment

#: Variables of the service's own environment a job keeps (language and time zone, nothing else).
KEPT_VARIABLES = ("LANG", "LC_ALL", "LC_CTYPE", "TZ")


class LocalBackend:
    """`python -m beamhub <kind> <args>` (under `mpiexec -n N` for EMC with ranks), one process group each."""

    name = "local"

    def __init__(self, store: JobStore, workspace_root: str = "", data_root: str = ""):
        self.store = store
        self.workspace_root = workspace_root
        self.data_root = data_root or (str(Path(workspace_root).parent) if workspace_root else "")
        self.procs: dict[str, asyncio.subprocess.Process] = {}

    def workspace(self, owner: str) -> Path:
        return Path(self.workspace_root) / owner

    def mounts(self, identity: Identity, env: Environment) -> list[Mount]:
        """The environment's data folders on this machine that the owner's groups may read."""
        return [m for m in env.mounts if m.local_path and m.allowed_for(identity.groups)
                and (Path(self.data_root) / m.local_path).is_dir()]

    def job_roots(self, owner: str, identity: Identity, env: Environment) -> JobRoots:
        """Where ``owner``'s job in ``env`` may work: their workspace and their groups' data folders."""
        folders = [(Path(self.data_root) / m.local_path, m.read_only) for m in self.mounts(identity, env)]
        return JobRoots(workspace=self.workspace(owner),
                        read_only=tuple(p for p, ro in folders if ro),
                        writable=tuple(p for p, ro in folders if not ro))

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
            **session_environment(env, identity, mounts=self.mounts(identity, env), ranks=job.ranks,
                                  extra={"BEAMHUB_JOB_ID": job.id}),
        }

    async def submit(self, job: Job, identity: Identity, env: Environment) -> None:
        who = credentials(identity)  # refuses to run anything as root
        ensure_workspace(self.workspace(job.owner), identity)
        cwd = job.cwd or str(self.workspace(job.owner))
        log = open(self.store.log_path(job), "ab")
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.command(job), cwd=cwd, env=self.environment(job, identity, env), stdout=log,
                stderr=asyncio.subprocess.STDOUT, stdin=asyncio.subprocess.DEVNULL, start_new_session=True, **who)
        finally:
            log.close()
        job.state, job.backend, job.detail = "running", self.name, f"pid {proc.pid}"
        self.procs[job.id] = proc
        self.store.save(job)
        asyncio.get_running_loop().create_task(self._watch(job, proc))

    async def _watch(self, job: Job, proc) -> None:
        code = await proc.wait()
        current = self.store.get(job.owner, job.id) or job
        if current.state not in FINISHED:
            current.state = "succeeded" if code == 0 else "failed"
            current.exit_code, current.finished = code, time.time()
            self.store.save(current)
        self.procs.pop(job.id, None)

    async def refresh(self, job: Job) -> Job:
        if job.state == "running" and job.id not in self.procs:
            # the service restarted while the job ran: it is no longer ours to watch
            job.state, job.detail, job.finished = "failed", "lost when the jobs service restarted", time.time()
            self.store.save(job)
        return job

    async def logs(self, job: Job) -> str:
        path = self.store.log_path(job)
        return path.read_text(errors="replace") if path.exists() else ""

    async def cancel(self, job: Job) -> None:
        proc = self.procs.get(job.id)
        job.state, job.finished = "cancelled", time.time()
        self.store.save(job)
        if proc and proc.returncode is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
