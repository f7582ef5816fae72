"""`beamhub up` as a child process of a test: its own state folder and free ports, output in a file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from beamhub.hub.platform import free_port

PORT_NAMES = ("port", "sso-port", "proxy-api-port", "hub-port", "jobs-port")


def pids_of(*fragments: str) -> list[int]:
    """Processes whose command line holds every one of ``fragments``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = open(f"/proc/{entry}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if all(f in cmdline for f in fragments):
            found.append(int(entry))
    return found


class UpProcess:
    """One run of `beamhub up --state-dir STATE` on ``ports`` (the same ones may be reused for a second run)."""

    def __init__(self, state: Path, ports: dict[str, int] | None = None):
        self.state = state
        self.ports = ports or {name: free_port() for name in PORT_NAMES}
        self.out_path = state.parent / f"up-{time.monotonic_ns()}.out"
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ports['port']}"

    def start(self, timeout: float = 240, ignore_sigint: bool = False) -> str:
        """Start it and wait for the banner; returns what it printed so far.

        ``ignore_sigint``: start it with SIGINT ignored, as a shell starts a background job
        without job control (or as nohup's caller may have), to check it still stops on Ctrl-C.
        """
        args = [f"--{name}={port}" for name, port in self.ports.items()]
        preexec = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if ignore_sigint else None
        with open(self.out_path, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "beamhub", "up", "--state-dir", str(self.state), *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                preexec_fn=preexec,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.output()
            if "Press Ctrl-C" in text:
                return text
            if self.proc.poll() is not None:
                raise AssertionError(f"beamhub up exited with {self.proc.returncode}:\n{text[-3000:]}")
            time.sleep(0.5)
        raise AssertionError(f"beamhub up did not start in {timeout} s:\n{self.output()[-3000:]}")

    def output(self) -> str:
        return self.out_path.read_text(errors="replace") if self.out_path.exists() else ""

    def wait_for_output(self, words: str, timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if words in self.output():
                return self.output()
            time.sleep(0.3)
        raise AssertionError(f"{words!r} not printed by beamhub up in {timeout} s:\n{self.output()[-3000:]}")

    def stop(self) -> int | None:
        """Ctrl-C, as a person would; returns the exit status."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(timeout=30)

    def down(self) -> subprocess.CompletedProcess:
        """`beamhub down` on this state folder: stops this run, what it left, sessions and jobs."""
        return subprocess.run(
            [sys.executable, "-m", "beamhub", "down", "--state-dir", str(self.state)],
            capture_output=True,
            text=True,
            timeout=180,
        )

    def clean_up(self) -> None:
        """Whatever happened in the test, leave nothing running: kill `beamhub up` if it still runs,
        then `beamhub down` for the services, sessions and jobs it leaves (PDEATHSIG may be slow)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        self.down()
        self.kill_sessions()

    def kill_sessions(self) -> None:
        """Stop what still runs in the users' workspaces (sessions outlive `beamhub up` by design)."""
        users = str((self.state / "users").resolve())
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                cwd = os.readlink(f"/proc/{entry}/cwd")
            except OSError:
                continue
            if cwd == users or cwd.startswith(users + "/"):
                try:
                    os.kill(int(entry), signal.SIGKILL)
                except ProcessLookupError:
                    pass
