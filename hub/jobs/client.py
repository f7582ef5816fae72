"""`beamhub submit|jobs|logs|cancel`: batch jobs from inside a BeamHub session.

The session's own hub token (JUPYTERHUB_API_TOKEN) authenticates every call to
the jobs service at BEAMHUB_JOBS_URL; no cluster credentials are involved.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import urllib.error
import urllib.request

from beamhub.cli import command_parser
from beamhub.errors import UsageError

EPILOG = """\
examples:
  beamhub submit phase job.json
  beamhub submit tomo scan.h5 --out recon.h5 --center auto
  beamhub submit emc config.ini --ranks 4 -- --iterations 30
  beamhub jobs
  beamhub logs phase-3f9a2c1b --follow
  beamhub cancel phase-3f9a2c1b
"""


def _endpoint() -> tuple[str, str]:
    url, token = os.environ.get("BEAMHUB_JOBS_URL"), os.environ.get("JUPYTERHUB_API_TOKEN")
    if not url or not token:
        raise UsageError("batch jobs are submitted from inside a BeamHub session "
                         "(BEAMHUB_JOBS_URL and JUPYTERHUB_API_TOKEN are not set here)")
    return url.rstrip("/"), token


def _call(method: str, path: str, body: dict | None = None, text: bool = False):
    url, token = _endpoint()
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{url}/api/jobs{path}", data=data, method=method,
                                     headers={"Authorization": f"token {token}",
                                              "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as resp:
            payload = resp.read().decode()
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read().decode()).get("message")
        except ValueError:
            message = exc.reason
        raise UsageError(f"the jobs service answered {exc.code}: {message}") from None
    except urllib.error.URLError as exc:
        raise UsageError(f"cannot reach the jobs service at {url}: {exc.reason}") from None
    return payload if text else json.loads(payload)


def _row(job: dict) -> str:
    created = time.strftime("%Y-%m-%d %H:%M", time.localtime(job["created"]))
    ranks = f" x{job['ranks']}" if job.get("ranks", 1) > 1 else ""
    return f"{job['id']:<18} {job['state']:<10} {created}  {job['environment']:<12} " \
           f"{job['kind']}{ranks} {' '.join(job['args'])}"


def _split_submit(parser: argparse.ArgumentParser, argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """submit's own options (--ranks, --environment) wherever they stand before `--`; the rest is the job's.

    `beamhub submit emc config.ini --ranks 4 -- --iterations 30` runs 4 ranks of
    `beamhub emc config.ini --iterations 30`; `beamhub submit tomo scan.h5 --out r.h5` passes
    --out to tomo.
    """
    argv = list(argv)
    tail = argv[argv.index("--") + 1:] if "--" in argv else []
    head = argv[:argv.index("--")] if "--" in argv else argv
    parser.allow_abbrev = False  # --r must not silently mean --ranks
    known, _ = parser.parse_known_args(head)
    return known, _in_order(head, known) + tail


def _in_order(head: list[str], known: argparse.Namespace) -> list[str]:
    """The job's arguments in the order typed: ``head`` without the kind and submit's own options."""
    out, skip, kind_seen = [], False, False
    for item in head:
        if skip:
            skip = False
            continue
        if item in ("--ranks", "--environment"):
            skip = True
            continue
        if item.startswith(("--ranks=", "--environment=")):
            continue
        if not kind_seen and item == known.kind:
            kind_seen = True
            continue
        out.append(item)
    return out


def _refuse(prog: str):
    """An ``ArgumentParser.error`` that raises one-line UsageError instead of printing usage."""
    def error(message: str):
        raise UsageError(f"{message} (see '{prog} --help')")
    return error


def check_job_options(kind: str, args: list[str]) -> None:
    """Refuse, before submitting, options that ``beamhub KIND`` itself would refuse.

    The job's own argument parser is used (:func:`beamhub.cli.command_parser`),
    so a typo such as ``--center-of 3`` or a missing ``--out`` is one line here
    instead of a failed job in the queue; submit's own options were taken out
    already.  Where the command is not installed in this environment the
    service and the job check instead.
    """
    parser = command_parser(kind)
    if parser is not None:
        parser.parse_args(args)


def main(argv: list[str], prog: str) -> int:
    verb = prog.split()[-1]
    p = argparse.ArgumentParser(prog=prog, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
                                description={
                                    "submit": "Run `beamhub phase|tomo|emc ...` as a batch job with this "
                                              "session's environment, identity and data.",
                                    "jobs": "List your batch jobs.",
                                    "logs": "Show the output of one of your jobs.",
                                    "cancel": "Cancel one of your jobs.",
                                }[verb])
    p.error = _refuse(prog)
    if verb == "submit":
        p.add_argument("kind", choices=["phase", "tomo", "emc"], help="what to run")
        p.add_argument("--ranks", type=int, default=1, help="MPI ranks (emc only; default 1)")
        p.add_argument("--environment", default=os.environ.get("BEAMHUB_ENVIRONMENT", ""),
                       help="environment to run in (default: this session's)")
        p.add_argument("args", nargs="*", metavar="ARG",
                       help="arguments of `beamhub KIND`; everything after `--` is passed unread")
        a, args = _split_submit(p, argv)
        check_job_options(a.kind, args)
        job = _call("POST", "", {"kind": a.kind, "args": args, "cwd": os.getcwd(),
                                 "environment": a.environment, "ranks": a.ranks})
        print(f"submitted {job['id']} ({job['state']}); follow it with: beamhub logs {job['id']} --follow")
    elif verb == "jobs":
        p.add_argument("--json", action="store_true", help="machine-readable output")
        a = p.parse_args(argv)
        jobs = _call("GET", "")["jobs"]
        if a.json:
            print(json.dumps(jobs, indent=2))
        elif not jobs:
            print("no jobs yet; start one with: beamhub submit phase job.json")
        else:
            print(f"{'ID':<18} {'STATE':<10} {'CREATED':<17} {'ENVIRONMENT':<12} COMMAND")
            for job in jobs:
                print(_row(job))
    elif verb == "logs":
        p.add_argument("id", help="job id (see `beamhub jobs`)")
        p.add_argument("--follow", "-f", action="store_true", help="keep printing until the job ends")
        a = p.parse_args(argv)
        shown = 0
        while True:
            text = _call("GET", f"/{a.id}/logs", text=True)
            print(text[shown:], end="", flush=True)
            shown = len(text)
            if not a.follow or _call("GET", f"/{a.id}")["state"] in ("succeeded", "failed", "cancelled"):
                break
            time.sleep(2)
    else:
        p.add_argument("id", help="job id (see `beamhub jobs`)")
        a = p.parse_args(argv)
        job = _call("DELETE", f"/{a.id}")
        print(f"{job['id']}: {job['state']}")
    return 0
