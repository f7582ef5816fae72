"""One place per concern: commands only in commands/ modules, and the shared definitions in beamhub/.

Issue 18 items 2 and 3: every ``beamhub`` subcommand parses its arguments in a ``commands/``
module of its package and no library module holds argparse; the one dispatcher routes
``beamhub simulate KIND`` to the package that simulates KIND; the shared helpers (quantities,
QoS classes, atomic writes) behave as their users relied on.
"""

from __future__ import annotations

import ast
import json
import os
import stat
from pathlib import Path

import pytest

from beamhub import atomic, cli, qos
from beamhub.hub.catalog import QOS_CLASSES as CATALOG_QOS
from beamhub.hub.catalog import load_catalog
from beamhub.hub.pidfiles import write_pid_file
from beamhub.scheduler.commands.simulate import main as simulate_cluster
from beamhub.scheduler.policy.score import QOS_WEIGHTS
from beamhub.scheduler.simulate.workload import catalog_environments

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("beamhub", "hub", "kernels", "scheduler")


def _modules():
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            yield path, ast.parse(path.read_text(), str(path))


def _imports(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_argparse_only_in_commands_modules_and_the_dispatcher():
    holders = [path.relative_to(REPO) for path, tree in _modules() if "argparse" in _imports(tree)]
    outside = [p for p in holders if p.parts[-2] != "commands" and str(p) != "beamhub/cli.py"]
    assert holders and outside == []


def test_no_second_dispatcher_reaches_into_another_package():
    """Only beamhub.cli imports modules of other packages by name (importlib); a package may
    still load its own submodules lazily (kernels/sim does)."""
    for path, tree in _modules():
        rel = path.relative_to(REPO)
        if str(rel) == "beamhub/cli.py":
            continue
        if not any(isinstance(n, ast.Attribute) and n.attr == "import_module" for n in ast.walk(tree)):
            continue
        own = "beamhub" if rel.parts[0] == "beamhub" else f"beamhub.{rel.parts[0]}"
        named = [
            n.value
            for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value.startswith("beamhub.")
        ]
        assert all(name.startswith(own) for name in named), (rel, named)


def test_every_routed_module_has_main():
    modules = {m for m, _ in cli.SUBCOMMANDS.values() if m} | {m for m, _ in cli.SIMULATE_KINDS.values()}
    for module in modules:
        assert ".commands." in module, module
        assert "def main(" in (REPO / _source(module)).read_text(), module


def _source(module: str) -> str:
    package, *rest = module.split(".")[1:]
    return "/".join([package, *rest]) + ".py"


def test_simulate_cluster_is_routed_to_the_scheduler(tmp_path, capsys):
    status = cli.main(
        [
            "simulate",
            "cluster",
            "--quiet",
            "--hours",
            "1",
            "--sessions",
            "5",
            "--batch",
            "2",
            "--cpu-nodes",
            "2",
            "--gpu-nodes",
            "1",
            "--seed",
            "1",
        ]
    )
    assert status == 0 and "| beamhub |" in capsys.readouterr().out
    assert cli.main(["simulate", "fluid"]) == 2
    assert "unknown kind 'fluid'; choose one of: spi, tomo, cluster" in capsys.readouterr().err


def test_the_cluster_simulator_replays_the_real_catalog(tmp_path, capsys):
    catalog = load_catalog()
    menu = catalog_environments(catalog)
    assert [e.slug for e in menu] == [e.slug for e in catalog]
    for env, entry in zip(menu, catalog):
        assert (env.cpu, env.cpu_limit, env.memory, env.gpus) == (
            entry.cpu.guarantee,
            entry.cpu.limit,
            entry.memory.guarantee,
            entry.gpus,
        )
        assert env.qos == qos.from_catalog(entry.qos)
    out = tmp_path / "sim"
    assert (
        simulate_cluster(
            [
                "--quiet",
                "--hours",
                "1",
                "--sessions",
                "8",
                "--batch",
                "2",
                "--cpu-nodes",
                "2",
                "--gpu-nodes",
                "1",
                "--out",
                str(out),
            ],
            "beamhub simulate cluster",
        )
        == 0
    )
    assert json.loads((out / "results.json").read_text())["meta"]["environments"] == [e.slug for e in catalog]
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []  # no temporary files left


def test_one_spelling_of_qos_classes():
    assert qos.QOS_CLASSES == ("Guaranteed", "Burstable", "BestEffort")
    assert CATALOG_QOS == ("guaranteed", "burstable", "besteffort")
    assert set(QOS_WEIGHTS) == set(qos.QOS_CLASSES)
    assert [qos.from_catalog(qos.catalog_name(q)) for q in qos.QOS_CLASSES] == list(qos.QOS_CLASSES)
    with pytest.raises(ValueError):
        qos.from_catalog("Burstable")


def test_write_atomic_sets_the_mode_and_leaves_nothing_behind(tmp_path):
    target = tmp_path / "secret"
    atomic.write_atomic(target, "s3cret", mode=0o600)
    assert target.read_text() == "s3cret" and stat.S_IMODE(target.stat().st_mode) == 0o600
    atomic.write_atomic(target, b"new")
    assert target.read_bytes() == b"new" and stat.S_IMODE(target.stat().st_mode) == 0o644 & ~_umask()
    with pytest.raises(RuntimeError):
        with atomic.atomic_output(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert target.read_bytes() == b"new" and sorted(p.name for p in tmp_path.iterdir()) == ["secret"]


def test_pid_files_are_private_and_whole(tmp_path):
    path = tmp_path / "run" / "hub.pid"
    write_pid_file(path, os.getpid(), "hub")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == ["hub.pid"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
