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
import time


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (field 3 onwards), or None."""
    try:
        with open(f"/proc/{int(pid)}/stat", "rb") as f:
            text = f.read().decode(errors="replace")
    except (OSError, ValueError):
        return None
    # the command name (field 2) is in parentheses and may itself hold spaces or ')'
    return text[text.rfind(")") + 2 :].split()


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


def _within(path: str | None, root: str) -> bool:
    return bool(path) and (path == root or path.startswith(root.rstrip("/") + "/"))


def process_cwd(pid: int) -> str | None:
    """The working directory of ``pid`` (None when it is gone or not ours to read)."""
    try:
        return os.readlink(f"/proc/{int(pid)}/cwd")
    except (OSError, ValueError):
        return None


def process_home(pid: int) -> str | None:
    """``HOME`` in the environment ``pid`` was started with (None when unreadable or unset)."""
    try:
        with open(f"/proc/{int(pid)}/environ", "rb") as f:
            entries = f.read().split(b"\0")
    except (OSError, ValueError):
        return None
    for entry in entries:
        if entry.startswith(b"HOME="):
            return entry[5:].decode(errors="replace")
    return None


def processes_under(root: str | os.PathLike) -> list[int]:
    """Live processes whose working directory or ``HOME`` is ``root`` or a folder below it.

    Users' sessions and batch jobs start in their workspace with ``HOME`` set to it, and what
    they start (kernels, terminals, MPI ranks, a job's own children) inherits ``HOME`` even after
    a ``cd`` elsewhere, so ``processes_under(<state>/users)`` finds everything users run on the
    embedded platform, whatever process group it put itself in.  Zombies are left out.
    """
    root = os.path.realpath(root)
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or start_time(int(entry)) is None:
            continue
        pid = int(entry)
        home = process_home(pid)
        if _within(process_cwd(pid), root) or (home and _within(os.path.realpath(home), root)):
            found.append(pid)
    return found


def ancestors(pid: int | None = None) -> set[int]:
    """``pid`` (default: this process) and every process above it, up to init."""
    chain, current = set(), pid or os.getpid()
    while current and current not in chain:
        chain.add(current)
        fields = _stat_fields(current)
        current = int(fields[1]) if fields and len(fields) > 1 else 0
    return chain


def _live_groups() -> set[int]:
    """Process group ids that still have a live (non-zombie) member."""
    groups = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields and len(fields) > 2 and fields[0] not in ("Z", "X"):
                groups.add(int(fields[2]))
    return groups


def terminate(
    targets: list[tuple[int, int | None]], grace: float = 10.0, groups: bool = True
) -> tuple[list[int], list[int]]:
    """Stop each ``(pid, start time)`` that is still that process, all at once; returns (stopped, refused).

    SIGTERM goes to the process group a target leads (a session's kernels, a job's MPI ranks;
    unless ``groups`` is False) or to the target alone; after ``grace`` seconds SIGKILL goes to
    what is left.  A target we may
    not signal (another user's process, seen by a non-root caller) is returned in ``refused``.
    """
    stopped, refused, leaders = [], [], {}
    for pid, started in targets:
        if not same_process(pid, started):
            continue
        try:
            leaders[pid] = groups and os.getpgid(pid) == pid
            (os.killpg if leaders[pid] else os.kill)(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
        except PermissionError:
            refused.append(pid)
            continue
        stopped.append(pid)
    starts = dict(targets)

    def left() -> list[int]:
        groups = _live_groups()
        return [p for p in stopped if (p in groups if leaders[p] else same_process(p, starts[p]))]

    deadline = time.monotonic() + grace
    while left() and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in left():
        try:
            (os.killpg if leaders[pid] else os.kill)(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    deadline = time.monotonic() + 5
    while left() and time.monotonic() < deadline:
        time.sleep(0.1)
    return stopped, refused
