"""Who local sessions and jobs run as: each user's SSO identity (isolated) or the hub's user (personal).

JupyterHub's LocalProcessSpawner runs each user as their own UNIX account; BeamHub does the same
with the uid, gid and supplementary gids from the SSO claims (the users need not exist in
``/etc/passwd``).  That needs root, so the embedded platform has two modes:

* **isolated** — the hub runs as root: every session and every batch job drops to the user's
  uid/gid/gids before it starts, each workspace belongs to its user (mode 0700), and the hub's
  state (secrets, database, provider keys, logs, job records) is readable by root only.
* **personal** — the hub runs as a normal user: every session runs as that user, who owns
  all of it anyway.  Nothing separates one signed-in user from another; fine for one person
  on their own machine, not for a shared one.

This module holds what both the spawner and the job backend need: the mode, the process
credentials to start user code with, the workspace's ownership, and the check that a user's
uid can reach the interpreter at all (a Python under ``/root`` cannot be executed by uid 2001).
"""

from __future__ import annotations

import os
import pwd
import stat
from pathlib import Path
from typing import Any

from beamhub.hub.identity import Identity

#: umask of user code: the workspace itself is 0700, so files inside may be group/world-readable.
USER_UMASK = 0o022


def isolated() -> bool:
    """True when sessions and jobs run as their users' own uids (this process is root)."""
    return os.geteuid() == 0


def hub_user() -> str:
    """The name (or uid) this process runs as, for messages."""
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def mode_line() -> str:
    """One line saying which mode the platform runs in and what it guarantees."""
    if isolated():
        return (
            "isolated mode: each session and batch job runs as its user's SSO uid/gid, "
            "workspaces are private (0700), the hub's state is readable by root only"
        )
    return (
        f"personal mode, not isolated: every session and batch job runs as {hub_user()} "
        f"(uid {os.geteuid()}); start as root for per-user isolation"
    )


class IsolationError(RuntimeError):
    """User code cannot be started as its user; the message says why and what to do."""


def credentials(identity: Identity | None) -> dict[str, Any]:
    """Keyword arguments for ``subprocess.Popen`` / ``asyncio.create_subprocess_exec``.

    Isolated: ``user``, ``group`` and ``extra_groups`` from the identity (the child calls
    setgroups, setgid, setuid before exec — in C, after fork — so it never runs user code as
    root and keeps none of root's supplementary groups) and ``umask``.  Personal: only the umask.
    A missing or root identity is refused, whatever the authenticator let through.
    """
    if not isolated():
        return {"umask": USER_UMASK}
    if identity is None:
        raise IsolationError(
            "no SSO identity for this user: the hub runs as root and never starts "
            "user code as root; sign in again through the SSO provider"
        )
    if identity.uid == 0 or identity.gid == 0 or 0 in identity.gids:
        raise IsolationError(f"{identity.username}'s identity maps to root (uid/gid 0); refused")
    return {"user": identity.uid, "group": identity.gid, "extra_groups": list(identity.gids), "umask": USER_UMASK}


def session_shell() -> str:
    """The shell of sessions' terminals and SHELL: bash where there is one."""
    return "/bin/bash" if os.path.exists("/bin/bash") else "/bin/sh"


def process_environment(identity: Identity | None, home: Path | str, name: str) -> dict[str, str]:
    """USER, LOGNAME, HOME and SHELL of user code: the workspace is the home (no passwd entry needed)."""
    user = identity.username if identity else name
    return {"USER": user, "LOGNAME": user, "HOME": str(home), "SHELL": session_shell()}


def ensure_workspace(path: Path, identity: Identity | None) -> bool:
    """Create ``path`` if needed and, isolated, make it ``identity``'s alone (owner uid:gid, mode 0700).

    A workspace that belongs to someone else (made by an earlier run as root) is handed over
    with everything in it; symbolic links are changed themselves, never followed.  Returns True
    when the folder was created now.
    """
    created = not path.exists()
    path.mkdir(parents=True, exist_ok=True)
    if not isolated() or identity is None:
        return created
    info = path.lstat()
    if info.st_uid != identity.uid or info.st_gid != identity.gid:
        for folder, dirs, files in os.walk(path):
            for entry in (*dirs, *files):
                os.chown(os.path.join(folder, entry), identity.uid, identity.gid, follow_symlinks=False)
        os.chown(path, identity.uid, identity.gid)
    if stat.S_IMODE(info.st_mode) != 0o700:
        path.chmod(0o700)
    return created


def give_to(path: Path, identity: Identity | None) -> None:
    """Isolated: make ``path`` (a file, folder or link the hub just made in a workspace) the user's."""
    if isolated() and identity is not None:
        os.chown(path, identity.uid, identity.gid, follow_symlinks=False)


def unreachable(path: Path | str, *, execute: bool = True) -> str | None:
    """Why a user other than this one cannot reach ``path`` (None when they can).

    Every folder on the way needs search permission for others (o+x); the file itself
    read (and execute, when ``execute``) permission.  Group bits are not counted: a user's
    gids are the SSO's, not this machine's.
    """
    target = Path(os.path.realpath(path))
    for folder in reversed(target.parents):
        mode = folder.stat().st_mode
        if not mode & stat.S_IXOTH:
            return f"{folder} (mode {stat.S_IMODE(mode):04o}) is not searchable by other users"
    try:
        mode = target.stat().st_mode
    except FileNotFoundError:
        return f"{target} does not exist"
    need = stat.S_IROTH | (stat.S_IXOTH if execute else 0)
    if target.is_dir():
        need = stat.S_IXOTH
    if mode & need != need:
        return (
            f"{target} (mode {stat.S_IMODE(mode):04o}) is not {'executable' if execute else 'readable'} by other users"
        )
    return None


def command_problem(command: Path | str) -> str | None:
    """Why another uid could not run ``command`` (a program or a ``#!`` script), or None.

    For a script, its interpreter is checked too: ``.venv/bin/jupyterhub-singleuser`` is only
    as reachable as the Python its first line names.
    """
    problem = unreachable(command)
    if problem:
        return problem
    try:
        with open(command, "rb") as script:
            first = script.readline(512)
    except OSError as exc:
        return f"{command} cannot be read ({exc.strerror})"
    if first.startswith(b"#!"):
        words = first[2:].decode(errors="replace").split()
        if words:
            return unreachable(words[0])
    return None
