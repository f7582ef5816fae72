"""Is a process still the one we started?  Process identity from ``/proc``: pid plus start time.

A pid alone is not an identity: after a crash or a reboot the number may belong to another
process, and signalling that one would kill a stranger.  The kernel's start time of a process
(``/proc/<pid>/stat`` field 22, clock ticks since boot) never changes while it lives and makes
``(pid, start time)`` unique, so records that outlive their writer (the platform's pid files,
batch job records) keep both, and everything that adopts or stops such a process asks
:func:`same_process` first.  Linux only; elsewhere nothing is ever adopted.
"""

from __future__ import annotations

import os
import signal


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (field 3 onwards), or None."""
    try:
        with open(f"/proc/{int(pid)}/stat", "rb") as f:
            text = f.read().decode(errors="replace")
    except (OSError, ValueError):
        return None
    # the command name (field 2) is in parentheses and may itself hold spaces or ')'
    return text[text.rfind(")") + 2:].split()


def start_time(pid: int | None) -> int | None:
    """The start time of live process ``pid`` (clock ticks since boot), None if it is gone or a zombie."""
    if not pid or pid <= 0:
        return None
    fields = _stat_fields(pid)
    if not fields or len(fields) < 20 or fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def same_process(pid: int | None, started: int | None) -> bool:
    """True when ``pid`` still runs and is the process that started at ``started`` (not a reused pid)."""
    return started is not None and start_time(pid) == started


def group_members(pgid: int) -> list[int]:
    """The live processes of process group ``pgid`` (zombies left out)."""
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields and len(fields) > 2 and fields[0] not in ("Z", "X") and fields[2] == str(pgid):
                members.append(int(entry))
    return members


def signal_group(pid: int, started: int | None, sig: int = signal.SIGTERM) -> bool:
    """Send ``sig`` to the process group led by ``pid`` if ``pid`` is still the process we started.

    Our services and jobs are started in sessions of their own, so the leader's pid is the
    group id and the signal reaches everything they started (MPI ranks, a shell's children).
    A leader that is no longer a group leader gets the signal alone.  Returns whether a signal
    was sent.
    """
    if not same_process(pid, started):
        return False
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        return False
    return True


def _listening_inodes(port: int) -> set[str]:
    """Socket inodes listening on TCP ``port`` (IPv4 and IPv6), from ``/proc/net/tcp*``."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f, None)
                for line in f:
                    fields = line.split()
                    # local address is HEX_IP:HEX_PORT; state 0A is LISTEN
                    if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                        inodes.add(fields[9])
        except OSError:
            continue
    return inodes


def port_holders(port: int) -> list[tuple[int, str]]:
    """``(pid, command line)`` of the processes listening on TCP ``port``, as far as ``/proc`` shows them.

    Used to say *who* holds a port a service needs, rather than only that it is taken.
    Processes of other users are invisible to a non-root caller; the list is then shorter.
    """
    inodes = _listening_inodes(port)
    if not inodes:
        return []
    wanted = {f"socket:[{inode}]" for inode in inodes}
    holders = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fds = os.listdir(f"/proc/{entry}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{entry}/fd/{fd}") in wanted:
                    with open(f"/proc/{entry}/cmdline", "rb") as f:
                        command = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
                    holders.append((int(entry), command))
                    break
            except OSError:
                continue
    return holders
