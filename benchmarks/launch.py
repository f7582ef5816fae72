"""Click-to-JupyterLab time: BeamHub's one-click launch beside plain JupyterHub, in one run.

Ours: the embedded platform (OIDC provider, proxy, hub with LocalBeamSpawner),
signed in through the provider's sign-in page, the "Scientific Python" card
clicked (a POST of the launch form). Reference: plain JupyterHub with its
SimpleLocalProcessSpawner and the DummyAuthenticator behind its own
configurable-http-proxy, "Start" clicked (GET /hub/spawn). Each launch is timed
from the click to the moment /user/<name>/lab serves JupyterLab through the proxy.

One user at a time (the server stopped between launches):

    .venv/bin/python benchmarks/launch.py [--launches 5]

Under load: N users (user001..) each sign in and click within the same --window
seconds (threads, start times drawn with a fixed seed), as a browser does: after
the click, the spawn-pending page's progress stream, then JupyterLab. Reported per
platform: the sign-in time, click-to-Lab p50/p95/max, time to all running, errors,
and from the hub's /hub/metrics what limits it (spawn durations, event-loop lag,
hub CPU, proxy route additions), with the CPU time of the proxy, the provider and
the sessions' start-up from /proc:

    .venv/bin/python benchmarks/launch.py --users 50 [--window 10] [--seed 19]

Run as root, BeamHub's sessions run as each user's uid (isolated mode), as on CI;
the temporary folder is made 0755 so those uids can pass through it. Every server
and process the run started is stopped, and the folder removed, even on failure.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families

from beamhub.hub.platform import DEMO_ACCOUNTS, Platform, PlatformConfig, free_port, node_modules_dir

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _xsrf(text: str) -> str:
    return re.search(r'name="_xsrf" value="([^"]+)"', text).group(1)


def _is_lab(r, user) -> bool:
    return r.status_code == 200 and "jupyter-config-data" in r.text and f"/user/{user}/lab" in r.url


def _wait_lab(session, base, user, timeout=120.0, interval=0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = session.get(f"{base}/user/{user}/lab", timeout=60)
        if _is_lab(r, user):
            return
        time.sleep(interval)
    raise RuntimeError(f"JupyterLab of {user} did not answer within {timeout} s")


def _wait_stopped(session, base, user, headers, timeout=60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = requests.get(f"{base}/hub/api/users/{user}", headers=headers, timeout=10)
        if not r.json().get("servers"):
            return
        time.sleep(0.2)
    raise RuntimeError(f"{user}'s server did not stop")


def _launches(session, base, user, headers, n, form) -> list[float]:
    """Time n launches; with ``form`` the click is the card's POST, without it plain JupyterHub's
    "Start My Server" link (GET /hub/spawn, which spawns at once when there is no options form)."""
    times = []
    for _ in range(n):
        if form is not None:
            page = session.get(f"{base}/hub/spawn", timeout=30)
            t0 = time.perf_counter()
            session.post(f"{base}/hub/spawn", data={"_xsrf": _xsrf(page.text), **form}, timeout=60)
        else:
            t0 = time.perf_counter()
            session.get(f"{base}/hub/spawn", timeout=60)
        _wait_lab(session, base, user)
        times.append(time.perf_counter() - t0)
        requests.delete(f"{base}/hub/api/users/{user}/server", headers=headers, timeout=60)
        _wait_stopped(session, base, user, headers)
    return times


# ---------------------------------------------------------------- helpers for the load run
def bench_accounts(n: int) -> list[dict]:
    """n demo accounts user001.. (uid/gid 2101.., the tomo group and its gid 3002)."""
    return [
        {
            "username": f"user{i:03d}",
            "password": f"user{i:03d}",
            "name": f"Load user {i}",
            "email": f"user{i:03d}@beamhub.invalid",
            "uid": 2100 + i,
            "gid": 2100 + i,
            "gids": [3002],
            "groups": ["tomo"],
        }
        for i in range(1, n + 1)
    ]


def _cpu_seconds(pid: int) -> float:
    """utime + stime of one process (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == pid:
                out.append(int(entry.name))
    return out


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _sessions(hub_pid: int) -> list[int]:
    """The single-user servers the hub started (its children running jupyterhub-singleuser)."""
    return [p for p in _children(hub_pid) if "jupyterhub-singleuser" in _cmdline(p)]


def _uid(pid: int) -> int | None:
    try:
        line = next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith("Uid:"))
    except (OSError, StopIteration):
        return None
    return int(line.split()[1])


def _kill_all(pids) -> None:
    """SIGTERM, then SIGKILL what is left after 10 s: the benchmark leaves no session behind."""
    alive = [p for p in pids if Path(f"/proc/{p}").exists()]
    for p in alive:
        try:
            os.kill(p, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 10
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if Path(f"/proc/{p}").exists() and "Z" not in _state(p)]
        time.sleep(0.2)
    for p in alive:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"


def _machine_cpu() -> float:
    """CPU seconds the whole machine spent busy (all cores) since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return (sum(values[:8]) - idle) / CLK_TCK


def metrics(text: str) -> dict:
    """The samples of /hub/metrics that say where the time went: {name: {labels-tuple: value}}."""
    out: dict = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def _sum(m: dict, name: str, **match) -> float:
    return sum(v for labels, v in m.get(name, {}).items() if all((k, match[k]) in labels for k in match))


def _buckets(m: dict, name: str, **match) -> list[tuple[float, float]]:
    acc: dict[float, float] = {}
    for labels, v in m.get(name + "_bucket", {}).items():
        d = dict(labels)
        if all(d.get(k) == match[k] for k in match):
            le = float(d["le"])
            acc[le] = acc.get(le, 0.0) + v
    return sorted(acc.items())


def hist_quantile(before: dict, after: dict, name: str, q: float, **match) -> float:
    """Prometheus' histogram_quantile over the increase between two scrapes (linear in the bucket)."""
    b = dict(_buckets(before, name, **match))
    rows = [(le, c - b.get(le, 0.0)) for le, c in _buckets(after, name, **match)]
    if not rows or rows[-1][1] <= 0:
        return float("nan")
    rank, prev_le, prev_c = q * rows[-1][1], 0.0, 0.0
    for le, c in rows:
        if c >= rank:
            if le == float("inf"):
                return prev_le
            return prev_le + (le - prev_le) * ((rank - prev_c) / (c - prev_c) if c > prev_c else 1.0)
        prev_le, prev_c = le, c
    return float("nan")


def _max_bucket(before: dict, after: dict, name: str) -> float:
    """The smallest bucket bound that holds every observation made between two scrapes."""
    b = dict(_buckets(before, name))
    rows = [(le, c - b.get(le, 0.0)) for le, c in _buckets(after, name)]
    total = rows[-1][1] if rows else 0.0
    return next((le for le, c in rows if c >= total), float("nan"))


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    if not s:
        return float("nan")
    k = (len(s) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def _follow_progress(session, base, user, timeout) -> None:
    """What the spawn-pending page does: read the progress event stream until ready (or failed)."""
    xsrf = session.cookies.get("_xsrf", path="/hub/") or session.cookies.get("_xsrf")
    headers = {"X-XSRFToken": xsrf} if xsrf else {}
    with session.get(
        f"{base}/hub/api/users/{user}/server/progress", headers=headers, stream=True, timeout=(30, timeout)
    ) as r:
        if r.status_code != 200:
            return  # fall back to polling the Lab URL
        for line in r.iter_lines(decode_unicode=True):
            if line and line.startswith("data:"):
                event = json.loads(line[5:])
                if event.get("failed"):
                    raise RuntimeError(f"spawn of {user} failed: {event.get('message')}")
                if event.get("ready"):
                    return


class LoadUser(threading.Thread):
    """One user: waits for their moment, signs in, clicks, follows the progress, opens JupyterLab."""

    def __init__(self, base: str, user: str, password: str, start_at: float, platform: str, click: bool = True):
        super().__init__(name=user, daemon=True)
        self.base, self.user, self.password, self.start_at, self.platform = base, user, password, start_at, platform
        self.click = click  # False: sign in only (the click comes from click_later)
        self.login_s = self.click_to_lab_s = self.done_at = self.session = self.xsrf = None
        self.error = ""

    def click_later(self, at: float) -> LoadUser:
        """The same user, signed in already, clicking at ``at``."""
        later = LoadUser(self.base, self.user, self.password, at, self.platform)
        later.session, later.xsrf, later.login_s, later.error = self.session, self.xsrf, self.login_s, self.error
        return later

    def run(self) -> None:
        try:
            time.sleep(max(0.0, self.start_at - time.monotonic()))
            if self.error:
                return
            if self.session is None:
                self.sign_in()
            if self.click:
                self.click_and_wait()
        except Exception as exc:  # noqa: BLE001 - every failure is counted, the run goes on
            self.error = f"{type(exc).__name__}: {exc}"[:300]

    def sign_in(self) -> None:
        t_login = time.monotonic()
        s = requests.Session()
        if self.platform == "beamhub":  # the hub's auto-login -> the provider's sign-in page -> callback
            page = s.get(f"{self.base}/hub/login?next=/hub/spawn", timeout=60)
            action = re.search(r'action="(/interaction/[^"]+/login)"', page.text).group(1)
            issuer = page.url.split("/interaction/")[0]
            launch = s.post(issuer + action, data={"username": self.user, "password": self.password}, timeout=120)
            xsrf = _xsrf(launch.text)  # the launch page, cards and all
        else:
            page = s.get(f"{self.base}/hub/login", timeout=60)
            # next=/hub/home: after a login plain JupyterHub would go to /hub/spawn and start the server
            s.post(
                f"{self.base}/hub/login?next=%2Fhub%2Fhome",
                data={"_xsrf": _xsrf(page.text), "username": self.user, "password": "x"},
                timeout=120,
            )
            xsrf = None
        self.login_s = time.monotonic() - t_login
        self.session, self.xsrf = s, xsrf

    def click_and_wait(self) -> None:
        s, xsrf = self.session, self.xsrf
        t_click = time.monotonic()
        if self.platform == "beamhub":
            r = s.post(f"{self.base}/hub/spawn", data={"_xsrf": xsrf, "environment": "scipy"}, timeout=180)
        else:
            r = s.get(f"{self.base}/hub/spawn", timeout=180)
        if r.status_code >= 400:
            raise RuntimeError(f"click answered {r.status_code} at {r.url}")
        if not _is_lab(r, self.user):
            _follow_progress(s, self.base, self.user, timeout=300)
            _wait_lab(s, self.base, self.user, timeout=300, interval=0.5)
        self.done_at = time.monotonic()
        self.click_to_lab_s = self.done_at - t_click


def _stop_servers(base: str, headers: dict, users: list[str], timeout: float = 180.0) -> None:
    for u in users:
        try:
            requests.delete(f"{base}/hub/api/users/{u}/server", headers=headers, timeout=120)
        except requests.RequestException:
            pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            listed = requests.get(f"{base}/hub/api/users", headers=headers, timeout=60).json()
        except (requests.RequestException, ValueError):
            break
        if not any(u.get("server") or u.get("pending") for u in listed):
            return
        time.sleep(1)


def load_run(
    platform: str,
    base: str,
    headers: dict,
    users: list[tuple[str, str]],
    window: float,
    seed: int,
    hub_pid: int,
    metrics_get,
    extra_pids: dict[str, int],
    sign_in_first: bool = False,
) -> dict:
    """N users within ``window`` seconds; returns the figures and what /hub/metrics and /proc say.

    Each user signs in and clicks at once at their moment; with ``sign_in_first`` all sign in
    first (at their moments in the window), then all click at moments drawn again in the window.
    """
    rng = random.Random(seed)
    offsets = [rng.uniform(0, window) for _ in users]
    clicks = [rng.uniform(0, window) for _ in users]
    before = metrics(metrics_get())
    cpu0 = {name: _cpu_seconds(pid) for name, pid in extra_pids.items()}
    machine0 = _machine_cpu()
    t0 = time.monotonic() + 0.5
    signed_in_s = float("nan")
    threads = [LoadUser(base, u, p, t0 + off, platform, click=not sign_in_first) for (u, p), off in zip(users, offsets)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    if sign_in_first:
        signed_in_s = time.monotonic() - t0
        t0 = time.monotonic() + 0.5
        threads = [t.click_later(t0 + off) for t, off in zip(threads, clicks)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(600)
    elapsed = time.monotonic() - t0
    machine = _machine_cpu() - machine0
    after = metrics(metrics_get())
    sessions = _sessions(hub_pid)
    done = [t for t in threads if t.done_at is not None]
    errors = [f"{t.user}: {t.error or 'no answer within 600 s'}" for t in threads if t.done_at is None]
    lab = [t.click_to_lab_s for t in done]
    whole = [t.login_s + t.click_to_lab_s for t in done]  # sign-in included: the user's moment to Lab
    logins = [t.login_s for t in threads if t.login_s is not None]

    def inc(name: str, **match) -> float:
        return _sum(after, "jupyterhub_" + name, **match) - _sum(before, "jupyterhub_" + name, **match)

    spawn_n = inc("server_spawn_duration_seconds_count", status="success")
    spawn_sum = inc("server_spawn_duration_seconds_sum", status="success")
    loop_n, loop_sum = inc("event_loop_interval_seconds_count"), inc("event_loop_interval_seconds_sum")
    proxy_n, proxy_sum = inc("proxy_add_duration_seconds_count"), inc("proxy_add_duration_seconds_sum")
    login_n, login_sum = inc("login_duration_seconds_count"), inc("login_duration_seconds_sum")
    return {
        "platform": platform,
        "users": len(users),
        "reached_lab": len(done),
        "errors": errors,
        "sign_in_first": sign_in_first,
        "all_signed_in_s": signed_in_s,
        "all_running_s": (max(t.done_at for t in done) - t0) if done else float("nan"),
        "wall_s": elapsed,
        "lab_p50": _pct(lab, 0.5),
        "lab_p95": _pct(lab, 0.95),
        "lab_max": max(lab, default=float("nan")),
        "whole_p50": _pct(whole, 0.5),
        "whole_p95": _pct(whole, 0.95),
        "login_p50": _pct(logins, 0.5),
        "login_p95": _pct(logins, 0.95),
        "login_max": max(logins, default=float("nan")),
        "hub_login_mean": login_sum / login_n if login_n else float("nan"),
        "spawns": spawn_n,
        "spawn_mean": spawn_sum / spawn_n if spawn_n else float("nan"),
        "spawn_p50": hist_quantile(before, after, "jupyterhub_server_spawn_duration_seconds", 0.5, status="success"),
        "spawn_p95": hist_quantile(before, after, "jupyterhub_server_spawn_duration_seconds", 0.95, status="success"),
        # the loop is sampled every 50 ms; what an interval took beyond that is time the loop was busy
        "loop_lag_s": max(0.0, loop_sum - 0.05 * loop_n),
        "loop_p99": hist_quantile(before, after, "jupyterhub_event_loop_interval_seconds", 0.99),
        "loop_max_bucket": _max_bucket(before, after, "jupyterhub_event_loop_interval_seconds"),
        "hub_cpu_s": _sum(after, "process_cpu_seconds_total") - _sum(before, "process_cpu_seconds_total"),
        "proxy_add_mean": proxy_sum / proxy_n if proxy_n else float("nan"),
        "cpu_s": {name: _cpu_seconds(pid) - cpu0[name] for name, pid in extra_pids.items()},
        "session_cpu_s": sum(_cpu_seconds(p) for p in sessions),
        "sessions": len(sessions),
        "session_uids": len({_uid(p) for p in sessions} - {None}),
        "machine_cpu_s": machine,
    }


def _pids_named(root: int, word: str) -> int:
    """The first descendant of ``root`` (breadth first) whose command line holds ``word``; 0 if none."""
    todo = [root]
    while todo:
        pid = todo.pop(0)
        if pid != root and word in _cmdline(pid):
            return pid
        todo.extend(_children(pid))
    return 0


# ---------------------------------------------------------------- the two platforms
def beamhub_times(n: int, workdir: Path) -> list[float]:
    config = PlatformConfig.on_free_ports(workdir / "beamhub")
    token = config.admin_service_token
    config.state_dir.mkdir()
    platform = Platform(config)
    platform.start()
    try:
        s = requests.Session()
        page = s.get(f"{config.public_url}/hub/login?next=/hub/spawn", timeout=30)
        action = re.search(r'action="(/interaction/[^"]+/login)"', page.text).group(1)
        s.post(config.issuer + action, data={"username": "alice", "password": "alice"}, timeout=60)
        return _launches(
            s, config.public_url, "alice", {"Authorization": f"token {token}"}, n, {"environment": "scipy"}
        )
    finally:
        platform.stop()


def beamhub_load(n: int, workdir: Path, window: float, seed: int, sign_in_first: bool = False) -> dict:
    config = PlatformConfig.on_free_ports(
        workdir / "beamhub", accounts=[dict(a) for a in DEMO_ACCOUNTS] + bench_accounts(n)
    )
    token = config.admin_service_token
    config.state_dir.mkdir()
    platform = Platform(config)
    platform.start()
    base, headers = config.public_url, {"Authorization": f"token {token}"}
    users = [(a["username"], a["password"]) for a in bench_accounts(n)]
    hub_pid = platform.procs["hub"].pid
    seen: set[int] = set()
    try:
        # /hub/metrics needs read:metrics, which hub admins have: the demo admin signs in for it
        admin = requests.Session()
        page = admin.get(f"{base}/hub/login?next=/hub/home", timeout=30)
        action = re.search(r'action="(/interaction/[^"]+/login)"', page.text).group(1)
        admin.post(config.issuer + action, data={"username": "admin", "password": "admin"}, timeout=60)
        pids = {"proxy": platform.procs["proxy"].pid, "sso": platform.procs["sso"].pid}

        def get_metrics() -> str:
            seen.update(_sessions(hub_pid))
            r = admin.get(f"{base}/hub/metrics", timeout=60)
            r.raise_for_status()
            return r.text

        return load_run("beamhub", base, headers, users, window, seed, hub_pid, get_metrics, pids, sign_in_first)
    finally:
        try:
            seen.update(_sessions(hub_pid))
            _stop_servers(base, headers, [u for u, _ in users])
        finally:
            platform.stop()
            _kill_all(seen)


PLAIN_CONFIG = """
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {port}
c.JupyterHub.hub_port = {hub_port}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{api_port}"
c.ConfigurableHTTPProxy.command = [{chp!r}]
c.JupyterHub.db_url = "sqlite:///{state}/hub.sqlite"
c.JupyterHub.cookie_secret_file = "{state}/cookie_secret"
c.JupyterHub.authenticator_class = "dummy"
c.JupyterHub.spawner_class = "simple"
c.Spawner.default_url = "/lab"
c.Spawner.cmd = [{singleuser!r}]
c.Spawner.args = {args!r}
# the timeouts LocalBeamSpawner uses (JupyterHub's own: 60 and 30 s), so both get the same chance under load
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120
c.SimpleLocalProcessSpawner.home_dir_template = "{state}/users/{{username}}"
c.JupyterHub.services = [{{"name": "bench", "api_token": "{token}"}}]
c.JupyterHub.load_roles = [{{"name": "bench", "scopes": ["admin:servers", "admin:users", "read:metrics"],
                            "services": ["bench"]}}]
"""


class PlainHub:
    """Plain JupyterHub (Dummy authenticator, SimpleLocalProcessSpawner) in ``workdir/plain``."""

    def __init__(self, workdir: Path):
        self.state = workdir / "plain"
        (self.state / "users").mkdir(parents=True)
        self.port, self.token = free_port(), os.urandom(16).hex()
        self.base = f"http://127.0.0.1:{self.port}"
        self.headers = {"Authorization": f"token {self.token}"}
        (self.state / "jupyterhub_config.py").write_text(
            PLAIN_CONFIG.format(
                port=self.port,
                hub_port=free_port(),
                api_port=free_port(),
                chp=str(node_modules_dir() / ".bin" / "configurable-http-proxy"),
                state=self.state,
                singleuser=str(Path(sys.executable).with_name("jupyterhub-singleuser")),
                args=["--allow-root"] if os.geteuid() == 0 else [],
                token=self.token,
            )
        )
        self.log = open(self.state / "hub.log", "wb")
        self.hub = subprocess.Popen(
            [sys.executable, "-m", "jupyterhub", "-f", str(self.state / "jupyterhub_config.py")],
            cwd=self.state,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "CONFIGPROXY_AUTH_TOKEN": os.urandom(16).hex()},
        )
        self.seen: set[int] = set()

    def wait(self) -> None:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{self.base}/hub/api/", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            if time.monotonic() > deadline or self.hub.poll() is not None:
                raise RuntimeError(f"plain JupyterHub did not start; see {self.state / 'hub.log'}")
            time.sleep(0.2)

    def stop(self, users: list[str] = ()) -> None:
        try:
            self.seen.update(_sessions(self.hub.pid))
            if users and self.hub.poll() is None:
                _stop_servers(self.base, self.headers, list(users))
        finally:
            proxy = _pids_named(self.hub.pid, "configurable-http-proxy")
            self.hub.terminate()
            try:
                self.hub.wait(60)
            except subprocess.TimeoutExpired:
                self.hub.kill()
                self.hub.wait(10)
            _kill_all(self.seen | ({proxy} if proxy else set()))
            self.log.close()


def plain_times(n: int, workdir: Path) -> list[float]:
    plain = PlainHub(workdir)
    try:
        plain.wait()
        s = requests.Session()
        page = s.get(f"{plain.base}/hub/login", timeout=30)
        # next=/hub/home: after a login plain JupyterHub would go to /hub/spawn and start the server already
        s.post(
            f"{plain.base}/hub/login?next=%2Fhub%2Fhome",
            data={"_xsrf": _xsrf(page.text), "username": "carol", "password": "x"},
            timeout=30,
        )
        return _launches(s, plain.base, "carol", plain.headers, n, None)
    finally:
        plain.stop(["carol"])


def plain_load(n: int, workdir: Path, window: float, seed: int, sign_in_first: bool = False) -> dict:
    plain = PlainHub(workdir)
    users = [(a["username"], a["password"]) for a in bench_accounts(n)]
    try:
        plain.wait()

        def get_metrics() -> str:
            plain.seen.update(_sessions(plain.hub.pid))
            r = requests.get(f"{plain.base}/hub/metrics", headers=plain.headers, timeout=60)
            r.raise_for_status()
            return r.text

        pids = {"proxy": _pids_named(plain.hub.pid, "configurable-http-proxy")}
        return load_run(
            "plain", plain.base, plain.headers, users, window, seed, plain.hub.pid, get_metrics, pids, sign_in_first
        )
    finally:
        plain.stop([u for u, _ in users])


# ---------------------------------------------------------------- report
def _print_load(results: list[dict], window: float, seed: int) -> None:
    n = results[0]["users"]
    if results[0]["sign_in_first"]:
        print(
            f"{n} users sign in within {window:g} s, then click within {window:g} s (moments drawn, seed {seed}); "
            "all signed in after " + ", ".join(f"{r['all_signed_in_s']:.1f} s ({r['platform']})" for r in results)
        )
    else:
        print(
            f"{n} users, each signing in and clicking at once at a moment drawn in a {window:g} s window (seed {seed})"
        )
    print("click-to-Lab: from the click to JupyterLab served through the proxy; all run: from the first moment")
    names = {
        "beamhub": "BeamHub (SSO, LocalBeamSpawner, isolated)"
        if os.geteuid() == 0
        else "BeamHub (SSO, LocalBeamSpawner)",
        "plain": "plain JupyterHub (Dummy, SimpleLocalProcess)",
    }
    print(
        f"{'':46s}{'reached':>8s}{'all run s':>10s}{'p50 s':>7s}{'p95 s':>7s}{'max s':>7s}"
        f"{'sign-in p50/p95 s':>19s}{'with sign-in p50/p95 s':>24s}"
    )
    for r in results:
        print(
            f"{names[r['platform']]:46s}{r['reached_lab']:>5d}/{n:<2d}{r['all_running_s']:10.1f}"
            f"{r['lab_p50']:7.1f}{r['lab_p95']:7.1f}{r['lab_max']:7.1f}"
            f"{r['login_p50']:10.2f}/{r['login_p95']:.2f}{r['whole_p50']:11.1f}/{r['whole_p95']:.1f}"
        )
    print("where the time went (increase of /hub/metrics during the burst; CPU from /proc):")
    for r in results:
        other = ", ".join(f"{k} CPU {v:.1f} s" for k, v in r["cpu_s"].items())
        print(
            f"  {r['platform']}: hub spawn p50/p95/mean {r['spawn_p50']:.1f}/{r['spawn_p95']:.1f}/"
            f"{r['spawn_mean']:.1f} s over {r['spawns']:.0f} spawns; hub event loop busy {r['loop_lag_s']:.1f} s "
            f"(interval p99 {r['loop_p99'] * 1000:.0f} ms, longest bucket <= {r['loop_max_bucket']:g} s); "
            f"hub CPU {r['hub_cpu_s']:.1f} s; {other}; proxy route add mean {r['proxy_add_mean'] * 1000:.0f} ms; "
            f"hub login handler mean {r['hub_login_mean']:.2f} s; {r['sessions']} sessions' start-up CPU "
            f"{r['session_cpu_s']:.1f} s (as {r['session_uids']} uid(s)); "
            f"machine busy {r['machine_cpu_s']:.0f} CPU-s in {r['wall_s']:.0f} s"
        )
    for r in results:
        for e in r["errors"][:10]:
            print(f"  error ({r['platform']}): {e}")
    by = {r["platform"]: r for r in results}
    if "beamhub" in by and "plain" in by:
        print(f"p95 ratio BeamHub / plain JupyterHub: {by['beamhub']['lab_p95'] / by['plain']['lab_p95']:.2f}")


def _loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--launches", type=int, default=5, help="launches per platform, one user (default: 5)")
    parser.add_argument(
        "--users", type=int, default=0, help="instead: N users signing in and clicking within --window seconds"
    )
    parser.add_argument("--window", type=float, default=10.0, help="seconds the clicks are spread over (default: 10)")
    parser.add_argument("--seed", type=int, default=19, help="seed of the users' moments (default: 19)")
    parser.add_argument(
        "--sign-in-first",
        action="store_true",
        help="all users sign in first, then all click within --window (default: each clicks right after signing in)",
    )
    parser.add_argument("--plain-first", action="store_true", help="run plain JupyterHub before BeamHub")
    parser.add_argument("--only", choices=["beamhub", "plain"], help="run one platform only")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    # not mkdtemp's 0700 folder: in isolated mode the users' uids must pass through to their workspaces
    work = Path("/tmp") / f"beamhub-launch-{os.getpid()}-{os.urandom(3).hex()}"
    work.mkdir(mode=0o755)
    work.chmod(0o755)
    print(f"load average at start: {_loadavg()}", flush=True)
    try:
        if args.users:
            results = []
            runs = [("beamhub", beamhub_load), ("plain", plain_load)]
            for name, run in runs[::-1] if args.plain_first else runs:
                if args.only in (None, name):
                    results.append(run(args.users, work, args.window, args.seed, args.sign_in_first))
            print(f"load average at end: {_loadavg()}")
            _print_load(results, args.window, args.seed)
            if args.json:
                Path(args.json).write_text(json.dumps(results, indent=1))
            return 0 if all(r["reached_lab"] == r["users"] for r in results) else 1
        ours = beamhub_times(args.launches, work)
        plain = plain_times(args.launches, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"load average at end: {_loadavg()}")
    m_ours, m_plain = statistics.median(ours), statistics.median(plain)
    print(f"launches: {args.launches} each; time from click (POST /hub/spawn) to JupyterLab served")
    print(f"{'':38s}{'median s':>10s}{'min s':>8s}{'max s':>8s}")
    print(f"{'BeamHub (LocalBeamSpawner, SSO)':38s}{m_ours:10.2f}{min(ours):8.2f}{max(ours):8.2f}")
    print(f"{'plain JupyterHub (SimpleLocalProcess)':38s}{m_plain:10.2f}{min(plain):8.2f}{max(plain):8.2f}")
    print(f"ratio BeamHub / plain JupyterHub: {m_ours / m_plain:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
