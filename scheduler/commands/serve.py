"""``beamhub scheduler``: run the kube-scheduler extender service."""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path

import yaml

from beamhub.errors import UsageError
from beamhub.scheduler.settings import SchedulerSettings

__all__ = ["main", "build_parser"]

_EPILOG = """\
examples:
  beamhub scheduler                                   # Node objects only, 127.0.0.1:8890
  beamhub scheduler --host 0.0.0.0 --prometheus http://prometheus:9090 --kube-api in-cluster
  beamhub scheduler --config /etc/beamhub/scheduler.yaml --strategy target-load-packing
  curl -s localhost:8890/summary                      # free GPUs per node class

kube-scheduler configuration (KubeSchedulerConfiguration, extenders:):
  - urlPrefix: http://beamhub-scheduler:8890
    filterVerb: filter
    prioritizeVerb: prioritize
    weight: 5
    nodeCacheCapable: true        # with --kube-api; false sends whole Node objects (slower past ~500 nodes)
    ignorable: true

settings file keys (YAML or JSON; command-line options win):
"""

_CLI = {  # option -> setting
    "host": "host",
    "port": "port",
    "prometheus": "prometheus_url",
    "refresh_interval": "refresh_interval",
    "stale_after": "stale_after",
    "strategy": "strategy",
    "nodes_file": "nodes_file",
    "node_class_label": "node_class_label",
    "kube_api": "kube_api",
}


def build_parser(prog: str) -> argparse.ArgumentParser:
    """The argument parser of ``beamhub scheduler``."""
    keys = "\n".join(f"  {name} (default {default!r}): {text}" for name, default, text in SchedulerSettings.describe())
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Load-aware kube-scheduler extender: POST /filter and /prioritize (extender v1, "
        "both nodeCacheCapable modes), GET /healthz, /metrics and /summary. Node load comes "
        "from Prometheus (node_exporter, dcgm-exporter, kube-state-metrics) when --prometheus "
        "is given; without it, or while Prometheus is unreachable, scores are neutral and "
        "filtering uses node conditions.",
        epilog=_EPILOG + keys,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", type=Path, help="YAML or JSON file of settings (keys listed below)")
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="TCP port (default 8890)")
    parser.add_argument("--prometheus", metavar="URL", help="Prometheus base URL, e.g. http://prometheus:9090")
    parser.add_argument(
        "--refresh-interval", type=float, metavar="SECONDS", help="seconds between metric refreshes (default 15)"
    )
    parser.add_argument(
        "--stale-after",
        type=float,
        metavar="SECONDS",
        help="metrics older than this score neutrally (default 3 x refresh interval)",
    )
    parser.add_argument(
        "--strategy", help="scoring strategy: load-aware (default), target-load-packing, least-allocated"
    )
    parser.add_argument("--nodes-file", help="v1.NodeList (JSON/YAML) preloading the node cache")
    parser.add_argument(
        "--kube-api",
        metavar="in-cluster|URL",
        help="list and watch Nodes from the API server (needed for nodeCacheCapable: true)",
    )
    parser.add_argument("--node-class-label", help="node label naming the node class in /summary")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser


def settings_from_args(args: argparse.Namespace) -> SchedulerSettings:
    """Merge the settings file and the command-line options into validated settings."""
    values: dict = {}
    if args.config is not None:
        try:
            loaded = yaml.safe_load(args.config.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise UsageError(f"cannot read settings file {args.config}: {exc}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise UsageError(f"settings file {args.config} must hold a mapping of setting -> value")
        values.update(loaded or {})
    for option, setting in _CLI.items():
        value = getattr(args, option)
        if value is not None:
            values[setting] = value
    return SchedulerSettings.from_mapping(values)


def main(argv: list[str], prog: str) -> int:
    """Run the extender until interrupted; returns the exit status."""
    args = build_parser(prog).parse_args(argv)
    settings = settings_from_args(args)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    # the scheduler extra (aiohttp) loads only when the service runs: `beamhub scheduler --help` works without it
    from aiohttp import web  # noqa: PLC0415  optional dependency: the scheduler extra

    from beamhub.scheduler.app import create_app  # noqa: PLC0415  imports aiohttp (scheduler extra)

    app = create_app(settings)
    print(
        f"{prog}: listening on http://{settings.host}:{settings.port} "
        f"(strategy {settings.strategy}, metrics from "
        f"{settings.prometheus_url or 'nowhere: Node objects only'})",
        flush=True,
    )
    # kube-scheduler waits on every /filter and /prioritize: uvloop's event loop (the scheduler
    # extra installs it) answers each in less CPU, and one access-log line per request is kept
    # for --log-level DEBUG (the request counts and latencies are in /metrics either way)
    try:
        import uvloop  # noqa: PLC0415  optional speed-up, part of the scheduler extra
    except ImportError:
        uvloop = None
    if uvloop is not None:
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    access = logging.getLogger("beamhub.scheduler.access")
    web.run_app(
        app,
        host=settings.host,
        port=settings.port,
        print=None,
        access_log=access if access.isEnabledFor(logging.DEBUG) else None,
    )
    return 0
