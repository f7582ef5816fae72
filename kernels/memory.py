"""How much memory a job may use, and a one-line refusal when its estimate does not fit.

Before allocating, a command estimates the bytes it will need (``phase``,
``simulate`` and ``tomo`` each know their own arrays) and calls
:func:`require`.  The budget is what :func:`available_bytes` finds: the
kernel's ``MemAvailable`` (/proc/meminfo) and, where the process runs in a
control group with a memory limit (a Kubernetes pod, a batch job, systemd),
that limit minus what the group already uses — whichever is smaller.  Without
the check a run that cannot fit is killed by the OOM killer hours later, or
numpy fails with a traceback naming an array the user never asked for.

The refusal names the option to lower and both figures, for example::

    number_of_outputs_images=5000 at 512^3 needs ~18 TB, 21 GB are available; lower it
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from beamhub.errors import UsageError

__all__ = ["InsufficientMemory", "available_bytes", "format_bytes", "require", "shape_text"]

# A cgroup "limit" at or above this is the kernel's way of saying "none" (v1 uses 2**63 - page).
_NO_LIMIT = 1 << 60
_CGROUP_ROOT = Path("/sys/fs/cgroup")


class InsufficientMemory(UsageError):
    """The estimated memory of a run exceeds what is available; the message names the option."""


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None  # "max" (v2, no limit) is not a number


def _meminfo_available(meminfo: Path) -> int | None:
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_dirs(root: Path, proc_cgroup: Path) -> list[tuple[Path, str, str]]:
    """(folder, limit file, usage file) of this process's memory cgroup, v2 and v1, innermost first."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        lines = []
    found = []
    for line in lines:
        _id, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        rel = path.lstrip("/")
        if controllers == "":  # cgroup v2's unified hierarchy
            found += [(root / rel, "memory.max", "memory.current"), (root, "memory.max", "memory.current")]
        elif "memory" in controllers.split(","):
            base = root / "memory"
            found += [
                (base / rel, "memory.limit_in_bytes", "memory.usage_in_bytes"),
                (base, "memory.limit_in_bytes", "memory.usage_in_bytes"),
            ]
    return found


def _cgroup_headroom(root: Path, proc_cgroup: Path) -> int | None:
    """The memory limit of this process's control group minus its usage; None when unlimited."""
    for folder, limit_file, usage_file in _cgroup_dirs(root, proc_cgroup):
        limit = _read_int(folder / limit_file)
        if limit is None or limit >= _NO_LIMIT:
            continue
        usage = _read_int(folder / usage_file) or 0
        return max(limit - usage, 0)
    return None


def available_bytes(
    *,
    meminfo: str | os.PathLike = "/proc/meminfo",
    cgroup_root: str | os.PathLike = _CGROUP_ROOT,
    proc_cgroup: str | os.PathLike = "/proc/self/cgroup",
) -> int | None:
    """Bytes this process can still allocate: min(MemAvailable, cgroup limit - usage).

    Returns None where neither can be read (not Linux): the caller then skips the check.
    """
    figures = [_meminfo_available(Path(meminfo)), _cgroup_headroom(Path(cgroup_root), Path(proc_cgroup))]
    figures = [f for f in figures if f is not None]
    return min(figures) if figures else None


def format_bytes(n: float) -> str:
    """``5.4 TB``, ``21 GB``, ``800 MB``: decimal units, two significant digits."""
    for unit, size in (("PB", 1e15), ("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            value = n / size
            return f"{value:.2g} {unit}" if value < 10 else f"{value:.0f} {unit}"
    return f"{int(n)} B"


def shape_text(shape) -> str:
    """``512^3`` for a cube, ``640x480`` otherwise."""
    shape = tuple(int(s) for s in shape)
    if len(shape) > 1 and len(set(shape)) == 1:
        return f"{shape[0]}^{len(shape)}"
    return "x".join(map(str, shape))


def require(needed: float, what: str, advice: str = "lower it", *, available: int | None = None) -> None:
    """Refuse (raise :class:`InsufficientMemory`) when ``needed`` bytes exceed what is available.

    Parameters
    ----------
    needed : float
        The estimate, in bytes.
    what : str
        The option and the sizes it was taken at, e.g. ``"--detsize=4000"``; starts the message.
    advice : str
        What to do instead (ends the message).
    available : int, optional
        The budget; default :func:`available_bytes`.  No check where it is unknown.
    """
    if available is None:
        available = available_bytes()
    if available is None or not math.isfinite(needed) or needed <= available:
        return
    raise InsufficientMemory(f"{what} needs ~{format_bytes(needed)}, {format_bytes(available)} are available; {advice}")
