"""`beamhub up`: the whole platform on this machine — SSO provider, proxy and JupyterHub."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

from beamhub.errors import UsageError
from beamhub.hub.isolation import mode_line
from beamhub.hub.pidfiles import read_pid_file, remove_pid_file, write_pid_file
from beamhub.hub.platform import RUN_DIR, UP_NAME, Platform, PlatformConfig
from beamhub.hub.procinfo import same_process

EPILOG = """\
examples:
  beamhub up                          # http://127.0.0.1:8000, state in ./state
  beamhub up --state-dir /srv/beamhub --catalog my-menu.yaml

Demo logins (the development SSO provider): alice/alice (groups spi, tomo),
bob/bob (tomo), admin/admin (admins).  Ctrl-C (or SIGTERM, also when started in
the background or under nohup) stops the provider, the proxy and the hub; running
sessions keep running and the next 'beamhub up' finds them.  'beamhub down' stops
all of it, sessions and batch jobs too.

The terminal shows start-up, sign-ins, spawns, warnings and errors; STATE/logs/hub.log
holds everything, one line per request too (proxy.log, sso.log and jobs-access.log
beside it).

A crashed SSO provider is restarted (bounded back-off); the hub or the proxy
dying stops 'beamhub up' with the log that holds the cause (STATE/logs).  After
a crash, the next 'beamhub up' stops what the crashed run left (STATE/run).

Run as root, sessions and batch jobs run as each user's SSO uid/gid (isolated
mode); run as a normal user, all of them run as that user (personal mode, not
isolated).  The first lines printed say which.
"""


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Start BeamHub on this machine: a development OIDC provider, "
        "configurable-http-proxy and JupyterHub with the local spawner and the environment menu.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--state-dir",
        default="state",
        help="folder for the hub database, secrets, provider keys and user workspaces (default: ./state)",
    )
    p.add_argument("--port", type=int, default=8000, help="public port of the hub (default: 8000)")
    p.add_argument("--sso-port", type=int, default=8001, help="port of the OIDC provider (default: 8001)")
    p.add_argument("--proxy-api-port", type=int, default=8002, help="proxy REST API port (default: 8002)")
    p.add_argument("--hub-port", type=int, default=8081, help="hub's internal port (default: 8081)")
    p.add_argument("--jobs-port", type=int, default=8003, help="batch jobs service port (default: 8003)")
    p.add_argument("--catalog", default="", help="environment catalog YAML (default: the shipped menu)")
    p.add_argument(
        "--accounts",
        default="",
        help="JSON list of SSO accounts (username, password, uid, gid, gids, groups) instead of the demo ones",
    )
    p.add_argument(
        "--notebooks", default="", help="folder of notebooks copied to new users (default: the repository's notebooks/)"
    )
    p.add_argument(
        "--scheduler-url", default="", help="the BeamHub scheduler's /summary URL, to show free GPUs on the launch page"
    )
    p.add_argument(
        "--sessions",
        choices=("local", "docker"),
        default="local",
        help="where sessions run: 'local' processes of this checkout (default), or 'docker': "
        "each in its environment's image (make images) as the user's uid/gid with only their "
        "workspace and allowed data mounted, as on Kubernetes",
    )
    return p


def _stop_on_signal(signum, frame):
    """SIGTERM (and SIGHUP) stop `beamhub up` as Ctrl-C does: in order, through KeyboardInterrupt."""
    raise KeyboardInterrupt


def take_signals() -> None:
    """Make Ctrl-C, SIGTERM and a closed terminal stop `beamhub up`, whatever it inherited.

    Started in the background by a shell without job control, or under nohup, a process may
    begin with SIGINT ignored — and Python then installs no KeyboardInterrupt handler — so
    Ctrl-C would do nothing.  Here SIGINT is Python's handler again, SIGTERM raises the same
    KeyboardInterrupt, and SIGHUP too unless it was ignored on purpose (nohup).  Handlers, unlike
    an ignored disposition, are not inherited across exec, so the services start with defaults.
    """
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _stop_on_signal)
    if signal.getsignal(signal.SIGHUP) != signal.SIG_IGN:
        signal.signal(signal.SIGHUP, _stop_on_signal)


def claim_state(state: Path) -> Path:
    """Record this `beamhub up` in ``state/run/up.pid`` (for `beamhub down`); refuse a second one there."""
    path = state / RUN_DIR / f"{UP_NAME}.pid"
    record = read_pid_file(path)
    if record is not None and record[0] != os.getpid() and same_process(*record):
        raise UsageError(
            f"another 'beamhub up' (pid {record[0]}) is running with the state folder {state}; "
            f"stop it first (Ctrl-C there, or 'beamhub down --state-dir {state}')"
        )
    write_pid_file(path, os.getpid(), "beamhub up")
    return path


def main(argv: list[str], prog: str) -> int:
    args = build_parser(prog).parse_args(argv)
    take_signals()
    config = PlatformConfig(
        state_dir=Path(args.state_dir),
        port=args.port,
        sso_port=args.sso_port,
        proxy_api_port=args.proxy_api_port,
        hub_port=args.hub_port,
        jobs_port=args.jobs_port,
        catalog=str(Path(args.catalog).resolve()) if args.catalog else "",
        notebooks_dir=str(Path(args.notebooks).resolve()) if args.notebooks else "",
        scheduler_summary_url=args.scheduler_url,
        sessions=args.sessions,
    )
    if args.accounts:
        try:
            config.accounts = json.loads(Path(args.accounts).read_text())
        except (OSError, ValueError) as exc:
            raise UsageError(f"--accounts {args.accounts}: cannot read a JSON list of accounts ({exc})") from None
        if not isinstance(config.accounts, list) or not all(
            isinstance(a, dict) and "username" in a and "password" in a for a in config.accounts
        ):
            raise UsageError(
                f"--accounts {args.accounts}: must be a JSON list of objects with at least username and password"
            )
    platform = Platform(config, hub_output=sys.stdout, say=lambda line: print(f"beamhub up: {line}", flush=True))
    Path(args.state_dir).mkdir(parents=True, exist_ok=True)
    claimed = claim_state(platform.state)
    print(f"beamhub up: starting the SSO provider, the proxy and JupyterHub (state in {platform.state})", flush=True)
    print(f"beamhub up: {mode_line()}", flush=True)
    try:
        platform.start()
        logins = ", ".join(f"{a['username']}/{a['password']}" for a in config.accounts)
        print(
            "\n"
            f"  BeamHub is running at {config.public_url}\n"
            f"  Sign in on the SSO page with a demo login: {logins}\n"
            f"  SSO provider: {config.issuer}  ·  full log, every request too: {platform.logs / 'hub.log'}\n"
            "  Press Ctrl-C to stop (running sessions keep running); "
            f"'beamhub down --state-dir {args.state_dir}' stops sessions and jobs too.\n",
            flush=True,
        )
        while True:  # the provider is restarted when it dies; the hub or the proxy dying ends this
            for line in platform.supervise():
                print(f"beamhub up: {line}", flush=True)
            time.sleep(1)
    except KeyboardInterrupt:
        print("\nbeamhub up: stopping the hub, the proxy and the provider...", flush=True)
        return 0
    except RuntimeError as exc:
        raise UsageError(str(exc)) from None
    finally:
        try:
            platform.stop()
        finally:
            remove_pid_file(claimed, os.getpid())
