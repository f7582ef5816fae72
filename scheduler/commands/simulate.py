"""``beamhub simulate cluster``: replay sessions on a simulated cluster to compare placement policies.

The options, their checks and the printed table; the simulation itself is
:func:`beamhub.scheduler.simulate.run_simulation`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from tqdm import tqdm

from beamhub.errors import UsageError
from beamhub.hub.catalog import CatalogError, load_catalog
from beamhub.scheduler.simulate import POLICIES, ClusterSpec, run_simulation
from beamhub.scheduler.simulate.report import markdown_table, write_outputs
from beamhub.scheduler.simulate.workload import catalog_environments, load_environments

__all__ = ["build_parser", "main"]

_EPILOG = """\
examples:
  beamhub simulate cluster --out sim-results                 # 24 CPU + 8 GPU nodes, one day, seed 0
  beamhub simulate cluster --cpu-nodes 6 --gpu-nodes 2 --sessions 80 --batch 40 --hours 8 --seed 3
  beamhub simulate cluster --policies kube-default,beamhub --extender-weight 3 --out /tmp/sim

outputs (in --out): results.md, results.json, node_cpu_over_time.png, node_cpu_cdf.png,
gpu_fragmentation.png, time_to_start.png
"""


def build_parser(prog: str) -> argparse.ArgumentParser:
    """The argument parser of ``beamhub simulate cluster``."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Replay a day of JupyterHub sessions (CPU and GPU environments, daily arrival "
        "profile, log-normal lengths) plus background batch load on simulated nodes, and "
        "compare placement policies on the same trace: kube-scheduler's default scoring, "
        "Trimaran's TargetLoadPacking, and BeamHub's load-aware extender. Reports node CPU "
        "p95/p99, hot-spot minutes, GPU fragmentation, rejected spawns and time to start.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the trace (default 0)")
    parser.add_argument("--hours", type=float, default=24.0, help="simulated hours (default 24)")
    parser.add_argument("--sessions", type=int, default=600, help="expected user sessions (default 600)")
    parser.add_argument("--batch", type=int, default=400, help="expected background batch jobs (default 400)")
    parser.add_argument("--cpu-nodes", type=int, default=24, help="CPU nodes, 32 cores / 256 GiB (default 24)")
    parser.add_argument("--gpu-nodes", type=int, default=8, help="GPU nodes, 64 cores / 512 GiB (default 8)")
    parser.add_argument("--gpus-per-node", type=int, default=8, help="GPUs per GPU node (default 8)")
    parser.add_argument(
        "--policies", default=",".join(POLICIES), help=f"comma-separated policies (default {','.join(POLICIES)})"
    )
    parser.add_argument(
        "--environments",
        type=Path,
        metavar="YAML",
        help="session menu: a YAML list of {slug, cpu, cpu_limit, memory_gib, gpus, qos, "
        "share, usage: [low, high]} (default: the environments of --catalog)",
    )
    parser.add_argument(
        "--catalog",
        type=Path,
        metavar="YAML",
        help="the hub's environment catalog whose menu the sessions choose from "
        "(default: the one shipped with BeamHub, hub/catalog.yaml)",
    )
    parser.add_argument(
        "--extender-weight", type=float, default=5.0, help="extender weight in the scheduler configuration (default 5)"
    )
    parser.add_argument("--metrics-lag", type=int, default=2, help="minutes measurements trail reality (default 2)")
    parser.add_argument(
        "--spawn-timeout", type=float, default=5.0, help="minutes a session may pend before the spawn fails (default 5)"
    )
    parser.add_argument("--out", type=Path, help="folder for results.md/json and PNG plots")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str], prog: str = "beamhub simulate cluster") -> int:
    """``beamhub simulate cluster ...`` (a leading ``cluster`` word is accepted and dropped)."""
    argv = list(argv)
    if argv and argv[0] == "cluster":
        argv = argv[1:]
        if not prog.endswith(" cluster"):
            prog = f"{prog} cluster"
    args = build_parser(prog).parse_args(argv)
    policies = tuple(p.strip() for p in args.policies.split(",") if p.strip())
    unknown = [p for p in policies if p not in POLICIES]
    if unknown or not policies:
        raise UsageError(f"unknown policy {', '.join(unknown) or '(none given)'}; choose from {', '.join(POLICIES)}")
    for name in ("hours", "sessions", "batch", "gpus_per_node", "spawn_timeout"):
        if getattr(args, name) < (0 if name == "batch" else 1e-9):
            raise UsageError(f"--{name.replace('_', '-')} must be positive")
    if args.cpu_nodes < 0 or args.gpu_nodes < 0 or args.cpu_nodes + args.gpu_nodes == 0:
        raise UsageError("need at least one node (--cpu-nodes / --gpu-nodes)")
    if args.metrics_lag < 0:
        raise UsageError("--metrics-lag must be >= 0")
    if args.environments:
        environments = load_environments(args.environments)
    else:
        try:
            environments = catalog_environments(load_catalog(args.catalog))
        except CatalogError as exc:
            raise UsageError(str(exc)) from None
    cluster = ClusterSpec(cpu_nodes=args.cpu_nodes, gpu_nodes=args.gpu_nodes, gpus_per_node=args.gpus_per_node)

    bar = None
    if not args.quiet and sys.stderr.isatty():
        bar = tqdm(total=int(args.hours * 60) * len(policies), unit="sim-min", file=sys.stderr)
    started = time.perf_counter()
    try:
        runs, rows, meta = run_simulation(
            seed=args.seed,
            hours=args.hours,
            sessions=args.sessions,
            batch_jobs=args.batch,
            cluster=cluster,
            policies=policies,
            environments=environments,
            extender_weight=args.extender_weight,
            metrics_lag=args.metrics_lag,
            spawn_timeout=args.spawn_timeout,
            progress=bar.update if bar is not None else None,
        )
    finally:
        if bar is not None:
            bar.close()
    meta["wall_seconds"] = round(time.perf_counter() - started, 2)
    print(
        f"{meta['sessions']} sessions, {meta['batch_jobs']} batch jobs on {cluster.size} nodes "
        f"({cluster.gpu_nodes} with {cluster.gpus_per_node} GPUs), {args.hours:g} h, seed {args.seed}"
    )
    print(markdown_table(rows))
    if args.out is not None:
        for path in write_outputs(args.out, runs, rows, meta):
            print(f"wrote {path}")
    return 0
