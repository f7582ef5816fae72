"""``python -m beamhub.hub.jobs.service``: the options of the batch-jobs service.

The hub starts the service under that name (:mod:`beamhub.hub.hubconfig`,
:mod:`beamhub.hub.k8sconfig`); the module runs :func:`main` here, which parses
the options and hands them to :func:`beamhub.hub.jobs.service.run`.
"""

from __future__ import annotations

import argparse
import os

from beamhub.hub.jobs import service

PROG = "python -m beamhub.hub.jobs.service"


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    """The service's argument parser; its description is the service module's docstring."""
    p = argparse.ArgumentParser(
        prog=prog, description=service.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--backend", choices=["local", "kubernetes"], default="local")
    p.add_argument("--state", required=True, help="folder for job records and logs")
    p.add_argument("--catalog", default="", help="environment catalog (default: the shipped one)")
    p.add_argument("--workspace-root", default="", help="local backend: users' working directories")
    p.add_argument(
        "--data-root",
        default="",
        help="local backend: folder the catalog mounts' local_path "
        "values are relative to (default: the workspace root's parent)",
    )
    p.add_argument("--listen", default="", help="HOST:PORT to bind (default: from JUPYTERHUB_SERVICE_URL)")
    p.add_argument("--access-log", default="", help="file for one line per request (default: stderr)")
    p.add_argument(
        "--pid-file",
        default="",
        help="record this process (pid and start time) here, so the "
        "next 'beamhub up' can stop it if the hub that started it died",
    )
    p.add_argument(
        "--namespace",
        default=os.environ.get("POD_NAMESPACE", "default"),
        help="kubernetes backend: namespace of the jobs",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    """Parse the service's options and serve until stopped; returns the exit status."""
    args = build_parser().parse_args(argv)
    return service.run(**vars(args))
