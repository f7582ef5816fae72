"""The embedded platform: development OIDC provider, configurable-http-proxy and JupyterHub.

:class:`Platform` starts the three as child processes on 127.0.0.1, waits until
each answers, and stops them in reverse order.  ``beamhub up`` and the
integration tests both use it, so what the tests exercise is what a person runs.
State (hub database, secrets, provider keys, user workspaces) lives in one
folder, so a restart keeps users and their running sessions.

Run as root, the platform is *isolated* (:mod:`beamhub.hub.isolation`): sessions and jobs
run as their users' SSO uids, so the state folder is laid out for that — the folder itself
0711 (users pass through it to their workspace, nothing more), every secret, the database,
the provider's keys, the logs and the job records readable by root only, ``users/`` 0711
with one 0700 workspace per user, and the demo data folders readable by the POSIX group of
the catalog mount's SSO group.  Every service is started with umask 077, so what the hub,
the provider and the jobs service create there (the cookie secret, ``jupyterhub.sqlite``)
is private from the start.

Each service writes its output to ``logs/<name>.log``, so a crash message can name the file
that holds the cause.  The hub's log (its sessions' output and the jobs service's too) is
echoed to the terminal of `beamhub up` through :func:`for_terminal`: start-up, sign-ins,
spawns, warnings and errors, not one line per request — those stay in the log.  Each service
also has a pid file in ``run/`` (:mod:`beamhub.hub.pidfiles`), so the next start stops what a
crashed run left behind (:meth:`Platform.recover`) and `beamhub down` finds it.  Sessions are
not among them: the hub adopts those.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from beamhub.atomic import write_atomic
from beamhub.errors import UsageError
from beamhub.hub.catalog import EVERYONE, Catalog, CatalogError, load_catalog
from beamhub.hub.isolation import command_problem, isolated, unreachable
from beamhub.hub.local import SESSION_COMMAND
from beamhub.hub.pidfiles import remove_pid_file, stop_recorded, write_pid_file
from beamhub.hub.procinfo import port_holders
from beamhub.hub.restart import Backoff

REPO_ROOT = Path(__file__).resolve().parent.parent
PROVIDER_SCRIPT = Path(__file__).with_name("sso") / "provider.mjs"

DEMO_ACCOUNTS = [
    {
        "username": "alice",
        "password": "alice",
        "name": "Alice (SPI and tomography)",
        "email": "alice@beamhub.invalid",
        "uid": 2001,
        "gid": 2001,
        "gids": [3001, 3002],
        "groups": ["spi", "tomo"],
    },
    {
        "username": "bob",
        "password": "bob",
        "name": "Bob (tomography)",
        "email": "bob@beamhub.invalid",
        "uid": 2002,
        "gid": 2002,
        "gids": [3002],
        "groups": ["tomo"],
    },
    {
        "username": "admin",
        "password": "admin",
        "name": "Platform admin",
        "email": "admin@beamhub.invalid",
        "uid": 2000,
        "gid": 2000,
        "gids": [],
        "groups": ["admins"],
    },
]

# The POSIX group of each demo SSO group: the demo data folders of a group's mounts belong to it.
DEMO_GROUP_GIDS = {"spi": 3001, "tomo": 3002}

# A small example for each demo raw-data folder, written on the first start into an empty folder so
# the README's `beamhub submit tomo $BEAMHUB_DATA_RAW_TOMO/example-scan.h5 --out recon.h5` works on
# day one: folder (relative to the state folder) -> `beamhub simulate` arguments, {folder} its path.
# A subprocess, not an import: beamhub.hub does not import beamhub.kernels (docs/DESIGN.md).
DEMO_EXAMPLES = {
    "data/raw/tomo": ["tomo", "{folder}/example-scan.h5", "--seed", "17"],
    "data/raw/spi": ["spi", "{folder}/example", "--num-data", "500", "--seed", "17"],
}

# What in the state folder users may reach: their workspaces, and the data their groups allow.
SHARED_FOLDERS = ("users", "data")

# Pid files of the services (ours and the hub's jobs service), in the order a crashed run's leftovers
# are stopped: the hub first, or it would start the jobs service again.
RUN_DIR = "run"
SERVICE_ORDER = ("hub", "jobs", "proxy", "sso")
#: `beamhub up`'s own pid file in ``run/``: not a service (recovery never stops it), but what
#: `beamhub down` stops first, and what a second `beamhub up` on the same folder refuses to start beside.
UP_NAME = "up"

# A request's access-log line: JupyterHub's ("[I 2026-01-01 10:00:00.000 JupyterHub log:192] 200 GET
# /hub/api ..."), a session's ("[I ... ServerApp] 200 GET ...") or plain Tornado's ("401 GET /x (ip) 1ms").
_ACCESS = re.compile(r"^(?:\[[A-Z] [\d-]+ [\d:.]+ [^\]]*\] )?(\d{3}) [A-Z]+ /")
# A JupyterHub-style record: level letter, date, time, the application, then (for the hub) module:line.
_RECORD = re.compile(r"^\[([A-Z]) [\d-]+ [\d:.]+ (\S+)(?: [^\]]*)?\] ?(.*)$")
# What the hub says once per request besides its access line: kept in the log, not on the terminal.
_PER_REQUEST = (
    "is pending spawn",
    "Setting new xsrf cookie",
    "OAuth redirect:",
    "Skipping XSRF check",
    "Logged-in user",
)
#: Longest line shown on the terminal; the log keeps the whole of it.
TERMINAL_WIDTH = 400


def node_modules_dir() -> Path:
    """Where `npm install` put configurable-http-proxy and oidc-provider (BEAMHUB_NODE_MODULES overrides)."""
    return Path(os.environ.get("BEAMHUB_NODE_MODULES") or REPO_ROOT / "node_modules")


def free_port() -> int:
    """An unused TCP port on 127.0.0.1 (for tests that run beside a live platform)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (secrets live in these), by temporary name and rename."""
    write_atomic(path, text, mode=0o600)


def group_gids(accounts: list[dict], preferred: dict[str, int] | None = None) -> dict[str, int]:
    """The gid standing for each SSO group: one every member of the group holds.

    The provider's accounts say which groups and which gids each user has, not which gid is
    which group; a gid all of a group's members (with supplementary gids) hold is that group's
    (``preferred`` decides when several are).  A group without one is left out, and its data
    stays readable by all.
    """
    preferred = preferred if preferred is not None else DEMO_GROUP_GIDS
    members: dict[str, list[set[int]]] = {}
    for account in accounts:
        held = {int(g) for g in account.get("gids", []) or [] if isinstance(g, int)}
        if not held:
            continue  # an account with no supplementary gids reads no group's data either way
        for group in account.get("groups", []) or []:
            members.setdefault(group, []).append(held)
    result = {}
    for group, sets in members.items():
        common = set.intersection(*sets)
        if preferred.get(group) in common:
            result[group] = preferred[group]
        elif len(common) == 1:
            result[group] = common.pop()
    return result


def _private_child() -> None:
    """In a service's child before exec: umask 077 (its files in the state folder are root's alone),
    default SIGINT/SIGTERM handling, and die with the parent.

    A `beamhub up` started in the background or under nohup may have inherited SIGINT as ignored,
    and an ignored signal stays ignored across exec: the services (and the hub's sessions after
    them) must not inherit that, or the hub could not stop a session with SIGINT.
    """
    os.umask(0o077)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)
    _die_with_parent()


def for_terminal(line: str, hidden_before: bool = False) -> bool:
    """Whether a line of the hub's log is worth the terminal of `beamhub up` (the log keeps all).

    Shown: the hub's own start-up, sign-ins and spawns, the jobs service's jobs submitted and
    cancelled, and every warning or error (a request
    answered 5xx included).  Kept to the log: access lines of requests that did not fail (the
    hub's, sessions', the jobs service's), the hub's other per-request notes, and sessions'
    informational chatter (extensions loaded, kernels started).  ``hidden_before``: the line
    before was kept to the log; an indented continuation of it is too.
    """
    text = line.rstrip("\n")
    access = _ACCESS.match(text)
    if access:
        return int(access.group(1)) >= 500
    record = _RECORD.match(text)
    if record is None:
        # tracebacks and stray output are shown, except the indented tail of a hidden record
        return not (hidden_before and text[:1] in (" ", "\t"))
    level, application, message = record.groups()
    if level in "WEC":
        return not any(note in message for note in _PER_REQUEST)
    if application not in ("JupyterHub", "beamhub-jobs") and not application.startswith("alembic"):
        return False  # a session's (ServerApp, LabApp, ...) informational lines
    return not any(note in message for note in _PER_REQUEST)


def stop_services(state: Path) -> list[tuple[str, int]]:
    """Stop the services recorded in ``state/run`` whose process is still the recorded one.

    In :data:`SERVICE_ORDER` (the hub first, or it would start the jobs service again), then any
    other pid file there except `beamhub up`'s own.  Returns ``(name, pid)`` of each stopped.
    """
    folder = Path(state) / RUN_DIR
    if not folder.is_dir():
        return []
    names = [n for n in SERVICE_ORDER if (folder / f"{n}.pid").exists()]
    names += sorted(p.stem for p in folder.glob("*.pid") if p.stem not in SERVICE_ORDER and p.stem != UP_NAME)
    stopped = []
    for name in names:
        pid = stop_recorded(folder / f"{name}.pid")
        if pid is not None:
            stopped.append((name, pid))
    return stopped


def _die_with_parent() -> None:
    """In a child before exec: get SIGTERM when `beamhub up` dies, however it dies (Linux).

    Ctrl-C stops the services in order; this covers a `kill -9` or a crashed terminal, so no
    provider or proxy is left holding the ports. Users' sessions are the hub's children, not
    ours, and keep running.
    """
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _mount_groups(catalog: Catalog) -> dict[str, set[str]]:
    """Each local data folder of the catalog and every SSO group any of its mounts is open to."""
    folders: dict[str, set[str]] = {}
    for env in catalog:
        for mount in env.mounts:
            if mount.local_path:
                folders.setdefault(mount.local_path, set()).update(mount.groups)
    return folders


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def exit_description(code: int) -> str:
    """'exited with status 1' or 'was killed by SIGKILL', from a Popen return code."""
    if code is not None and code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with status {code}"


class ServiceCrashed(RuntimeError):
    """The hub or the proxy died under `beamhub up`; the message names the log holding the cause."""

    def __init__(self, name: str, code: int, log: Path, tail: str = ""):
        self.name, self.code, self.log = name, code, log
        message = f"the {name} {exit_description(code)}; the cause is in {log}"
        super().__init__(message + (f"; its last lines:\n{tail}" if tail else ""))


class LogEcho(threading.Thread):
    """Copy what a service appends to its log file to a terminal, until stopped.

    The hub writes to ``logs/hub.log`` — so the log holds everything, even after `beamhub up`
    is gone — and `beamhub up` shows the lines :func:`for_terminal` keeps as they come (all of
    them when ``keep`` is None), each cut to :data:`TERMINAL_WIDTH` characters.
    """

    def __init__(self, path: Path, stream: IO, start: int = 0, keep=for_terminal):
        super().__init__(name=f"echo {path.name}", daemon=True)
        self.path, self.stream, self.offset, self.keep = path, stream, start, keep
        self._stopping = threading.Event()
        self._hidden = False  # whether the last complete line was kept to the log
        self.start()

    def run(self) -> None:
        partial = b""
        with open(self.path, "rb") as log:
            log.seek(self.offset)
            while True:
                chunk = log.read(65536)
                if chunk:
                    lines = (partial + chunk).split(b"\n")
                    partial = lines.pop()  # a line still being written waits for its end
                    shown = self._select(lines)
                    if shown:
                        self._write(shown)
                    continue
                if self._stopping.is_set():
                    if partial:
                        self._write(self._select([partial]))
                    return
                self._stopping.wait(0.2)

    def _select(self, lines: list[bytes]) -> bytes:
        kept = []
        for raw in lines:
            if self.keep is not None:
                text = raw.decode(errors="replace")
                shown = self.keep(text, self._hidden)
                self._hidden = not shown
                if not shown:
                    continue
            if len(raw) > TERMINAL_WIDTH:
                raw = raw[:TERMINAL_WIDTH] + f" ... (cut; the whole line is in {self.path})".encode()
            kept.append(raw + b"\n")
        return b"".join(kept)

    def _write(self, chunk: bytes) -> None:
        try:
            buffer = getattr(self.stream, "buffer", None)
            if buffer is not None:
                self.stream.flush()
                buffer.write(chunk)
                buffer.flush()
            else:
                self.stream.write(chunk.decode(errors="replace"))
                self.stream.flush()
        except (OSError, ValueError):
            pass  # a closed terminal must not take the hub down

    def stop(self) -> None:
        self._stopping.set()
        self.join(timeout=5)


@dataclass
class PlatformConfig:
    """Where the platform keeps its state and which loopback ports it uses."""

    state_dir: Path
    host: str = "127.0.0.1"
    port: int = 8000
    sso_port: int = 8001
    proxy_api_port: int = 8002
    hub_port: int = 8081
    jobs_port: int = 8003
    catalog: str = ""
    accounts: list[dict] = field(default_factory=lambda: [dict(a) for a in DEMO_ACCOUNTS])
    allowed_groups: list[str] | None = None
    admin_groups: list[str] = field(default_factory=lambda: ["admins"])
    notebooks_dir: str = ""
    sessions: str = "local"  # "local": processes of this checkout; "docker": each in its environment's image
    scheduler_summary_url: str = ""
    access_token_ttl: int = 3600
    show_demo_accounts: bool = True
    admin_service_token: str = ""
    provider_restart_max: float = 30.0  # the longest wait between restarts of a crashing provider (s)
    # example data written into empty data folders on start (see DEMO_EXAMPLES); {} writes none
    examples: dict[str, list[str]] = field(default_factory=lambda: {k: list(v) for k, v in DEMO_EXAMPLES.items()})

    @classmethod
    def on_free_ports(cls, state_dir: Path, **settings) -> PlatformConfig:
        """A configuration whose five ports are free loopback ports and whose admin token is new.

        For a platform started beside others (tests, benchmarks); ``settings`` set any other field.
        """
        settings.setdefault("admin_service_token", secrets.token_hex(16))
        ports = ("port", "sso_port", "proxy_api_port", "hub_port", "jobs_port")
        return cls(state_dir=state_dir, **{name: free_port() for name in ports}, **settings)

    @property
    def public_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.sso_port}"


class Platform:
    """Start, check and stop the provider, the proxy and the hub."""

    def __init__(self, config: PlatformConfig, hub_output: IO | None = None, say=None):
        self.config = config
        self.say = say or (lambda line: None)  # one-line notes for the person who started the platform
        self.state = Path(config.state_dir).resolve()
        self.logs = self.state / "logs"
        self.hub_output = hub_output
        self.procs: dict[str, subprocess.Popen] = {}
        self._log_files: list[IO] = []
        self._echoes: list[LogEcho] = []
        self.catalog: Catalog | None = None  # read by check()
        self.provider_backoff = Backoff(maximum=config.provider_restart_max)
        self._started_at: dict[str, float] = {}
        self._provider_restart_at: float | None = None

    # ---- preparation ----
    def check(self, port_grace: float = 0.0) -> None:
        """Fail early, with one clear message, on what would break the start.

        ``port_grace``: seconds to wait for a taken port to come free (after stopping a crashed
        run's services, whose sockets may outlive the moment their process group looked empty).
        """
        try:
            self.catalog = load_catalog(self.config.catalog or None)
        except CatalogError as exc:
            raise UsageError(str(exc)) from None
        if isolated():
            self.check_isolation()
        if self.config.sessions == "docker":
            self.check_docker()
        if not shutil.which("node"):
            raise UsageError("Node.js ('node') is not on PATH; install it (Debian: apt-get install nodejs)")
        modules = node_modules_dir()
        for package in ("configurable-http-proxy", "oidc-provider"):
            if not (modules / package).is_dir():
                raise UsageError(f"{package} is not installed in {modules}; run 'make up' or 'npm ci' in {REPO_ROOT}")
        for name, port in (
            ("hub", self.config.port),
            ("SSO provider", self.config.sso_port),
            ("proxy API", self.config.proxy_api_port),
            ("hub API", self.config.hub_port),
            ("jobs service", self.config.jobs_port),
        ):
            # a service the recovery just stopped may take a moment to let go of its port
            deadline = time.monotonic() + (port_grace if port else 0)
            while _port_in_use("127.0.0.1", port) and time.monotonic() < deadline:
                time.sleep(0.2)
            if _port_in_use("127.0.0.1", port):
                holders = port_holders(port)
                who = (
                    "; held by " + ", ".join(f"pid {pid} ({command[:80]})" for pid, command in holders)
                    if holders
                    else ""
                )
                raise UsageError(
                    f"port {port} ({name}) is already in use on 127.0.0.1{who}; stop what uses it "
                    "or choose another port (see 'beamhub up --help')"
                )

    def check_docker(self) -> None:
        """Sessions in their images need an engine that answers and holds the catalog's images."""
        docker = shutil.which("docker") or "/usr/bin/docker"
        try:
            info = subprocess.run(
                [docker, "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True, timeout=20
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise UsageError(
                f"--sessions docker: the Docker CLI did not answer ({exc}); install docker.io "
                "or start sessions as local processes (the default)"
            ) from None
        if info.returncode != 0:
            lines = (info.stderr or info.stdout).strip().splitlines()
            raise UsageError(
                f"--sessions docker: no Docker engine is answering ({lines[-1] if lines else 'no reply'}); "
                "start one ('make images' starts Debian's dockerd) or leave out --sessions docker"
            )
        listed = subprocess.run(
            [docker, "image", "ls", "--format", "{{.Repository}}:{{.Tag}}"], capture_output=True, text=True, timeout=20
        )
        present = set(listed.stdout.split())  # one call for the whole menu
        missing = sorted({env.image for env in self.catalog.environments} - present)
        if missing:
            self.say(
                f"--sessions docker: not built here yet (a start of one says so): "
                f"{', '.join(missing)} (build them with 'make images')"
            )

    def check_isolation(self) -> None:
        """As root, sessions must be able to run as their users: refuse to start rather than run them as root."""
        problem = command_problem(SESSION_COMMAND)
        if problem:
            raise UsageError(
                f"sessions cannot be isolated: the session command {SESSION_COMMAND} is out of reach of "
                f"the users' uids ({problem}); install BeamHub where every user can execute it "
                "('make up' builds .venv from /usr/bin/python3), or run 'beamhub up' as a normal user "
                "(personal mode)"
            )
        nearest = next(p for p in self.state.parents if p.exists())
        problem = unreachable(nearest)
        if problem:
            raise UsageError(
                f"sessions cannot be isolated: the state folder {self.state} is out of reach of the "
                f"users' uids ({problem}), so no session could open its workspace; choose a --state-dir "
                "that other users can pass through (o+x on every folder above it)"
            )

    def _secrets(self) -> dict[str, str]:
        path = self.state / "secrets.json"
        if path.exists():
            return json.loads(path.read_text())
        values = {
            "client_secret": secrets.token_hex(24),
            "crypt_key": secrets.token_hex(32),
            "proxy_token": secrets.token_hex(32),
        }
        _write_private(path, json.dumps(values))
        return values

    def _write_files(self) -> dict[str, str]:
        cfg = self.config
        for sub in (
            "logs",
            "sso",
            "jobs",
            "users",
            "data/public",
            "data/raw/tomo",
            "data/raw/spi",
            *self._data_folders(),
        ):
            (self.state / sub).mkdir(parents=True, exist_ok=True)
        keys = self._secrets()
        provider = {
            "issuer": cfg.issuer,
            "host": "127.0.0.1",
            "port": cfg.sso_port,
            "state_dir": str(self.state / "sso"),
            "show_demo_accounts": cfg.show_demo_accounts,
            "access_token_ttl": cfg.access_token_ttl,
            "clients": [
                {
                    "client_id": "beamhub",
                    "client_secret": keys["client_secret"],
                    "redirect_uris": [f"{cfg.public_url}/hub/oauth_callback"],
                    "post_logout_redirect_uris": [f"{cfg.public_url}/hub/login"],
                }
            ],
            "accounts": cfg.accounts,
        }
        groups = sorted({g for a in cfg.accounts for g in a.get("groups", [])})
        hub = {
            "state_dir": str(self.state),
            "public_url": cfg.public_url,
            "hub_port": cfg.hub_port,
            "proxy_api_url": f"http://127.0.0.1:{cfg.proxy_api_port}",
            "issuer": cfg.issuer,
            "endpoints": {
                "authorize": f"{cfg.issuer}/auth",
                "token": f"{cfg.issuer}/token",
                "userinfo": f"{cfg.issuer}/me",
                "end_session": f"{cfg.issuer}/session/end",
            },
            "client_id": "beamhub",
            "client_secret": keys["client_secret"],
            "allowed_groups": cfg.allowed_groups if cfg.allowed_groups is not None else groups,
            "admin_groups": cfg.admin_groups,
            "catalog": cfg.catalog,
            "workspace_root": str(self.state / "users"),
            "notebooks_dir": cfg.notebooks_dir,
            "sessions": cfg.sessions,
            "scheduler_summary_url": cfg.scheduler_summary_url,
            "admin_service_token": cfg.admin_service_token,
            "jobs_port": cfg.jobs_port,
            "data_root": str(self.state),
        }
        for name, data in (("sso/provider.json", provider), ("hub-settings.json", hub)):
            _write_private(self.state / name, json.dumps(data, indent=2))
        _write_private(
            self.state / "jupyterhub_config.py",
            "# Written by `beamhub up`; the configuration itself is beamhub.hub.hubconfig.\n"
            "from beamhub.hub.hubconfig import configure\n\n"
            f"configure(c, {str(self.state / 'hub-settings.json')!r})\n",
        )
        self.secure_state()
        return keys

    def _data_folders(self) -> list[str]:
        """The catalog mounts' local folders under the state folder (relative paths)."""
        return sorted(
            local
            for local in _mount_groups(self._catalog())
            if not Path(local).is_absolute() and ".." not in Path(local).parts
        )

    def _catalog(self) -> Catalog:
        if self.catalog is None:
            self.catalog = load_catalog(self.config.catalog or None)
        return self.catalog

    def secure_state(self) -> None:
        """Permissions of the state folder for the mode we run in (see the module docstring).

        Personal mode: the folder is 0700, the one user owns everything.  Isolated: secrets and
        service folders root's alone, users/ passable, data readable by the groups that may.
        Safe to call again: the hub creates its cookie secret and database after the first call.
        """
        if not isolated():
            self.state.chmod(0o700)
            return
        self.state.chmod(0o711)
        for entry in self.state.iterdir():
            if entry.name in SHARED_FOLDERS or entry.is_symlink():
                continue
            entry.chmod(0o700 if entry.is_dir() else 0o600)
        (self.state / "users").chmod(0o711)
        self._share_data()

    def _share_data(self) -> None:
        """Data folders: readable by everyone, or only by the POSIX group of the mount's SSO group.

        A mount open to one SSO group whose gid is known gets that group (setgid folders 2750,
        files group-readable); a mount of several groups cannot be one folder's group and stays
        readable by all, as does everything else under ``data/``.
        """
        gids = group_gids(self.config.accounts)
        restricted: dict[Path, int] = {}
        for local, groups in _mount_groups(self._catalog()).items():
            owners = {gids.get(g) for g in groups}
            if EVERYONE not in groups and len(owners) == 1 and None not in owners:
                restricted[(self.state / local).resolve()] = owners.pop()
        data = (self.state / "data").resolve()
        for folder, _dirs, files in os.walk(data):
            here = Path(folder)
            gid = next((g for root, g in restricted.items() if here == root or root in here.parents), None)
            if gid is None:
                here.chmod(0o755)
                continue
            os.chown(here, -1, gid)
            here.chmod(0o2750)  # setgid: what is added later belongs to the group too
            for name in files:
                path = here / name
                if not path.is_symlink():
                    os.chown(path, -1, gid)
                    path.chmod((path.stat().st_mode & 0o750) | 0o040)

    # ---- processes ----
    def _spawn(self, name: str, cmd: list[str], env: dict | None = None, stream: IO | None = None):
        """Start service ``name`` logging to ``logs/<name>.log`` (also echoed to ``stream``), with a pid file."""
        path = self.logs / f"{name}.log"
        log = open(path, "ab")
        self._log_files.append(log)
        if stream is not None:
            self._echoes.append(LogEcho(path, stream, start=log.tell()))
        self.procs[name] = subprocess.Popen(
            cmd,
            cwd=self.state,
            env={**os.environ, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_private_child,
        )
        self._started_at[name] = time.monotonic()
        write_pid_file(self.pid_file(name), self.procs[name].pid, name)

    def pid_file(self, name: str) -> Path:
        return self.state / RUN_DIR / f"{name}.pid"

    def recover(self) -> list[str]:
        """Stop the services an earlier run left running (a ``kill -9`` of `beamhub up` or of the hub).

        Only process groups whose leader is still the recorded process are stopped
        (:func:`stop_services`); users' sessions are not touched (the hub adopts those that still
        run and stops the others).  Returns one line per service stopped.
        """
        return [
            f"stopped the {name} (pid {pid}) that an earlier run left running; its log: {self.logs / (name + '.log')}"
            for name, pid in stop_services(self.state)
        ]

    def _wait(
        self, name: str, url: str, timeout: float = 60.0, headers: dict | None = None, expect: int | None = None
    ) -> None:
        """Poll ``url`` until it answers (with status ``expect`` when given) or ``name`` dies."""
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            proc = self.procs[name]
            if proc.poll() is not None:
                raise RuntimeError(
                    f"{name} exited with status {proc.returncode} while starting; "
                    f"see {self.logs / (name + '.log')}:\n{self.log_tail(name)}"
                )
            try:
                req = urllib.request.Request(url, headers=headers or {})
                with urllib.request.urlopen(req, timeout=2) as resp:
                    if (expect is None and resp.status < 500) or resp.status == expect:
                        return
                    last = f"status {resp.status}"
            except urllib.error.HTTPError as exc:
                if (expect is None and exc.code < 500) or exc.code == expect:
                    return
                last = str(exc)
            except OSError as exc:
                last = str(exc)
            time.sleep(0.2)
        raise RuntimeError(f"{name} did not answer at {url} within {timeout:.0f} s ({last})")

    def spawn_provider(self) -> None:
        self._spawn(
            "sso",
            ["node", str(PROVIDER_SCRIPT), str(self.state / "sso" / "provider.json")],
            env={"NODE_PATH": str(node_modules_dir())},
        )

    def start_provider(self) -> None:
        self.spawn_provider()
        self._wait("sso", f"{self.config.issuer}/.well-known/openid-configuration")

    def start_proxy(self, token: str) -> None:
        cfg = self.config
        chp = node_modules_dir() / ".bin" / "configurable-http-proxy"
        self._spawn(
            "proxy",
            [
                str(chp),
                "--ip",
                cfg.host,
                "--port",
                str(cfg.port),
                "--api-ip",
                "127.0.0.1",
                "--api-port",
                str(cfg.proxy_api_port),
                "--default-target",
                f"http://127.0.0.1:{cfg.hub_port}",
                "--error-target",
                f"http://127.0.0.1:{cfg.hub_port}/hub/error",
            ],
            env={"CONFIGPROXY_AUTH_TOKEN": token},
        )
        self._wait(
            "proxy", f"http://127.0.0.1:{cfg.proxy_api_port}/api/routes", headers={"Authorization": f"token {token}"}
        )

    def start_hub(self, keys: dict[str, str] | None = None) -> None:
        keys = keys or self._secrets()
        self._spawn(
            "hub",
            [sys.executable, "-m", "jupyterhub", "-f", str(self.state / "jupyterhub_config.py")],
            env={"JUPYTERHUB_CRYPT_KEY": keys["crypt_key"], "CONFIGPROXY_AUTH_TOKEN": keys["proxy_token"]},
            stream=self.hub_output,
        )
        self._wait("hub", f"http://127.0.0.1:{self.config.hub_port}/hub/api/", timeout=90)
        self._wait("hub", f"{self.config.public_url}/hub/api/", timeout=30)
        if self.config.jobs_port:
            # the hub starts the jobs service; it answers 401 to a request without a token once routed
            self._wait("hub", f"{self.config.public_url}/services/beamhub-jobs/api/jobs", timeout=60, expect=401)

    def start(self) -> None:
        """Stop a crashed run's leftovers, start provider, proxy and hub; on failure stop what was started."""
        self.state.mkdir(parents=True, exist_ok=True)
        recovered = self.recover()
        for line in recovered:
            self.say(line)
        self.check(port_grace=20.0 if recovered else 0.0)
        keys = self._write_files()
        seeding = self.seed_examples()  # written while the services start; permissions set below
        try:
            self.start_provider()
            self.start_proxy(keys["proxy_token"])
            self.start_hub(keys)
            self.finish_seeding(seeding)
            self.secure_state()  # the cookie secret, the database, the example data: their final modes
        except BaseException:
            for _, proc in seeding:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            self.stop()
            raise

    # ---- example data ----
    def seed_examples(self) -> list[tuple[str, subprocess.Popen]]:
        """Start `beamhub simulate` for each example folder that has nothing in it yet.

        "Nothing" ignores hidden names, so an interrupted earlier seed (a ``.example-scan.h5.*.part``
        left by the atomic writer) is written again, while a folder an operator filled with real
        data is never touched.  The children run with umask 022; :meth:`secure_state` then gives
        a group-restricted folder's files to its group (isolated mode), as for any data there.
        """
        started = []
        for folder, argv in self.config.examples.items():
            target = self.state / folder
            if not target.is_dir() or any(not name.startswith(".") for name in os.listdir(target)):
                continue
            cmd = [sys.executable, "-m", "beamhub", "simulate", *(a.format(folder=target) for a in argv)]
            proc = subprocess.Popen(
                cmd,
                cwd=target,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
                preexec_fn=lambda: os.umask(0o022),
            )
            started.append((folder, proc))
        return started

    def finish_seeding(self, seeding: list[tuple[str, subprocess.Popen]], timeout: float = 120.0) -> None:
        """Wait for the example writers; a failed one is reported in one line, never fatal."""
        for folder, proc in seeding:
            try:
                _, err = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                _, err = proc.communicate()
            if proc.returncode == 0:
                self.say(f"example data written to {self.state / folder}")
            else:
                last = (err or "").strip().splitlines()[-1:] or [f"exit status {proc.returncode}"]
                self.say(f"could not write the example data in {self.state / folder}: {last[0]}")

    def supervise(self, now: float | None = None) -> list[str]:
        """One round of watching the services; returns what to tell the person who started them.

        The SSO provider is restarted when it dies, after a bounded back-off
        (:class:`~beamhub.hub.restart.Backoff`): while it is down the hub and the sessions keep
        running, and a sign-in gets the hub's "sign-in unavailable" page.  The hub or the proxy
        dying ends the platform: :class:`ServiceCrashed` names the log that holds the cause.
        """
        now = time.monotonic() if now is None else now
        for name in ("hub", "proxy"):
            proc = self.procs.get(name)
            if proc is not None and proc.poll() is not None:
                raise ServiceCrashed(name, proc.returncode, self.logs / f"{name}.log", self.log_tail(name))
        lines = []
        proc = self.procs.get("sso")
        if self._provider_restart_at is None and proc is not None and proc.poll() is not None:
            delay = self.provider_backoff.crashed(now - self._started_at.get("sso", now))
            self._provider_restart_at = now + delay
            lines.append(
                f"the SSO provider {exit_description(proc.returncode)} (see {self.logs / 'sso.log'}); "
                f"sign-in is unavailable until it is back; restarting it in {delay:g} s"
            )
        if self._provider_restart_at is not None and now >= self._provider_restart_at:
            self._provider_restart_at = None
            self.spawn_provider()
            lines.append(f"restarted the SSO provider (pid {self.procs['sso'].pid})")
        return lines

    def stop_process(self, name: str, timeout: float = 15.0) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        remove_pid_file(self.pid_file(name), proc.pid)

    def stop(self) -> None:
        """Stop hub, proxy and provider (sessions keep running; the next start finds them).

        A hub that died hard left its jobs service running: that is stopped too.
        """
        for name in ("hub", "proxy", "sso"):
            self.stop_process(name)
        stop_recorded(self.pid_file("jobs"))
        for echo in self._echoes:
            echo.stop()
        self._echoes.clear()
        for log in self._log_files:
            log.close()
        self._log_files.clear()

    def log_tail(self, name: str, lines: int = 15) -> str:
        """The last lines a service wrote to its log (empty when it logs to the terminal)."""
        path = self.logs / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def running(self) -> dict[str, bool]:
        return {name: proc.poll() is None for name, proc in self.procs.items()}
