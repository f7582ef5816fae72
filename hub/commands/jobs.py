"""`beamhub submit|jobs|logs|cancel`: batch jobs from inside a BeamHub session.

The argument parsing and the printing of the four verbs; the requests to the
jobs service are :mod:`beamhub.hub.jobs.client`'s.
"""

from __future__ import annotations

import argparse
import json
import os
import time

from beamhub.cli import command_parser
from beamhub.errors import UsageError
from beamhub.hub.jobs import client
from beamhub.hub.jobs.model import FINISHED, KINDS

EPILOG = """\
examples:
  beamhub submit phase job.json
  beamhub submit tomo scan.h5 --out recon.h5 --center auto
  beamhub submit emc config.ini --ranks 4 -- --iterations 30
  beamhub jobs
  beamhub logs phase-3f9a2c1b --follow
  beamhub cancel phase-3f9a2c1b
"""

DESCRIPTIONS = {
    "submit": "Run `beamhub phase|tomo|emc ...` as a batch job with this session's environment, identity and data.",
    "jobs": "List your batch jobs.",
    "logs": "Show the output of one of your jobs.",
    "cancel": "Cancel one of your jobs.",
}


def _row(job: dict) -> str:
    created = time.strftime("%Y-%m-%d %H:%M", time.localtime(job["created"]))
    ranks = f" x{job['ranks']}" if job.get("ranks", 1) > 1 else ""
    return (
        f"{job['id']:<18} {job['state']:<10} {created}  {job['environment']:<12} "
        f"{job['kind']}{ranks} {' '.join(job['args'])}"
    )


def _split_submit(parser: argparse.ArgumentParser, argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """submit's own options (--ranks, --environment) wherever they stand before `--`; the rest is the job's.

    `beamhub submit emc config.ini --ranks 4 -- --iterations 30` runs 4 ranks of
    `beamhub emc config.ini --iterations 30`; `beamhub submit tomo scan.h5 --out r.h5` passes
    --out to tomo.
    """
    argv = list(argv)
    tail = argv[argv.index("--") + 1 :] if "--" in argv else []
    head = argv[: argv.index("--")] if "--" in argv else argv
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


def build_parser(prog: str) -> argparse.ArgumentParser:
    """The argument parser of ``beamhub submit``, ``jobs``, ``logs`` or ``cancel`` (the last word of ``prog``)."""
    verb = prog.split()[-1]
    p = argparse.ArgumentParser(
        prog=prog, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter, description=DESCRIPTIONS[verb]
    )
    p.error = _refuse(prog)
    if verb == "submit":
        p.add_argument("kind", choices=KINDS, help="what to run")
        p.add_argument("--ranks", type=int, default=1, help="MPI ranks (emc only; default 1)")
        p.add_argument(
            "--environment",
            default=os.environ.get("BEAMHUB_ENVIRONMENT", ""),
            help="environment to run in (default: this session's)",
        )
        p.add_argument(
            "args", nargs="*", metavar="ARG", help="arguments of `beamhub KIND`; everything after `--` is passed unread"
        )
    elif verb == "jobs":
        p.add_argument("--json", action="store_true", help="machine-readable output")
    elif verb == "logs":
        p.add_argument("id", help="job id (see `beamhub jobs`)")
        p.add_argument("--follow", "-f", action="store_true", help="keep printing until the job ends")
    else:
        p.add_argument("id", help="job id (see `beamhub jobs`)")
    return p


def main(argv: list[str], prog: str) -> int:
    """Run ``beamhub submit|jobs|logs|cancel`` (the last word of ``prog``); returns the exit status."""
    verb = prog.split()[-1]
    p = build_parser(prog)
    if verb == "submit":
        a, args = _split_submit(p, argv)
        check_job_options(a.kind, args)
        job = client.submit(a.kind, args, os.getcwd(), a.environment, a.ranks)
        print(f"submitted {job['id']} ({job['state']}); follow it with: beamhub logs {job['id']} --follow")
        return 0
    a = p.parse_args(argv)
    if verb == "jobs":
        jobs = client.list_jobs()
        if a.json:
            print(json.dumps(jobs, indent=2))
        elif not jobs:
            print("no jobs yet; start one with: beamhub submit phase job.json")
        else:
            print(f"{'ID':<18} {'STATE':<10} {'CREATED':<17} {'ENVIRONMENT':<12} COMMAND")
            for job in jobs:
                print(_row(job))
    elif verb == "logs":
        shown = 0
        while True:
            text = client.job_logs(a.id)
            print(text[shown:], end="", flush=True)
            shown = len(text)
            if not a.follow or client.job_state(a.id) in FINISHED:
                break
            time.sleep(2)
    else:
        job = client.cancel(a.id)
        print(f"{job['id']}: {job['state']}")
    return 0
