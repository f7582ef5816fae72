"""The ``beamhub`` command: one entry point, a subcommand per job.

This is the one dispatcher.  Every subcommand's argument parsing lives in a
``commands/`` module of the package it belongs to (``beamhub.hub.commands``,
``beamhub.kernels.commands``, ``beamhub.scheduler.commands``); the libraries
hold no argparse.  A commands module is imported only when it is run, so
``beamhub phase`` never pays for importing JupyterHub and a base install without
the ``hub`` extra still runs the analysis commands.  A commands module exposes
``main(argv: list[str], prog: str) -> int`` and, where a job's options can be
checked before it is submitted, ``build_parser(prog)``.

``beamhub simulate KIND`` is a group: each kind is routed here to the commands
module of the package that simulates it, which is how the kernels' ``spi`` and
``tomo`` and the scheduler's ``cluster`` share one command without one package
reaching into another.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys

from beamhub import __version__
from beamhub.errors import UsageError

#: The group command whose kinds (``beamhub simulate KIND``) live in different packages.
SIMULATE = "simulate"

# name -> (module, one-line help).  Order is the order shown by --help.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "up": ("beamhub.hub.commands.up", "start the whole platform on this machine (SSO, proxy, hub)"),
    "down": ("beamhub.hub.commands.down", "stop the platform 'beamhub up' started, its sessions and jobs"),
    "phase": ("beamhub.kernels.commands.phase", "iterative phase retrieval from a JSON job file"),
    "tomo": ("beamhub.kernels.commands.tomo", "tomographic reconstruction of a Data Exchange scan"),
    "emc": ("beamhub.kernels.commands.emc", "EMC orientation recovery (Dragonfly-compatible config)"),
    SIMULATE: ("", "simulated data with ground truth"),
    "scheduler": ("beamhub.scheduler.commands.serve", "the kube-scheduler extender service"),
    "submit": ("beamhub.hub.commands.jobs", "run phase/tomo/emc as a batch job from a session"),
    "jobs": ("beamhub.hub.commands.jobs", "list your batch jobs"),
    "logs": ("beamhub.hub.commands.jobs", "show a batch job's output"),
    "cancel": ("beamhub.hub.commands.jobs", "cancel one of your batch jobs"),
}

# kind -> (module, one-line help) of ``beamhub simulate KIND``; the module's main gets
# ``[KIND, *args]`` and the prog ``beamhub simulate``.  A new kind is one entry here.
SIMULATE_KINDS: dict[str, tuple[str, str]] = {
    "spi": (
        "beamhub.kernels.commands.simulate",
        "single-particle imaging frames in Dragonfly's formats (for `beamhub emc`)",
    ),
    "tomo": ("beamhub.kernels.commands.simulate", "a tomography scan in Data Exchange HDF5 (for `beamhub tomo`)"),
    "cluster": (
        "beamhub.scheduler.commands.simulate",
        "replay sessions on a simulated cluster to compare placement policies",
    ),
}


def _present(module: str) -> bool:
    """True when ``module`` (and its package) is in this installation, without importing it."""
    try:
        return (
            importlib.util.find_spec(module.rpartition(".")[0]) is not None
            and importlib.util.find_spec(module) is not None
        )
    except ModuleNotFoundError:
        return False


def _available() -> dict[str, tuple[str, str]]:
    """The subcommands whose module is present in this checkout (a group: any of its kinds')."""
    found = {}
    for name, (module, text) in SUBCOMMANDS.items():
        if name == SIMULATE:
            if any(_present(m) for m, _ in SIMULATE_KINDS.values()):
                found[name] = (module, text)
        elif _present(module):
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
    if spec is None or not spec[0]:
        return None
    build = getattr(importlib.import_module(spec[0]), "build_parser", None)
    if build is None:
        return None
    parser = build(f"beamhub {name}")

    def refuse(message: str):
        raise UsageError(f"beamhub {name}: {message} (see 'beamhub {name} --help')")

    parser.error = refuse
    return parser


def _listing(head: str, entries: dict[str, tuple[str, str]], title: str, tail: str) -> str:
    width = max((len(n) for n in entries), default=0)
    lines = [head, "", f"{title}:"]
    lines += [f"  {name:<{width}}  {text}" for name, (_, text) in entries.items()]
    return "\n".join(lines + ["", tail])


def _usage(commands: dict[str, tuple[str, str]]) -> str:
    return _listing(
        "usage: beamhub [--version] COMMAND [ARGS...]\n\nBeamHub: interactive analysis for photon science.",
        commands,
        "commands",
        "Run 'beamhub COMMAND --help' for the options of one command.",
    )


def _simulate(argv: list[str], prog: str) -> int:
    """``beamhub simulate KIND ...``: hand ``[KIND, *args]`` to the kind's commands module."""
    if not argv or argv[0] in ("-h", "--help"):
        print(
            _listing(
                f"usage: {prog} KIND [ARGS...]",
                SIMULATE_KINDS,
                "kinds",
                f"Run '{prog} KIND --help' for the options of one kind.",
            )
        )
        return 0 if argv else 2
    kind = argv[0]
    if kind not in SIMULATE_KINDS:
        raise UsageError(f"unknown kind {kind!r}; choose one of: {', '.join(SIMULATE_KINDS)}")
    try:
        module = importlib.import_module(SIMULATE_KINDS[kind][0])
    except ModuleNotFoundError as exc:
        raise UsageError(f"'{kind}' needs {exc.name}, which is not installed here") from None
    return int(module.main(argv, prog) or 0)


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
        print(f"beamhub: error: unknown command {name!r}; choose one of: {', '.join(commands)}", file=sys.stderr)
        return 2
    prog = f"beamhub {name}"
    try:
        if name == SIMULATE:
            return _simulate(rest, prog)
        return int(importlib.import_module(commands[name][0]).main(rest, prog) or 0)
    except UsageError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
