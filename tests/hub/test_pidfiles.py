"""Pid files and the recovery of a crashed run's services, on real processes (no platform needed)."""

import os
import signal
import socket
import subprocess
import time

from beamhub.hub.pidfiles import read_pid_file, stop_recorded, write_pid_file
from beamhub.hub.platform import Platform, PlatformConfig
from beamhub.hub.procinfo import group_members, port_holders, same_process, start_time


def _orphan_group():
    """A process group like a service's: a leader in its own session and a child of it."""
    leader = subprocess.Popen(["/bin/sh", "-c", "sleep 600 & wait"], start_new_session=True)
    deadline = time.monotonic() + 30
    while len(group_members(leader.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    return leader


def _kill(leader):
    os.killpg(leader.pid, signal.SIGKILL)
    leader.wait()


def test_write_and_read_back(tmp_path):
    leader = _orphan_group()
    try:
        write_pid_file(tmp_path / "run" / "proxy.pid", leader.pid, "proxy")
        pid, started = read_pid_file(tmp_path / "run" / "proxy.pid")
        assert pid == leader.pid and same_process(pid, started)
        assert read_pid_file(tmp_path / "missing.pid") is None
    finally:
        _kill(leader)


def test_recover_stops_the_recorded_groups_and_says_so(tmp_path):
    hub, proxy = _orphan_group(), _orphan_group()
    try:
        platform = Platform(PlatformConfig(state_dir=tmp_path))
        write_pid_file(platform.pid_file("hub"), hub.pid, "hub")
        write_pid_file(platform.pid_file("proxy"), proxy.pid, "proxy")
        lines = platform.recover()
        assert [line.split(" (pid")[0] for line in lines] == ["stopped the hub", "stopped the proxy"]
        assert group_members(hub.pid) == [] and group_members(proxy.pid) == []  # children too
        assert not list((tmp_path / "run").glob("*.pid"))
        assert platform.recover() == []
    finally:
        for leader in (hub, proxy):
            leader.wait(timeout=10)


def test_a_reused_pid_is_left_alone(tmp_path):
    stranger = _orphan_group()
    try:
        path = tmp_path / "run" / "sso.pid"
        path.parent.mkdir()
        path.write_text(f'{{"pid": {stranger.pid}, "started": {start_time(stranger.pid) + 1}}}')
        assert stop_recorded(path) is None and not path.exists()
        assert stranger.poll() is None
    finally:
        _kill(stranger)


def test_port_holders_names_the_listening_process_and_nothing_for_a_free_port():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        holders = port_holders(port)
        assert [pid for pid, _ in holders] == [os.getpid()]
        assert "python" in holders[0][1] or "pytest" in holders[0][1]
    assert port_holders(port) == []
