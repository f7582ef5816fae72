"""The jobs service: a JupyterHub service that runs users' batch jobs, each user seeing only their own.

Every request carries the user's own hub token (``Authorization: token ...``);
the service asks the hub whose it is, reads that user's SSO identity from
auth_state (with its own token's admin:auth_state scope) and checks the
environment against the user's groups, exactly as the launch page does.  A backend that
runs jobs on this machine also says where a user's jobs may work (``job_roots``): a ``cwd``
or an output outside the owner's workspace and their groups' data is refused with HTTP 400.

    python -m beamhub.hub.jobs.service --backend local --state DIR --catalog FILE [--access-log FILE]

Logging: what happens to jobs (submitted, cancelled, failed to start) and errors go to stderr in
the hub's format — the hub's log, and `beamhub up`'s terminal; one line per request goes to
``--access-log`` (under `beamhub up`: ``<state>/logs/jobs-access.log``), or stderr without it.

API (under the service prefix, e.g. /services/beamhub-jobs/):
    POST   api/jobs              {"kind", "args", "cwd", "environment", "ranks"} -> 201 job
    GET    api/jobs              the caller's jobs
    GET    api/jobs/<id>         one job (404 for someone else's)
    GET    api/jobs/<id>/logs    its output, text/plain
    DELETE api/jobs/<id>         cancel it
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
from pathlib import Path
from urllib.parse import urlparse

from jupyterhub.services.auth import HubAuth
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPClientError

from beamhub.hub.catalog import Catalog, load_catalog
from beamhub.hub.identity import Identity
from beamhub.hub.jobs.kube import KubernetesBackend
from beamhub.hub.jobs.local import LocalBackend
from beamhub.hub.jobs.model import FINISHED, JobRequestError, parse_request
from beamhub.hub.jobs.paths import confine
from beamhub.hub.jobs.store import JobStore
from beamhub.hub.pidfiles import remove_pid_file, write_pid_file

log = logging.getLogger("beamhub-jobs")

# The hub's own line format, so `beamhub up` treats these lines as it treats the hub's.
LOG_FORMAT = "[%(levelname)1.1s %(asctime)s.%(msecs)03d beamhub-jobs] %(message)s"
LOG_DATE = "%Y-%m-%d %H:%M:%S"


def setup_logging(access_log: str = "") -> None:
    """Service events on stderr; per-request lines (Tornado's access log and its 4xx notes) to ``access_log``.

    Tornado logs each request to ``tornado.access`` and a refused one (an HTTPError with a
    message) once more to ``tornado.general``; both are request noise, kept to the file.
    Uncaught handler errors (``tornado.application``) stay on stderr with their traceback.
    """
    formatter = logging.Formatter(LOG_FORMAT, LOG_DATE)
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [console]
    root.setLevel(logging.INFO)
    if access_log:
        handler = logging.FileHandler(access_log)
        handler.setFormatter(formatter)
        for name in ("tornado.access", "tornado.general"):
            logger = logging.getLogger(name)
            logger.handlers[:] = [handler]
            logger.propagate = False


class JobsContext:
    """What every handler needs: the hub's auth, the catalog, the store and the backend."""

    def __init__(self, hub_auth: HubAuth, catalog: Catalog, store: JobStore, backend):
        self.hub_auth, self.catalog, self.store, self.backend = hub_auth, catalog, store, backend

    async def identity_of(self, name: str) -> Identity | None:
        url = f"{self.hub_auth.api_url}/users/{name}"
        try:
            resp = await AsyncHTTPClient().fetch(url, headers={"Authorization": f"token {self.hub_auth.api_token}"})
        except HTTPClientError:
            return None
        return Identity.from_auth_state(json.loads(resp.body).get("auth_state"))


class JobsHandler(web.RequestHandler):
    """Base: JSON errors, and the calling user from their hub token."""

    def initialize(self, ctx: JobsContext):
        self.ctx = ctx

    def check_xsrf_cookie(self):  # token-authenticated API, no cookies
        pass

    def write_error(self, status_code, **kwargs):
        exc = kwargs.get("exc_info", (None, None))[1]
        message = exc.log_message if isinstance(exc, web.HTTPError) and exc.log_message else self._reason
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"status": status_code, "message": message}))

    async def caller(self) -> dict:
        header = self.request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() not in ("token", "bearer") or not token:
            raise web.HTTPError(401, "send your hub token: Authorization: token <JUPYTERHUB_API_TOKEN>")
        user = await self.ctx.hub_auth.user_for_token(token, sync=False)
        if not user or user.get("kind", "user") != "user":
            raise web.HTTPError(403, "this token does not belong to a hub user")
        return user

    def own_job(self, user: dict, job_id: str):
        job = self.ctx.store.get(user["name"], job_id)
        if job is None:
            raise web.HTTPError(404, f"you have no job {job_id!r}")
        return job


class JobListHandler(JobsHandler):
    async def get(self):
        user = await self.caller()
        jobs = [await self.ctx.backend.refresh(j) for j in self.ctx.store.list(user["name"])]
        self.finish({"jobs": [j.to_json() for j in jobs]})

    async def post(self):
        user = await self.caller()
        try:
            body = json.loads(self.request.body or b"null")
        except ValueError:
            raise web.HTTPError(400, "the request body is not valid JSON") from None
        try:
            job = parse_request(body, user["name"])
        except JobRequestError as exc:
            raise web.HTTPError(400, str(exc)) from None
        job.environment = job.environment or self.ctx.catalog.default_slug()
        env = self.ctx.catalog.get(job.environment)
        if env is None:
            raise web.HTTPError(400, f"there is no environment {job.environment!r} in the catalog")
        identity = await self.ctx.identity_of(user["name"])
        if identity is None:
            raise web.HTTPError(403, "no SSO identity for you on the hub: sign in again")
        if not (env.allowed_for(identity.groups) or user.get("admin")):
            raise web.HTTPError(
                403, f"you may not run jobs in {env.title!r}: it is open to the group(s) {', '.join(env.groups)}"
            )
        job_roots = getattr(self.ctx.backend, "job_roots", None)
        if job_roots is not None:  # local processes: paths are this machine's, checked here
            try:
                job.cwd = str(confine(job, job_roots(user["name"], identity, env)))
            except JobRequestError as exc:
                raise web.HTTPError(400, str(exc)) from None
        self.ctx.store.save(job)
        try:
            await self.ctx.backend.submit(job, identity, env)
        except Exception as exc:  # the job is recorded as failed; the caller hears why
            job.state, job.detail = "failed", str(exc)
            self.ctx.store.save(job)
            log.error("%s's job %s (%s) could not start: %s", job.owner, job.id, job.kind, exc)
            raise web.HTTPError(500, f"could not start the job: {exc}") from None
        log.info(
            "%s submitted job %s: %s in %s (%s)",
            job.owner,
            job.id,
            " ".join(job.command),
            job.environment,
            job.detail or job.state,
        )
        self.set_status(201)
        self.finish(job.to_json())


class JobHandler(JobsHandler):
    async def get(self, job_id):
        user = await self.caller()
        job = await self.ctx.backend.refresh(self.own_job(user, job_id))
        self.finish(job.to_json())

    async def delete(self, job_id):
        user = await self.caller()
        job = self.own_job(user, job_id)
        if job.state not in FINISHED:
            await self.ctx.backend.cancel(job)
            log.info("%s cancelled job %s", user["name"], job_id)
        self.finish(self.ctx.store.get(user["name"], job_id).to_json())


class JobLogsHandler(JobsHandler):
    async def get(self, job_id):
        user = await self.caller()
        job = self.own_job(user, job_id)
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish(await self.ctx.backend.logs(job))


def make_app(ctx: JobsContext, prefix: str = "/") -> web.Application:
    prefix = prefix.rstrip("/")
    route = {"ctx": ctx}
    return web.Application(
        [
            (rf"{prefix}/api/jobs/?", JobListHandler, route),
            (rf"{prefix}/api/jobs/([^/]+)/?", JobHandler, route),
            (rf"{prefix}/api/jobs/([^/]+)/logs/?", JobLogsHandler, route),
        ]
    )


def run(
    *,
    backend: str,
    state: str,
    catalog: str = "",
    workspace_root: str = "",
    data_root: str = "",
    listen: str = "",
    access_log: str = "",
    pid_file: str = "",
    namespace: str = "default",
) -> int:
    """Serve the jobs API until SIGINT or SIGTERM; returns the exit status.

    The options are those of ``python -m beamhub.hub.jobs.service``, parsed by
    :mod:`beamhub.hub.commands.jobs_service` (one keyword per option).
    """
    setup_logging(access_log)
    menu = load_catalog(catalog or None)
    store = JobStore(state)
    if backend == "local":
        runner = LocalBackend(store, workspace_root, data_root)
    else:
        runner = KubernetesBackend(store, namespace=namespace)
    url = urlparse(os.environ.get("JUPYTERHUB_SERVICE_URL", "http://127.0.0.1:8765"))

    async def serve():
        app = make_app(JobsContext(HubAuth(), menu, store, runner), os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/"))
        host, _, port = listen.rpartition(":") if listen else (url.hostname, None, url.port)
        recover = getattr(runner, "recover", None)
        if recover is not None:  # jobs an earlier run of the service started: adopt or settle them
            await recover()
        app.listen(int(port or 80), host or "127.0.0.1")
        log.info("%s backend listening on %s", backend, url.geturl())
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):  # the hub stops its services with these
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        await stop.wait()

    if pid_file:
        write_pid_file(Path(pid_file), os.getpid(), "beamhub-jobs")
    try:
        asyncio.run(serve())
    finally:
        if pid_file:
            remove_pid_file(Path(pid_file), os.getpid())
    return 0


if __name__ == "__main__":
    # `python -m beamhub.hub.jobs.service` is the name the hub's configuration starts the service by
    # and `beamhub up` finds it again by; its options are parsed in the commands module, which
    # imports this one, so it is imported here, where this file runs as __main__, not at the top.
    from beamhub.hub.commands.jobs_service import main

    raise SystemExit(main())
