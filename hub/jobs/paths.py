"""Where a local batch job may work: its owner's workspace, and the data folders their groups may read.

Checked by the jobs service when a job is submitted, so a request naming a ``cwd`` or an
output outside those places is refused with one line (HTTP 400) before anything runs.  It is
the readable half of the guarantee; the other half is that a job runs as its owner's uid
(:mod:`beamhub.hub.isolation`), so whatever this check cannot see — a path computed inside a
reconstruction — still meets the file system's permissions.

What counts as an output: ``--out``/``-o`` on the command line, a phasing job file's
``out_file`` and an EMC config's ``output_folder``/``log_file``.  Inputs may also come from
the data folders; any other absolute path in the arguments must lie in one of the two.
Paths are compared after resolving links, so a link in a workspace that points into another
user's cannot smuggle a job there.
"""

from __future__ import annotations

import configparser
import json
import os
from dataclasses import dataclass
from pathlib import Path

from beamhub.hub.jobs.model import Job, JobRequestError

OUTPUT_OPTIONS = ("--out", "-o")
MAX_JOB_FILE = 1 << 20  # job files are small; a bigger one is not read here


@dataclass(frozen=True)
class JobRoots:
    """The owner's workspace and the data folders (read-only or not) their groups allow."""

    workspace: Path
    read_only: tuple[Path, ...] = ()
    writable: tuple[Path, ...] = ()

    @property
    def readable(self) -> tuple[Path, ...]:
        return (self.workspace, *self.read_only, *self.writable)

    @property
    def write(self) -> tuple[Path, ...]:
        return (self.workspace, *self.writable)


def _resolve(path: str | Path, base: Path) -> Path:
    return Path(os.path.realpath(os.path.join(base, str(path))))


def inside(path: Path, roots: tuple[Path, ...]) -> bool:
    """True when the resolved ``path`` is one of ``roots`` or below one."""
    for root in roots:
        root = Path(os.path.realpath(root))
        if path == root or root in path.parents:
            return True
    return False


def _option_values(args: list[str], names: tuple[str, ...]) -> list[str]:
    values = []
    for i, arg in enumerate(args):
        if arg in names and i + 1 < len(args):
            values.append(args[i + 1])
        for name in names:
            if name.startswith("--") and arg.startswith(name + "="):
                values.append(arg.split("=", 1)[1])
    return values


def _first_positional(args: list[str]) -> str | None:
    return next((a for a in args if not a.startswith("-")), None)


def declared_outputs(kind: str, job_file: Path) -> list[tuple[str, Path]]:
    """Outputs a job file names: a phasing job's ``out_file``, an EMC config's ``output_folder``/``log_file``.

    Returns (key, resolved path) pairs.  Read best effort: a file this cannot read or parse
    gives none (the job then fails, or meets the file system's permissions, on its own).
    """
    try:
        if not job_file.is_file() or job_file.stat().st_size > MAX_JOB_FILE:
            return []
        text = job_file.read_text(errors="replace")
    except OSError:
        return []
    base = job_file.parent
    if kind == "phase":
        try:
            out = json.loads(text).get("out_file")
        except (ValueError, AttributeError):
            return []
        return [("out_file", _resolve(out, base))] if isinstance(out, str) and out else []
    if kind == "emc":
        ini = configparser.ConfigParser(interpolation=None, strict=False)
        try:
            ini.read_string(text)
        except configparser.Error:
            return []
        section = ini["emc"] if ini.has_section("emc") else {}
        return [
            (key, _resolve(section[key], base))
            for key in ("output_folder", "log_file")
            if section.get(key) and ":::" not in section[key]
        ]
    return []


def confine(job: Job, roots: JobRoots) -> Path:
    """The job's working directory, resolved; JobRequestError naming what lies outside ``roots``."""
    home = roots.workspace
    cwd = _resolve(job.cwd or home, home)
    where = f"your workspace ({home}) or the data your groups may read"
    if not inside(cwd, roots.readable):
        raise JobRequestError(f"'cwd' {job.cwd} is outside {where}")
    if job.cwd and not cwd.is_dir():
        raise JobRequestError(f"'cwd' {job.cwd} is not a folder")
    outputs = [
        (f"{name} {value}", _resolve(value, cwd))
        for name in OUTPUT_OPTIONS
        for value in _option_values(job.args, (name,))
    ]
    job_file = _first_positional(job.args)
    if job.kind in ("phase", "emc") and job_file:
        resolved = _resolve(job_file, cwd)
        if inside(resolved, roots.readable):
            outputs += [(f"'{key}' {path} in {job_file}", path) for key, path in declared_outputs(job.kind, resolved)]
    for what, path in outputs:
        if not inside(path, roots.write):
            raise JobRequestError(f"{what} is outside your workspace ({home}): jobs write only there")
    for arg in job.args:
        value = arg.split("=", 1)[1] if arg.startswith("--") and "=" in arg else arg
        if value.startswith("/") or value == ".." or value.startswith("../") or "/../" in value:
            if not inside(_resolve(value, cwd), roots.readable):
                raise JobRequestError(f"{value} is outside {where}")
    return cwd
