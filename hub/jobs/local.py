"""Run jobs as local processes: the embedded platform's backend, so notebooks work unchanged."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
import time

from beamhub.hub.catalog import Environment
from beamhub.hub.identity import Identity
from beamhub.hub.jobs.model import FINISHED, Job
from beamhub.hub.jobs.store import JobStore

MPI_ROOT_ENV = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}


class LocalBackend:
    """`python -m beamhub <kind> <args>` (under `mpiexec -n N` for EMC with ranks), one process group each."""

    name = "local"

    def __init__(self, store: JobStore, workspace_root: str = ""):
        self.store = store
        self.workspace_root = workspace_root
        self.procs: dict[str, asyncio.subprocess.Process] = {}

    def command(self, job: Job) -> list[str]:
        cmd = [sys.executable, "-m", "beamhub", job.kind, *job.args]
        if job.ranks > 1:
            mpiexec = shutil.which("mpiexec")
            if not mpiexec:
                raise RuntimeError("mpiexec is not installed here: EMC over several ranks needs MPI")
            extra = ["--allow-run-as-root", "--oversubscribe"] if os.geteuid() == 0 else ["--oversubscribe"]
            cmd = [mpiexec, *extra, "-n", str(job.ranks), *cmd]
        return cmd

    async def submit(self, job: Job, identity: Identity, env: Environment) -> None:
        cwd = job.cwd or os.path.join(self.workspace_root, job.owner)
        os.makedirs(cwd, exist_ok=True)
        cores = max(1, int(env.cpu.limit))
        environ = {
            **os.environ, **env.local_env, **identity.environment(),
            "BEAMHUB_ENVIRONMENT": env.slug, "BEAMHUB_JOB_ID": job.id,
            "OMP_NUM_THREADS": str(max(1, cores // job.ranks)),
            **(MPI_ROOT_ENV if os.geteuid() == 0 else {}),
        }
        log = open(self.store.log_path(job), "ab")
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.command(job), cwd=cwd, env=environ, stdout=log, stderr=asyncio.subprocess.STDOUT,
                stdin=asyncio.subprocess.DEVNULL, start_new_session=True)
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
