"""The ``beamhub`` command: one entry point, a subcommand per job.

Each subcommand lives in the package it belongs to and is imported only when it
is run, so ``beamhub phase`` never pays for importing JupyterHub and a base
install without the ``hub`` extra still runs the analysis commands.  A
subcommand module exposes ``main(argv: list[str], prog: str) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys

from beamhub import __version__
from beamhub.errors import UsageError

# name -> (module, one-line help).  Order is the order shown by --help.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "up": ("beamhub.hub.commands.up", "start the whole platform on this machine (SSO, proxy, hub)"),
    "down": ("beamhub.hub.commands.down", "stop the platform 'beamhub up' started, its sessions and jobs"),
    "phase": ("beamhub.kernels.commands.phase", "iterative phase retrieval from a JSON job file"),
    "tomo": ("beamhub.kernels.commands.tomo", "tomographic reconstruction of a Data Exchange scan"),
    "emc": ("beamhub.kernels.commands.emc", "EMC orientation recovery (Dragonfly-compatible config)"),
    "simulate": ("beamhub.kernels.commands.simulate", "simulated data with ground truth"),
    "scheduler": ("beamhub.scheduler.commands.serve", "the kube-scheduler extender service"),
    "submit": ("beamhub.hub.jobs.client", "run phase/tomo/emc as a batch job from a session"),
    "jobs": ("beamhub.hub.jobs.client", "list your batch jobs"),
    "logs": ("beamhub.hub.jobs.client", "show a batch job's output"),
    "cancel": ("beamhub.hub.jobs.client", "cancel one of your batch jobs"),
}


def _available() -> dict[str, tuple[str, str]]:
    """The subcommands whose module is present in this checkout."""
    found = {}
    for name, (module, text) in SUBCOMMANDS.items():
        if importlib.util.find_spec(module.rpartition(".")[0]) is None:
            continue
        try:
            if importlib.util.find_spec(module) is None:
                continue
        except ModuleNotFoundError:
            continue
        found[name] = (module, text)
    return found


def command_parser(name: str) -> argparse.ArgumentParser | None:
    """The argument parser of ``beamhub NAME``, built by the subcommand's own ``build_parser``.

    Lets ``beamhub submit`` check a job's options here, before anything is
    submitted, with exactly the parser the job will run; a parse error raises
    :class:`UsageError` (one line) instead of printing usage and exiting.
    Returns None when the subcommand is not installed here or has no parser
    to offer (the job service and the job itself still check it).
    """
    spec = _available().get(name)
    if spec is None:
        return None
    build = getattr(importlib.import_module(spec[0]), "build_parser", None)
    if build is None:
        return None
    parser = build(f"beamhub {name}")

    def refuse(message: str):
        raise UsageError(f"beamhub {name}: {message} (see 'beamhub {name} --help')")

    parser.error = refuse
    return parser


def _usage(commands: dict[str, tuple[str, str]]) -> str:
    width = max((len(n) for n in commands), default=0)
    lines = [
        "usage: beamhub [--version] COMMAND [ARGS...]",
        "",
        "BeamHub: interactive analysis for photon science.",
        "",
        "commands:",
    ]
    lines += [f"  {name:<{width}}  {text}" for name, (_, text) in commands.items()]
    lines += ["", "Run 'beamhub COMMAND --help' for the options of one command."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Dispatch ``beamhub COMMAND ...``; returns the process exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = _available()
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage(commands))
        return 0 if argv else 2
    if argv[0] == "--version":
        print(f"beamhub {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in commands:
        print(f"beamhub: error: unknown command {name!r}; choose one of: {', '.join(commands)}",
              file=sys.stderr)
        return 2
    module = importlib.import_module(commands[name][0])
    prog = f"beamhub {name}"
    try:
        return int(module.main(rest, prog) or 0)
    except UsageError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
