"""Users isolated from each other and from the hub on the embedded platform (issue 14).

Tried as a hostile user would: alice signs in, and code in her own kernel — run through the
Jupyter server's REST and websocket API, as JupyterLab runs it — tries to read the hub's
state, bob's workspace and bob's process environment, and to read the cookie secret it
would need to sign an admin cookie.  As root (CI, `make up` as root) every one of these must
fail; not as root the platform is in personal mode and says so, and these tests are skipped.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sqlite3
import stat
import subprocess
import sys
import tempfile
import time
import uuid

import pytest
import requests
from sso_client import login
from tornado.httpclient import HTTPRequest
from tornado.web import create_signed_value
from tornado.websocket import websocket_connect

from beamhub.hub.platform import DEMO_ACCOUNTS, free_port

pytestmark = pytest.mark.integration

isolated_only = pytest.mark.skipif(os.geteuid() != 0, reason="isolation needs the hub to run as root")


def _uid(name) -> int:
    return next(a["uid"] for a in DEMO_ACCOUNTS if a["username"] == name)


def _wait_ready(platform, name, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        server = (platform.api.user(name) or {}).get("servers", {}).get("")
        if server and server.get("ready"):
            return
        time.sleep(0.3)
    raise AssertionError(f"{name}'s session did not become ready")


def _session_pid(platform, name) -> int:
    """The single-user server's pid, from the hub's database (as the other platform tests read it)."""
    db = sqlite3.connect(platform.state / "jupyterhub.sqlite")
    rows = db.execute(
        "select spawners.state from spawners join users on users.id = spawners.user_id where users.name = ?", (name,)
    ).fetchall()
    db.close()
    pids = [json.loads(s).get("pid") for (s,) in rows if s]
    return next(p for p in pids if p)


def _pid_of(fragment: str) -> int | None:
    """A process whose command line contains ``fragment`` (the jobs service, say)."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = open(f"/proc/{entry}/cmdline", "rb").read().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if fragment in cmdline and str(os.getpid()) != entry:
                return int(entry)
    return None


@pytest.fixture(scope="module")
def sessions(platform):
    """alice and bob running Scientific Python (the default, so the launch page's "last used" stays as
    the other tests expect); {name: API token of that user}."""
    tokens = {}
    for name, environment in (("alice", "scipy"), ("bob", "scipy")):
        login(platform.url, name, name)
        if not (platform.api.user(name) or {}).get("servers"):
            started = platform.api.post(f"/users/{name}/server", json={"environment": environment})
            assert started.status_code in (201, 202), started.text
        r = platform.api.post(f"/users/{name}/tokens", json={"note": "isolation test", "expires_in": 3600})
        tokens[name] = r.json()["token"]
    for name in tokens:
        _wait_ready(platform, name)
    yield tokens
    for name in tokens:
        platform.api.delete(f"/users/{name}/server")


# ---- the Jupyter API, as JupyterLab uses it ----
def _ws_url(platform, path) -> str:
    return platform.url.replace("http://", "ws://") + path


async def _run_in_kernel(platform, name, token, code, timeout=60) -> str:
    """Start a kernel in ``name``'s session, execute ``code``, return its stdout (errors raise)."""
    headers = {"Authorization": f"token {token}"}
    kernel = requests.post(f"{platform.url}/user/{name}/api/kernels", headers=headers, json={}, timeout=30)
    assert kernel.status_code == 201, kernel.text
    kernel_id = kernel.json()["id"]
    session = uuid.uuid4().hex
    try:
        conn = await websocket_connect(
            HTTPRequest(
                _ws_url(platform, f"/user/{name}/api/kernels/{kernel_id}/channels?session_id={session}"),
                headers=headers,
            )
        )
        msg_id = uuid.uuid4().hex
        conn.write_message(
            json.dumps(
                {
                    "header": {
                        "msg_id": msg_id,
                        "msg_type": "execute_request",
                        "username": name,
                        "session": session,
                        "date": "",
                        "version": "5.3",
                    },
                    "parent_header": {},
                    "metadata": {},
                    "channel": "shell",
                    "buffers": [],
                    "content": {
                        "code": code,
                        "silent": False,
                        "store_history": False,
                        "user_expressions": {},
                        "allow_stdin": False,
                        "stop_on_error": True,
                    },
                }
            )
        )
        # the reply (shell channel) may overtake the output (iopub): done when both the reply and
        # iopub's "idle" for this request have come
        out, seen, deadline = [], set(), time.monotonic() + timeout
        while time.monotonic() < deadline:
            raw = await asyncio.wait_for(conn.read_message(), timeout=deadline - time.monotonic())
            assert raw is not None, "the kernel's websocket closed"
            msg = json.loads(raw)
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                out.append(content["text"])
            elif kind == "error":
                raise AssertionError("\n".join(content["traceback"]))
            elif kind == "execute_reply" or (kind == "status" and content.get("execution_state") == "idle"):
                seen.add(kind)
                if seen == {"execute_reply", "status"}:
                    return "".join(out)
        raise AssertionError(f"no reply from {name}'s kernel in {timeout} s")
    finally:
        requests.delete(f"{platform.url}/user/{name}/api/kernels/{kernel_id}", headers=headers, timeout=30)


PROBE = """
import json, os
STATE, BOB_PID, HUB_PID, JOBS_PID = {state!r}, {bob_pid}, {hub_pid}, {jobs_pid}

def attempt(action):
    try:
        action()
        return "allowed"
    except PermissionError:
        return "denied"
    except OSError as exc:
        return f"{{type(exc).__name__}}: {{exc}}"

def write(path):
    with open(path, "w") as f:
        f.write("planted by alice")

checks = {{
    "state listing": lambda: os.listdir(STATE),
    "secrets.json": lambda: open(f"{{STATE}}/secrets.json").read(),
    "cookie secret": lambda: open(f"{{STATE}}/jupyterhub_cookie_secret", "rb").read(),
    "hub database": lambda: open(f"{{STATE}}/jupyterhub.sqlite", "rb").read(16),
    "hub settings": lambda: open(f"{{STATE}}/hub-settings.json").read(),
    "provider keys": lambda: os.listdir(f"{{STATE}}/sso"),
    "logs": lambda: os.listdir(f"{{STATE}}/logs"),
    "job store": lambda: os.listdir(f"{{STATE}}/jobs"),
    "users listing": lambda: os.listdir(f"{{STATE}}/users"),
    "bob's workspace listing": lambda: os.listdir(f"{{STATE}}/users/bob"),
    "bob's notebook": lambda: open(f"{{STATE}}/users/bob/00-welcome.ipynb").read(),
    "write into bob's workspace": lambda: write(f"{{STATE}}/users/bob/planted.txt"),
    "bob's process environment": lambda: open(f"/proc/{{BOB_PID}}/environ", "rb").read(),
    "the hub's process environment": lambda: open(f"/proc/{{HUB_PID}}/environ", "rb").read(),
    "the jobs service's environment": lambda: open(f"/proc/{{JOBS_PID}}/environ", "rb").read(),
    "own workspace": lambda: write(os.path.expanduser("~/mine.txt")),
    "own process environment": lambda: open(f"/proc/{{os.getpid()}}/environ", "rb").read(),
    "tomography raw data": lambda: os.listdir(f"{{STATE}}/data/raw/tomo"),
}}
print(json.dumps({{"results": {{k: attempt(v) for k, v in checks.items()}}, "uid": os.getuid(),
                  "gid": os.getgid(), "groups": sorted(os.getgroups()), "home": os.environ["HOME"],
                  "environ": sorted(os.environ)}}))
"""


@isolated_only
def test_alice_cannot_read_the_hub_state_bob_or_the_cookie_secret(platform, sessions):
    code = PROBE.format(
        state=str(platform.state),
        bob_pid=_session_pid(platform, "bob"),
        hub_pid=platform.procs["hub"].pid,
        jobs_pid=_pid_of("beamhub.hub.jobs.service"),
    )
    report = json.loads(asyncio.run(_run_in_kernel(platform, "alice", sessions["alice"], code)))
    results = report.pop("results")
    allowed = {"own workspace", "own process environment", "tomography raw data"}
    assert {k for k, v in results.items() if v == "allowed"} == allowed, results
    assert all(results[k] == "denied" for k in set(results) - allowed), results
    assert not (platform.state / "users" / "bob" / "planted.txt").exists()
    # her kernel runs as her SSO identity, in her own home
    assert (report["uid"], report["gid"], report["groups"]) == (2001, 2001, [3001, 3002])
    assert report["home"] == str(platform.state / "users" / "alice")
    # nothing the hub holds leaks through the session's own environment
    assert not {"JUPYTERHUB_CRYPT_KEY", "CONFIGPROXY_AUTH_TOKEN", "JUPYTERHUB_COOKIE_SECRET"} & set(report["environ"])


GROUP_DATA_PROBE = """
import json, os
def attempt(path):
    try:
        os.listdir(path)
        return "allowed"
    except PermissionError:
        return "denied"
print(json.dumps({{name: attempt(f"{state}/data/raw/{{name}}") for name in ("tomo", "spi")}}))
"""


@isolated_only
def test_raw_data_is_readable_by_its_group_only(platform, sessions):
    """bob is in tomo (gid 3002), not in spi (gid 3001): his kernel reads one raw data folder, not the other."""
    out = asyncio.run(_run_in_kernel(platform, "bob", sessions["bob"], GROUP_DATA_PROBE.format(state=platform.state)))
    assert json.loads(out) == {"tomo": "allowed", "spi": "denied"}


@isolated_only
def test_without_the_cookie_secret_a_forged_admin_cookie_is_refused(platform, sessions):
    """What alice could sign without the secret — a cookie with a secret of her own — gets no admin access."""
    forged = create_signed_value(os.urandom(32).hex(), "jupyterhub-session-id", uuid.uuid4().hex)
    hub_cookie = create_signed_value(os.urandom(32).hex(), "jupyterhub-hub-login", uuid.uuid4().hex)
    r = requests.get(
        f"{platform.url}/hub/api/users",
        timeout=30,
        cookies={"jupyterhub-session-id": forged.decode(), "jupyterhub-hub-login": hub_cookie.decode()},
    )
    assert r.status_code == 403
    secret = platform.state / "jupyterhub_cookie_secret"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600 and secret.stat().st_uid == 0


@isolated_only
def test_state_folder_is_laid_out_for_isolated_users(platform, sessions):
    state = platform.state
    mode = lambda p: stat.S_IMODE(p.stat().st_mode)  # noqa: E731 - a one-line helper, read in place
    assert mode(state) == 0o711 and mode(state / "users") == 0o711
    for private in (
        "secrets.json",
        "jupyterhub.sqlite",
        "jupyterhub_cookie_secret",
        "hub-settings.json",
        "jupyterhub_config.py",
    ):
        assert mode(state / private) == 0o600, private
    for private in ("sso", "logs", "jobs"):
        assert mode(state / private) == 0o700, private
    for name in ("alice", "bob"):
        workspace = state / "users" / name
        assert mode(workspace) == 0o700 and workspace.stat().st_uid == _uid(name)
    # raw data of the tomo group: its POSIX group, not everyone
    raw_tomo = (state / "data" / "raw" / "tomo").stat()
    assert raw_tomo.st_gid == 3002 and not raw_tomo.st_mode & stat.S_IROTH


def _job_request(platform, token, **body):
    return requests.post(
        f"{platform.url}/services/beamhub-jobs/api/jobs",
        timeout=30,
        headers={"Authorization": f"token {token}"},
        json={"environment": "tomo", **body},
    )


def test_a_job_writing_into_bobs_workspace_is_refused_with_one_line(platform, sessions):
    alice = sessions["alice"]
    users = platform.state / "users"
    home = users / "alice"
    cases = [
        ({"kind": "tomo", "args": ["scan.h5", "--out", str(users / "bob" / "recon.h5")], "cwd": str(home)}, "--out"),
        ({"kind": "tomo", "args": ["scan.h5", "--out=../bob/recon.h5"], "cwd": str(home)}, "--out"),
        ({"kind": "tomo", "args": ["scan.h5", "-o", "recon.h5"], "cwd": str(users / "bob")}, "'cwd'"),
        ({"kind": "tomo", "args": ["scan.h5", "-o", "recon.h5"], "cwd": str(platform.state)}, "'cwd'"),
        (
            {"kind": "tomo", "args": [str(platform.state / "secrets.json"), "-o", "r.h5"], "cwd": str(home)},
            "secrets.json",
        ),
    ]
    # a link in her own workspace that points into bob's is followed, and refused
    link = home / "to-bob"
    if not link.is_symlink():
        link.symlink_to(users / "bob")
    cases.append(({"kind": "tomo", "args": ["scan.h5", "--out", "to-bob/recon.h5"], "cwd": str(home)}, "--out"))
    # a phasing job file whose out_file is in bob's workspace
    job_file = home / "evil-job.json"
    job_file.write_text(json.dumps({"data": "x.bin", "out_file": str(users / "bob" / "phased.h5")}))
    cases.append(({"kind": "phase", "args": ["evil-job.json"], "cwd": str(home), "environment": "scipy"}, "out_file"))
    for body, words in cases:
        r = _job_request(platform, alice, **body)
        assert r.status_code == 400, (body, r.text)
        message = r.json()["message"]
        assert words in message and "\n" not in message, message
        assert "outside your workspace" in message, message
    assert not any((users / "bob").glob("*.h5"))


def test_a_job_may_read_the_data_its_groups_allow(platform, sessions):
    """cwd in a read-only data folder the groups allow is fine; output still goes to the workspace."""
    alice = sessions["alice"]
    data = platform.state / "data" / "raw" / "tomo"
    ok = _job_request(
        platform,
        alice,
        kind="tomo",
        cwd=str(data),
        args=["missing-scan.h5", "--out", str(platform.state / "users" / "alice" / "r.h5")],
    )
    assert ok.status_code == 201, ok.text
    refused = _job_request(platform, alice, kind="tomo", cwd=str(data), args=["missing-scan.h5", "--out", "r.h5"])
    assert refused.status_code == 400 and "--out r.h5" in refused.json()["message"]


async def _terminal(platform, name, token, line, until, timeout=60) -> str:
    """Open a JupyterLab terminal in ``name``'s session, type ``line``, return the output up to ``until``."""
    headers = {"Authorization": f"token {token}"}
    term = requests.post(f"{platform.url}/user/{name}/api/terminals", headers=headers, json={}, timeout=30)
    assert term.status_code == 200, term.text
    term_name = term.json()["name"]
    try:
        conn = await websocket_connect(
            HTTPRequest(_ws_url(platform, f"/user/{name}/terminals/websocket/{term_name}"), headers=headers)
        )
        conn.write_message(json.dumps(["stdin", line + "\r"]))
        out, deadline = "", time.monotonic() + timeout
        while until not in out and time.monotonic() < deadline:
            raw = await asyncio.wait_for(conn.read_message(), timeout=max(0.1, deadline - time.monotonic()))
            if raw is None:
                break
            kind, *payload = json.loads(raw)
            if kind == "stdout":
                out += payload[0]
        return out
    finally:
        requests.delete(f"{platform.url}/user/{name}/api/terminals/{term_name}", headers=headers, timeout=30)


def test_beamhub_jobs_works_in_a_session_terminal(platform, sessions):
    """The README's batch workflow starts in a JupyterLab terminal: `beamhub` and `python` are found there."""
    # the marker is split in the typed line, so only the command's output can contain it whole
    line = "beamhub jobs; python -c 'import sys; print(sys.prefix)'; echo uid=$(id -u) END''-OF-RUN"
    out = asyncio.run(_terminal(platform, "alice", sessions["alice"], line, until="END-OF-RUN"))
    assert "END-OF-RUN" in out, out
    assert "command not found" not in out, out
    assert "no jobs yet" in out or "STATE" in out, out
    assert sys.prefix in out, out
    if os.geteuid() == 0:
        assert "uid=2001 END-OF-RUN" in out, out  # the terminal is alice's too


def test_up_as_a_normal_user_says_personal_mode_in_one_line():
    """Not root: everything runs as the invoking user, and `beamhub up` says so before anything else."""
    if os.geteuid() != 0:
        pytest.skip("needs root to start `beamhub up` as another user")
    state = tempfile.mkdtemp(prefix="beamhub-personal-")
    os.chown(state, 65534, 65534)  # nobody
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "beamhub",
                "up",
                "--state-dir",
                f"{state}/s",
                f"--port={port}",
                f"--sso-port={free_port()}",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            user=65534,
            group=65534,
            extra_groups=[],
            cwd=state,
            env={**os.environ, "HOME": state},
        )
    lines = [line for line in out.stdout.splitlines() if "mode" in line]
    assert len(lines) == 1 and "personal mode, not isolated" in lines[0], out.stdout + out.stderr
    assert "every session and batch job runs as" in lines[0]
    assert out.returncode == 2 and f"port {port} (hub) is already in use" in out.stderr
