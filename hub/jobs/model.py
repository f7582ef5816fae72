"""What a job is: the request a user makes and the record the service keeps."""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import asdict, dataclass, field
from typing import Any

KINDS = ("phase", "tomo", "emc")
STATES = ("pending", "running", "succeeded", "failed", "cancelled")
FINISHED = ("succeeded", "failed", "cancelled")
#: kinds whose command splits its work over MPI ranks (EMC: orientations; tomo: slabs)
MPI_KINDS = ("emc", "tomo")
MAX_RANKS = 64
_ARG = re.compile(r"^[^\x00-\x1f]{0,4096}$")


class JobRequestError(ValueError):
    """A submission is malformed; the message names the field."""


@dataclass
class Job:
    """One batch job: a `beamhub <kind> <args>` run for ``owner`` in ``environment``."""

    id: str
    owner: str
    kind: str
    args: list[str]
    cwd: str
    environment: str
    ranks: int = 1
    state: str = "pending"
    created: float = field(default_factory=time.time)
    finished: float | None = None
    exit_code: int | None = None
    backend: str = ""
    detail: str = ""
    #: local backend: the job's process (its group leader) and its start time from /proc, so a
    #: restarted service can tell its job from a process that reused the pid
    pid: int | None = None
    started: int | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def command(self) -> list[str]:
        return ["beamhub", self.kind, *self.args]


def new_job_id(kind: str) -> str:
    """Short, DNS-label-safe ids: 'phase-3f9a2c1b'."""
    return f"{kind}-{secrets.token_hex(4)}"


def parse_request(body: Any, owner: str) -> Job:
    """A :class:`Job` from a submission's JSON body, or JobRequestError naming the bad field."""
    if not isinstance(body, dict):
        raise JobRequestError("the request body must be a JSON object")
    unknown = sorted(set(body) - {"kind", "args", "cwd", "environment", "ranks"})
    if unknown:
        raise JobRequestError(f"unknown field(s): {', '.join(unknown)}")
    kind = body.get("kind")
    if kind not in KINDS:
        raise JobRequestError(f"'kind' must be one of {', '.join(KINDS)}, not {kind!r}")
    args = body.get("args", [])
    if not isinstance(args, list) or not all(isinstance(a, str) and _ARG.match(a) for a in args):
        raise JobRequestError("'args' must be a list of strings")
    cwd = body.get("cwd", "")
    if not isinstance(cwd, str) or (cwd and not cwd.startswith("/")):
        raise JobRequestError("'cwd' must be an absolute path")
    environment = body.get("environment", "")
    if not isinstance(environment, str):
        raise JobRequestError("'environment' must be an environment slug")
    ranks = body.get("ranks", 1)
    if not isinstance(ranks, int) or isinstance(ranks, bool) or not 1 <= ranks <= MAX_RANKS:
        raise JobRequestError(f"'ranks' must be an integer from 1 to {MAX_RANKS}")
    if ranks > 1 and kind not in MPI_KINDS:
        raise JobRequestError(f"only {' and '.join(MPI_KINDS)} jobs run over several MPI ranks")
    return Job(
        id=new_job_id(kind), owner=owner, kind=kind, args=list(args), cwd=cwd, environment=environment, ranks=ranks
    )
