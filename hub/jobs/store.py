"""Job records on disk: one JSON file per job under <root>/<owner>/<id>.json, written atomically.

Beside each record: ``<id>.log`` (the job's output) and, for local jobs, ``<id>.status`` (its
exit status, written when it ends, even when the service that started it is gone).  The
records are the jobs' state: a restarted service reads them back and adopts what still runs.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from beamhub.atomic import write_atomic
from beamhub.hub.jobs.model import FINISHED, Job

_SAFE = re.compile(r"^[A-Za-z0-9._@+-]{1,128}$")


class JobStore:
    """Keeps job records; lists only one owner's at a time, so no call can leak another user's."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, owner: str, job_id: str) -> Path:
        if not (_SAFE.match(owner) and _SAFE.match(job_id)):
            raise KeyError(job_id)
        return self.root / owner / f"{job_id}.json"

    def save(self, job: Job) -> None:
        path = self._path(job.owner, job.id)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps(job.to_json()))

    def get(self, owner: str, job_id: str) -> Job | None:
        """The job ``job_id`` if ``owner`` owns it, else None (another user's job looks absent)."""
        try:
            path = self._path(owner, job_id)
        except KeyError:
            return None
        if not path.is_file():
            return None
        return Job(**json.loads(path.read_text()))

    def list(self, owner: str) -> list[Job]:
        try:
            folder = self._path(owner, "x").parent
        except KeyError:
            return []
        jobs = [Job(**json.loads(p.read_text())) for p in folder.glob("*.json")] if folder.is_dir() else []
        return sorted(jobs, key=lambda j: j.created)

    def unfinished(self) -> list[Job]:
        """Every owner's jobs not yet finished: for the service's own recovery at start, never for a request."""
        jobs = []
        for path in self.root.glob("*/*.json"):
            try:
                job = Job(**json.loads(path.read_text()))
            except (OSError, ValueError, TypeError):
                continue  # a record we cannot read is left as it is
            if job.state not in FINISHED:
                jobs.append(job)
        return sorted(jobs, key=lambda j: j.created)

    def log_path(self, job: Job) -> Path:
        return self._path(job.owner, job.id).with_suffix(".log")

    def status_path(self, job: Job) -> Path:
        return self._path(job.owner, job.id).with_suffix(".status")
