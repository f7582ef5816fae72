"""The one-click environment menu, shared by the local and the Kubernetes spawner.

:class:`EnvironmentMenuMixin` turns the catalog into the launch page (a card
per environment the user's groups allow, the last used first), reads the
clicked card from the form, the query string or the REST API, and refuses an
environment the user may not start with HTTP 403 — however the request was
made.  A spawner mixes it in before its base class and implements
:meth:`apply_environment`.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import urlopen

import jinja2
from tornado import web
from traitlets import Bool, Float, Instance, Integer, Unicode, default
from traitlets.config import LoggingConfigurable

from beamhub.hub.catalog import Catalog, Environment, load_catalog
from beamhub.hub.identity import Identity

_TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).with_name("templates")),
    autoescape=True,
)


class EnvironmentRefused(web.HTTPError):
    """The 403 the menu expects: a user asked for an environment their groups do not open.

    It is the answer working as designed, not a fault of the hub, so it is
    logged as one warning line (:class:`ExpectedRefusalLog`), not a traceback.
    """

    def __init__(self, message: str):
        super().__init__(403, message)


class ExpectedRefusalLog(logging.Filter):
    """Rewrite a log record carrying an :class:`EnvironmentRefused` as one WARNING line.

    JupyterHub's spawn form handler logs every exception of ``options_from_form``
    with ``log.error(..., exc_info=True)``; a filter on its logger is the one seam
    that keeps that handler (and its 403 page) as it is while the log shows
    ``Failed to spawn ... with form: 403 You may not start 'GPU'...``.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, EnvironmentRefused):
            record.msg = f"{record.getMessage()}: 403 {exc.log_message}"
            record.args = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.exc_info, record.exc_text = None, None
        return True


def quiet_expected_refusals(log) -> None:
    """Install :class:`ExpectedRefusalLog` on ``log`` (a Logger or LoggerAdapter) once."""
    logger = getattr(log, "logger", log)
    if isinstance(logger, logging.Logger) and not any(isinstance(f, ExpectedRefusalLog) for f in logger.filters):
        logger.addFilter(ExpectedRefusalLog())


@functools.lru_cache(maxsize=8)
def _cached_catalog(path: str) -> Catalog:
    return load_catalog(path or None)


def _minutes(seconds: float) -> str:
    minutes = max(0, round(seconds / 60))
    return "under a minute" if minutes == 0 else f"{minutes} min"


def gpu_availability(summary: dict | None, now: float) -> str | None:
    """The scheduler's /summary in plain words for a GPU card, or None without a summary.

    "3 of 8 GPUs free now · load data 5 min old"; with none free, the expected wait when the
    summary gives one (``expected_wait``, seconds), else that none are free now.  The load's
    age comes from ``measured`` (Unix seconds of the measurement) when the summary has it; a
    summary marked ``stale`` without it says "load data stale".
    """
    if not summary:
        return None
    try:
        free, total = int(summary["free_gpus"]), int(summary.get("total_gpus", 0))
    except (KeyError, TypeError, ValueError):
        return None
    if total <= 0:
        line = "no GPUs in this cluster"
    elif free > 0:
        line = f"{free} of {total} GPUs free now"
    else:
        wait = summary.get("expected_wait")
        line = f"none of {total} GPUs free now"
        if isinstance(wait, (int, float)) and wait > 0:
            line += f"; expected wait {_minutes(wait)}"
    measured = summary.get("measured")
    if isinstance(measured, (int, float)) and measured > 0:
        line += f" · load data {_minutes(now - measured)} old"
    elif summary.get("stale"):
        line += " · load data stale"
    return line


def environment_facts(env: Environment | None, started: datetime | None) -> dict:
    """The home page's facts about a session: title, image, resources, QoS words and hover, since when.

    ``started`` is JupyterHub's ``orm_spawner.started`` (naive UTC); ``since`` is ISO 8601 with
    a ``Z`` so the page's script can show it in the reader's time zone and as "12 min ago".
    """
    since = None
    if started is not None:
        aware = started if started.tzinfo else started.replace(tzinfo=timezone.utc)
        since = aware.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    if env is None:
        return {
            "title": "an environment no longer in the catalog",
            "slug": "",
            "image": "",
            "resources": "",
            "qos_words": "",
            "qos_detail": "",
            "gpus": 0,
            "since": since,
        }
    return {
        "title": env.title,
        "slug": env.slug,
        "image": env.image,
        "resources": env.summary(),
        "qos_words": env.qos_words,
        "qos_detail": env.qos_detail,
        "gpus": env.gpus,
        "since": since,
    }


class EnvironmentMenuMixin(LoggingConfigurable):
    """Catalog-driven options form, option parsing and group checks for a Spawner."""

    catalog_path = Unicode(
        "",
        config=True,
        help="Path of the environment catalog YAML (empty: the catalog shipped with BeamHub).",
    )
    admins_see_all = Bool(True, config=True, help="Hub admins may start every environment, whatever their groups.")
    scheduler_summary_url = Unicode(
        "",
        config=True,
        help="URL of the BeamHub scheduler's /summary; when set, cards show how many GPUs are free now.",
    )
    scheduler_summary_timeout = Float(
        1.0, config=True, help="Seconds to wait for the scheduler summary before leaving it out."
    )

    local_gpus = Integer(
        None,
        allow_none=True,
        config=True,
        help="GPUs a session started by this spawner can use, where the hub can tell (the local spawner "
        "counts this machine's: nvidia-smi, /dev/nvidia*). 0 makes GPU cards and starts say the "
        "session runs on the CPU; None (Kubernetes: GPU pods go to GPU nodes) says nothing.",
    )

    jobs_url = Unicode(
        "",
        config=True,
        help="URL of the BeamHub jobs service, given to sessions as BEAMHUB_JOBS_URL for `beamhub submit`.",
    )

    identity = Instance(Identity, allow_none=True, help="The user's identity from auth_state.")
    chosen_environment = Instance(Environment, allow_none=True, help="The catalog entry being started.")

    @property
    def catalog(self) -> Catalog:
        return _cached_catalog(self.catalog_path)

    # ---- who is asking ----
    async def run_auth_state_hook(self, auth_state):
        """Keep the identity from auth_state before the site's own hook runs."""
        self.identity = Identity.from_auth_state(auth_state)
        return await super().run_auth_state_hook(auth_state)

    async def _load_identity(self) -> Identity | None:
        if self.identity is None:
            self.identity = Identity.from_auth_state(await self.user.get_auth_state())
        return self.identity

    def user_groups(self) -> set[str]:
        """Group names from the SSO identity, plus the hub's own groups of this user."""
        groups = set(self.identity.groups) if self.identity else set()
        groups.update(g.name for g in getattr(self.user, "groups", []) or [])
        return groups

    def may_see_everything(self) -> bool:
        return bool(self.admins_see_all and getattr(self.user, "admin", False))

    def allowed_environments(self) -> list[Environment]:
        """The environments this user may start: last used first, then the default, then file order."""
        allowed = self.catalog.for_groups(self.user_groups(), everything=self.may_see_everything())
        last = self.last_environment_slug()
        default_slug = self.catalog.default_slug()

        def rank(item):
            index, env = item
            return (env.slug != last, env.slug != default_slug, index)

        return [env for _, env in sorted(enumerate(allowed), key=rank)]

    def last_environment_slug(self) -> str | None:
        """The environment of the user's previous start, kept by JupyterHub in its database."""
        options = getattr(self.orm_spawner, "user_options", None) or {}
        slug = options.get("environment") if isinstance(options, dict) else None
        return slug if isinstance(slug, str) else None

    # ---- the launch page ----
    @default("options_form")
    def _options_form_default(self):
        return self._render_launch_cards

    async def _render_launch_cards(self, spawner=None) -> str:
        await self._load_identity()
        environments = self.allowed_environments()
        free = await self._free_gpus()
        return _TEMPLATES.get_template("launch_cards.html").render(
            environments=environments,
            last=self.last_environment_slug(),
            identity=self.identity,
            username=self.user.name,
            free_gpus=free,
            gpu_line=gpu_availability(free, time.time()),
            no_gpu_here=self.local_gpus == 0,
        )

    def gpu_notes(self, env: Environment) -> list[str]:
        """What a start of ``env`` must say first about GPUs: that there is none here, if so."""
        if env.gpus and self.local_gpus == 0:
            return [
                f"This machine has no GPU: {env.title} will run on the CPU (numpy), "
                "correct but slower; ask for a GPU platform for real work"
            ]
        return []

    # ---- the home page (hub/templates/home.html calls this on the user's default spawner) ----
    def running_environment(self) -> Environment | None:
        """The catalog entry of this server's session: the one being started, else the one JupyterHub kept.

        After a hub restart the spawner object is new and ``chosen_environment`` unset, but the
        options of the last start are in the hub's database (``orm_spawner.user_options``).
        """
        if self.chosen_environment is not None:
            return self.chosen_environment
        slug = self.last_environment_slug() or self.catalog.default_slug()
        return self.catalog.get(slug) if slug else None

    def home_context(self) -> dict | None:
        """What the home page says about the running session, or None when none is running."""
        if not (getattr(self, "active", False) or getattr(self, "ready", False)):
            return None
        return environment_facts(self.running_environment(), getattr(self.orm_spawner, "started", None))

    def jobs_api_path(self) -> str:
        """The jobs API as a path on the hub's own address ('/services/beamhub-jobs/api/jobs'), or ''.

        A path, not ``jobs_url`` itself: the browser calls it from the home page, which may be
        open under another host name than the configured public URL (localhost, a tunnel).
        """
        if not self.jobs_url:
            return ""
        return urlparse(self.jobs_url).path.rstrip("/") + "/api/jobs"

    async def _free_gpus(self) -> dict | None:
        """The scheduler's /summary (free GPUs now), or None when not configured or not answering."""
        if not self.scheduler_summary_url:
            return None

        def fetch():
            with urlopen(self.scheduler_summary_url, timeout=self.scheduler_summary_timeout) as r:
                return json.load(r)

        try:
            summary = await asyncio.get_running_loop().run_in_executor(None, fetch)
        except Exception as exc:  # the page must render even when the scheduler is down
            self.log.warning("Scheduler summary unavailable: %s", exc)
            return None
        if not isinstance(summary, dict) or "free_gpus" not in summary:
            return None
        return summary

    # ---- what was clicked ----
    @staticmethod
    def _slug_from(data: dict) -> dict:
        value = data.get("environment")
        if isinstance(value, list):
            value = value[0] if value else None
        return {"environment": value} if value else {}

    async def options_from_form(self, formdata):
        """The clicked card's slug, checked now so a forged form gets its 403 before any spawn."""
        options = self._slug_from(formdata)
        await self._load_identity()
        self.resolve_environment(options)
        return options

    async def options_from_query(self, query_data):
        return await self.options_from_form(query_data)

    @default("apply_user_options")
    def _apply_user_options_default(self):
        return EnvironmentMenuMixin._apply_chosen_environment

    async def _apply_chosen_environment(self, user_options):
        await self._load_identity()
        self.chosen_environment = self.resolve_environment(user_options or {})
        self.apply_environment(self.chosen_environment)

    def resolve_environment(self, user_options: dict) -> Environment:
        """The catalog entry named in ``user_options`` (default when absent); 400/403 when not allowed."""
        slug = user_options.get("environment") or self.catalog.default_slug()
        if not isinstance(slug, str):
            raise web.HTTPError(400, f"environment must be a name, not {slug!r}")
        env = self.catalog.get(slug)
        if env is None:
            raise web.HTTPError(400, f"There is no environment {slug!r} in the catalog.")
        if not (self.may_see_everything() or env.allowed_for(self.user_groups())):
            groups = ", ".join(sorted(self.user_groups())) or "none"
            # the spawner's logger and the hub application's ("JupyterHub"), which the handler uses
            quiet_expected_refusals(self.log)
            quiet_expected_refusals(logging.getLogger("JupyterHub"))
            raise EnvironmentRefused(
                f"You may not start {env.title!r}: it is open to the group(s) "
                f"{', '.join(env.groups)}, and yours are: {groups}. "
                "Ask your facility to add you to one of them.",
            )
        return env

    def apply_environment(self, env: Environment) -> None:  # pragma: no cover - abstract
        """Configure this spawner for ``env`` (image, resources, environment variables)."""
        raise NotImplementedError

    # ---- progress for the spawn-pending page ----
    def _reset_progress(self):
        self._beam_events = []

    def report_progress(self, percent: int, message: str) -> None:
        """Add an event to the progress bar the user watches while the environment starts."""
        events = getattr(self, "_beam_events", None)
        if events is None:
            events = self._beam_events = []
        events.append({"progress": percent, "message": message, "time": time.time()})

    async def progress(self):
        """Yield our progress events as they happen; JupyterHub stops us when the spawn ends."""
        sent = 0
        while True:
            events = getattr(self, "_beam_events", [])
            while sent < len(events):
                event = dict(events[sent])
                event.pop("time", None)
                yield event
                sent += 1
            await asyncio.sleep(0.2)
